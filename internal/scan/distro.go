package scan

import (
	"strconv"
	"strings"

	"github.com/google/osv-scalibr/extractor"
	rpmmeta "github.com/google/osv-scalibr/extractor/filesystem/os/rpm/metadata"
)

// osEcosystem names the ecosystem a distribution release's packages match
// in, from its os-release, spelled as the release's feed spells it:
//
//   - Debian "Debian:12"; Ubuntu "Ubuntu:22.04:LTS" (Canonical's OSV records
//     mark long-term releases) or "Ubuntu:24.10"; Alpine "Alpine:v3.20";
//     Wolfi and Chainguard "Wolfi", "Chainguard" (rolling).
//   - Red Hat Enterprise Linux and CentOS "Red Hat:9" (CentOS is matched on
//     Red Hat's data, as Red Hat publishes none for CentOS and its packages
//     are RHEL's rebuilt); Rocky Linux "Rocky Linux:9" and AlmaLinux
//     "AlmaLinux:9" as their OSV errata name them; Amazon Linux
//     "Amazon Linux:2" and "Amazon Linux:2023".
//
// An empty result means scangate has no feed for the release (SUSE and
// openSUSE, Oracle Linux and Bottlerocket among them, for now).
func osEcosystem(o *OS) string {
	major, _, _ := strings.Cut(o.VersionID, ".")
	switch o.ID {
	case "debian":
		if o.VersionID != "" {
			return "Debian:" + o.VersionID
		}
	case "ubuntu":
		if o.VersionID != "" {
			if ubuntuLTS(o) {
				return "Ubuntu:" + o.VersionID + ":LTS"
			}
			return "Ubuntu:" + o.VersionID
		}
	case "alpine":
		parts := strings.Split(o.VersionID, ".")
		if len(parts) >= 2 {
			return "Alpine:v" + parts[0] + "." + parts[1]
		}
	case "wolfi":
		return "Wolfi"
	case "chainguard":
		return "Chainguard"
	case "rhel", "centos":
		if major != "" {
			return "Red Hat:" + major
		}
	case "rocky":
		if major != "" {
			return "Rocky Linux:" + major
		}
	case "almalinux":
		if major != "" {
			return "AlmaLinux:" + major
		}
	case "amzn":
		if major != "" {
			return "Amazon Linux:" + major
		}
	}
	return ""
}

// ubuntuLTS reports whether an Ubuntu release is a long-term one: its
// os-release says so ("Ubuntu 22.04.3 LTS"), or, for an os-release cut
// down to ID and VERSION_ID, it is an April release of an even year.
func ubuntuLTS(o *OS) bool {
	if strings.Contains(o.PrettyName, "LTS") {
		return true
	}
	yy, mm, ok := strings.Cut(o.VersionID, ".")
	n, err := strconv.Atoi(yy)
	return o.PrettyName == "" && ok && err == nil && n%2 == 0 && mm == "04"
}

// rpmPackage completes an RPM package: its version gets the epoch that
// rpm compares first ("1:3.0.7-27.el9"); it matches in the release's
// ecosystem; and for Red Hat, whose VEX documents name source RPMs, it
// matches by its source RPM's name and version. The rebuilds' errata, Amazon
// Linux's and SUSE's name binary packages, which are matched as they are.
func rpmPackage(pkg *Package, p *extractor.Package, o *OS) {
	m, ok := p.Metadata.(*rpmmeta.Metadata)
	if !ok || pkg.Type != "rpm" {
		return
	}
	if m.Epoch > 0 {
		pkg.Version = strconv.Itoa(m.Epoch) + ":" + pkg.Version
	}
	pkg.Ecosystem = ""
	if o != nil {
		pkg.Ecosystem = o.Ecosystem
	}
	name, version, ok := sourceRPM(m.SourceRPM)
	if !ok {
		return
	}
	if m.Epoch > 0 {
		// A source RPM's file name has no epoch; its binaries share it.
		version = strconv.Itoa(m.Epoch) + ":" + version
	}
	if strings.HasPrefix(pkg.Ecosystem, "Red Hat:") {
		pkg.SourceName, pkg.SourceVersion = name, version
	}
}

// sourceRPM splits a source RPM file name, "curl-7.76.1-26.el9_3.2.src.rpm",
// into the package's name and version-release.
func sourceRPM(file string) (name, version string, ok bool) {
	base, ok := strings.CutSuffix(file, ".src.rpm")
	if !ok {
		base, ok = strings.CutSuffix(file, ".nosrc.rpm")
	}
	if !ok {
		return "", "", false
	}
	r := strings.LastIndexByte(base, '-')
	if r <= 0 {
		return "", "", false
	}
	v := strings.LastIndexByte(base[:r], '-')
	if v <= 0 {
		return "", "", false
	}
	return base[:v], base[v+1:], true
}

// ubuntuPro moves the deb packages of an Ubuntu machine with Ubuntu Pro to
// the release's Pro ecosystem ("Ubuntu:Pro:18.04:LTS"), whose queries read
// Pro's fixes as well as the standard ones (see vulndb). A machine has Pro
// when any package it installed is an ESM build ("+esm" in its version):
// those come only from Pro's archives. Without Pro, Pro's fixed versions
// are never offered, as such a machine cannot install them.
func ubuntuPro(pkgs []Package, o *OS) {
	if o == nil || !strings.HasPrefix(o.Ecosystem, "Ubuntu:") || strings.HasPrefix(o.Ecosystem, "Ubuntu:Pro:") {
		return
	}
	pro := false
	for _, p := range pkgs {
		if p.Type == "deb" && strings.Contains(p.Version, "+esm") {
			pro = true
			break
		}
	}
	if !pro {
		return
	}
	eco := "Ubuntu:Pro:" + strings.TrimPrefix(o.Ecosystem, "Ubuntu:")
	for i := range pkgs {
		if pkgs[i].Type == "deb" && pkgs[i].Ecosystem == o.Ecosystem {
			pkgs[i].Ecosystem = eco
		}
	}
	o.Ecosystem = eco
}
