package scan_test

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/scangate/scangate/internal/imagetest"
	"github.com/scangate/scangate/internal/scan"
)

// catalogEntries lists the packages of an image made of one layer of entries.
func catalogEntries(t *testing.T, entries ...imagetest.Entry) (*scan.Report, error) {
	t.Helper()
	img := imagetest.Build(t, imagetest.Layer(t, entries...))
	return scan.Catalog(context.Background(), img, scan.ImageInfo{Ref: t.Name()}, scan.DefaultLimits)
}

func packageNames(r *scan.Report) []string {
	var out []string
	for _, p := range r.Packages {
		out = append(out, p.Name+"@"+p.Version)
	}
	slices.Sort(out)
	return out
}

// TestManifestBounds: a lockfile the parsers cannot be trusted with (too
// large, nested too deep, a line longer than they read, an alias bomb)
// fails the scan, naming the file, instead of exhausting the machine or
// being read in part.
func TestManifestBounds(t *testing.T) {
	gem := "GEM\n  remote: https://rubygems.org/\n  specs:\n"
	for _, c := range []struct {
		name, file, body, want string
	}{
		{"too large", "app/yarn.lock", "# yarn lockfile v1\n" + strings.Repeat("#\n", 16<<20+1), "larger than 32 MiB"},
		{"deep TOML", "app/Cargo.lock", "[[package]]\nname = \"a\"\nversion = \"1.0.0\"\nx = " + strings.Repeat("[", 100) + strings.Repeat("]", 100) + "\n", "nest deeper than 64"},
		{"deep TOML in a table", "app/poetry.lock", "[metadata]\nx = " + strings.Repeat("{a = ", 65) + "1" + strings.Repeat("}", 65) + "\n", "nest deeper than 64"},
		// The Gemfile.lock parser stops at a line over 64 KiB without an
		// error, which would drop rack below it.
		{"long line", "app/Gemfile.lock", gem + "    " + strings.Repeat("a", 70000) + " (1.0)\n    rack (2.2.3)\n", "longer than"},
		// Each continued line is one more level of recursion in the parser.
		{"continued lines", "app/requirements.txt", "flask==0.12.2 " + strings.Repeat("\\\n", 2000) + "\n", "continues more than 1024 lines"},
	} {
		t.Run(c.name, func(t *testing.T) {
			_, err := catalogEntries(t, imagetest.Entry{Name: c.file, Body: c.body})
			if !errors.Is(err, scan.ErrScan) || !strings.Contains(err.Error(), c.file) || !strings.Contains(err.Error(), c.want) {
				t.Errorf("err = %v; want a scan error naming /%s and saying %q", err, c.file, c.want)
			}
		})
	}
}

// TestPNPMAliasBomb: a billion-laughs pnpm-lock.yaml (each alias doubles
// the one before) is read as the lockfile's schema needs, which never
// expands the aliases; a scan that expanded them would not finish.
func TestPNPMAliasBomb(t *testing.T) {
	var b strings.Builder
	b.WriteString("lockfileVersion: '6.0'\na0: &a0 {x: lol, y: lol}\n")
	for i := 1; i < 40; i++ {
		fmt.Fprintf(&b, "a%d: &a%d {x: *a%d, y: *a%d}\n", i, i, i-1, i-1)
	}
	b.WriteString("packages: *a39\n")
	r, err := catalogEntries(t, imagetest.Entry{Name: "app/pnpm-lock.yaml", Body: b.String()})
	if err != nil {
		if !errors.Is(err, scan.ErrScan) || !strings.Contains(err.Error(), "pnpm-lock.yaml") {
			t.Fatalf("err = %v; want a scan error naming the lockfile", err)
		}
		return
	}
	if got := packageNames(r); len(got) > 2 {
		t.Errorf("%d packages from a lockfile of two keys: %q", len(got), got)
	}
}

// TestRequirementsIncludes: a requirements file's -r includes are read;
// one the scan did not keep fails it, naming the file, rather than being
// left out; one the image does not hold is not in the image to read.
func TestRequirementsIncludes(t *testing.T) {
	r, err := catalogEntries(t,
		imagetest.Entry{Name: "app/requirements.txt", Body: "-r requirements/base.txt\nrequests==2.20.0\nmarkupsafe>=2.0\n"},
		imagetest.Entry{Name: "app/requirements/base.txt", Body: "flask==0.12.2\n-r ../missing-requirements.txt\n"},
	)
	if err != nil {
		t.Fatal(err)
	}
	// markupsafe>=2.0 names no installed version: it is not a package.
	if got, want := packageNames(r), []string{"flask@0.12.2", "requests@2.20.0"}; !slices.Equal(got, want) {
		t.Errorf("packages %q, want %q", got, want)
	}

	_, err = catalogEntries(t,
		imagetest.Entry{Name: "app/requirements.txt", Body: "-r base.txt\nrequests==2.20.0\n"},
		imagetest.Entry{Name: "app/base.txt", Body: "flask==0.12.2\n"},
	)
	if !errors.Is(err, scan.ErrScan) || !strings.Contains(err.Error(), "/app/base.txt") {
		t.Errorf("an include the scan did not keep: err = %v; want a scan error naming /app/base.txt", err)
	}
}

// TestGoModIndirectFromGoSum: a module older than Go 1.17 lists only its
// direct requirements in go.mod; the indirect ones come from the go.sum
// beside it, which the scan keeps for that.
func TestGoModIndirectFromGoSum(t *testing.T) {
	dir := filepath.Join("testdata", "gomod116")
	r, err := catalogEntries(t,
		imagetest.Entry{Name: "src/app/go.mod", Body: readFile(t, filepath.Join(dir, "go.mod"))},
		imagetest.Entry{Name: "src/app/go.sum", Body: readFile(t, filepath.Join(dir, "go.sum"))},
	)
	if err != nil {
		t.Fatal(err)
	}
	got := packageNames(r)
	for _, want := range []string{"github.com/sirupsen/logrus@1.9.3", "github.com/stretchr/testify@1.7.0", "github.com/davecgh/go-spew@1.1.1"} {
		if !slices.Contains(got, want) {
			t.Errorf("no %s in %q", want, got)
		}
	}
	for _, p := range r.Packages {
		if p.Name == "stdlib" {
			t.Errorf("stdlib %s from go.mod's go line: a source tree's go line builds nothing", p.Version)
		}
	}
}
