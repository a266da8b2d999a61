// Package distrotest builds the package databases of the distributions
// scangate matches, for test images: a dpkg status, an apk installed file,
// and a real RPM database written by rpm itself (Debian's rpm package: each
// package is built with rpmbuild from a spec with no files, then recorded
// with rpm --justdb). The databases are constructed, their contents chosen
// by the test; the formats are the real ones the scanner's extractors read.
package distrotest

import (
	"fmt"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/scangate/scangate/internal/imagetest"
)

// T is what the builders need of a test.
type T = imagetest.T

// A Deb is one installed Debian or Ubuntu package.
type Deb struct {
	Name, Version string
	// Source and SourceVersion are the source package, when they differ.
	Source, SourceVersion string
}

// DpkgStatus writes a var/lib/dpkg/status of the packages, all installed.
func DpkgStatus(pkgs ...Deb) string {
	var b strings.Builder
	for _, p := range pkgs {
		fmt.Fprintf(&b, "Package: %s\nStatus: install ok installed\nPriority: optional\nArchitecture: amd64\nVersion: %s\n", p.Name, p.Version)
		switch {
		case p.Source != "" && p.SourceVersion != "":
			fmt.Fprintf(&b, "Source: %s (%s)\n", p.Source, p.SourceVersion)
		case p.Source != "":
			fmt.Fprintf(&b, "Source: %s\n", p.Source)
		}
		fmt.Fprintf(&b, "Maintainer: test <test@example.com>\nDescription: %s\n\n", p.Name)
	}
	return b.String()
}

// An APK is one installed Alpine, Wolfi or Chainguard package.
type APK struct {
	Name, Version, Origin string
}

// APKInstalled writes a lib/apk/db/installed of the packages.
func APKInstalled(pkgs ...APK) string {
	var b strings.Builder
	for _, p := range pkgs {
		origin := p.Origin
		if origin == "" {
			origin = p.Name
		}
		fmt.Fprintf(&b, "C:Q1AAAAAAAAAAAAAAAAAAAAAAAAAAA=\nP:%s\nV:%s\nA:x86_64\nS:1000\nI:4096\nT:%s\nL:MIT\no:%s\n\n", p.Name, p.Version, p.Name, origin)
	}
	return b.String()
}

// An RPM is one installed RPM package. Binaries built from one source RPM
// are listed with the same Source.
type RPM struct {
	Name    string
	Epoch   int
	Version string // upstream version
	Release string
	// Source is the source package's name; empty means Name.
	Source string
	// Arch is the package's architecture; empty means x86_64.
	Arch string
	// Module is the modularity label of a package built in a module
	// stream, "postgresql:15:9020020230525082155:rhel9".
	Module string
}

// RPMDB records pkgs in a new rpm database (rpm's sqlite backend, as on
// RHEL 9, Amazon Linux 2023 and SUSE) and returns the bytes of its
// rpmdb.sqlite. It needs Debian's rpm package (rpmbuild and rpm).
func RPMDB(t T, pkgs ...RPM) []byte {
	t.Helper()
	dir := t.TempDir()
	top := filepath.Join(dir, "top")
	var rpms []string
	for i, p := range pkgs {
		src := p.Source
		if src == "" {
			src = p.Name
		}
		spec := fmt.Sprintf("Name: %s\nVersion: %s\nRelease: %s\nEpoch: %d\nSummary: test\nLicense: MIT\n%%description\ntest\n", src, p.Version, p.Release, p.Epoch)
		if p.Module != "" {
			spec = "ModularityLabel: " + p.Module + "\n" + spec
		}
		if p.Name != src {
			spec += fmt.Sprintf("%%package -n %s\nSummary: test\n%%description -n %s\ntest\n%%files -n %s\n", p.Name, p.Name, p.Name)
		} else {
			spec += "%files\n"
		}
		arch := p.Arch
		if arch == "" {
			arch = "x86_64"
		}
		if arch == "noarch" {
			spec = strings.Replace(spec, "%description\n", "BuildArch: noarch\n%description\n", 1)
		}
		specPath := filepath.Join(dir, fmt.Sprintf("p%d.spec", i))
		if err := os.WriteFile(specPath, []byte(spec), 0o644); err != nil {
			t.Fatal(err)
		}
		run(t, "rpmbuild", "--define", "_topdir "+top, "--define", "_build_id_links none", "--target", arch, "-bb", specPath)
		rpms = append(rpms, filepath.Join(top, "RPMS", arch, fmt.Sprintf("%s-%s-%s.%s.rpm", p.Name, p.Version, p.Release, arch)))
	}
	root := filepath.Join(dir, "root")
	run(t, "rpm", "--root", root, "--dbpath", "/var/lib/rpm", "--initdb")
	if len(rpms) > 0 {
		run(t, append([]string{"rpm", "--root", root, "--dbpath", "/var/lib/rpm", "-i", "--justdb", "--nodeps", "--ignorearch", "--ignoreos"}, rpms...)...)
	}
	// rpm leaves its write-ahead log checkpointed and empty: the one file
	// holds the database.
	data, err := os.ReadFile(filepath.Join(root, "var", "lib", "rpm", "rpmdb.sqlite"))
	if err != nil {
		t.Fatal(err)
	}
	return data
}

func run(t T, args ...string) {
	t.Helper()
	out, err := exec.Command(args[0], args[1:]...).CombinedOutput()
	if err != nil {
		t.Fatalf("%s: %v\n%s", strings.Join(args, " "), err, out)
	}
}

// Image is a one-layer image holding an os-release and the given files
// (path in the image → content).
func Image(t T, osRelease string, files map[string]string) v1.Image {
	t.Helper()
	entries := []imagetest.Entry{{Name: "etc/os-release", Body: osRelease}}
	for _, name := range slices.Sorted(maps.Keys(files)) {
		entries = append(entries, imagetest.Entry{Name: name, Body: files[name]})
	}
	return imagetest.Build(t, imagetest.Layer(t, entries...))
}
