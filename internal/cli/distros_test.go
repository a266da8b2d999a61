package cli

import (
	"encoding/json"
	"fmt"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/scangate/scangate/internal/distrotest"
	"github.com/scangate/scangate/internal/imagetest"
)

// The cross-checks of the distributions Amazon Inspector scans: each
// imports its family's real upstream sample (internal/feed/testdata/<family>,
// see SOURCES.md there) with `db import`, scans an image whose package
// database is constructed in the test (distrotest says how), through
// `scangate scan` of a docker archive, and compares every finding.

// distroFeeds is where the families' samples live, from this package.
var distroFeeds = filepath.Join("..", "feed", "testdata")

// distroScan imports the feeds, scans img and returns the OS ecosystem and
// the findings, one line each: "ID package@version status fixed...".
func distroScan(t *testing.T, img v1.Image, feeds ...string) (string, []string) {
	t.Helper()
	dir := t.TempDir()
	var paths []string
	for _, f := range feeds {
		paths = append(paths, filepath.Join(distroFeeds, f))
	}
	run(t, dir, append([]string{"db", "import"}, paths...)...).must(t)
	archive := imagetest.WriteDockerArchive(t, filepath.Join(t.TempDir(), "img.tar"), "127.0.0.1:5000/distro:1", img)
	r := run(t, dir, "--format", "json", "scan", "docker-archive:"+archive).must(t)
	var rep struct {
		OS struct{ Ecosystem string }
		Packages []struct {
			Name, Version, Ecosystem string
		}
		Findings []struct {
			ID       string
			Package  int
			Status   string
			Fixed    []string
			Severity string
		}
	}
	if err := json.Unmarshal([]byte(r.stdout), &rep); err != nil {
		t.Fatalf("json report: %v\n%s", err, r.stdout)
	}
	var out []string
	for _, f := range rep.Findings {
		p := rep.Packages[f.Package]
		line := fmt.Sprintf("%s %s@%s %s %s", f.ID, p.Name, p.Version, f.Status, f.Severity)
		if len(f.Fixed) > 0 {
			line += " " + strings.Join(f.Fixed, ",")
		}
		out = append(out, line)
	}
	slices.Sort(out)
	return rep.OS.Ecosystem, out
}

func checkDistroScan(t *testing.T, gotEco, wantEco string, got, want []string) {
	t.Helper()
	if gotEco != wantEco {
		t.Errorf("OS ecosystem %q, want %q", gotEco, wantEco)
	}
	slices.Sort(want)
	for _, w := range want {
		if !slices.Contains(got, w) {
			t.Errorf("missing finding %s", w)
		}
	}
	for _, g := range got {
		if !slices.Contains(want, g) {
			t.Errorf("unexpected finding %s", g)
		}
	}
}

// jammy is a constructed Ubuntu 22.04 package set, at the versions of the
// release as published (the ubuntu:22.04 image of April 2022).
var jammy = []distrotest.Deb{
	{Name: "coreutils", Version: "8.32-4.1ubuntu1"},
	{Name: "libgcrypt20", Version: "1.9.4-3ubuntu3"},
	{Name: "libpam-modules", Version: "1.4.0-11ubuntu2", Source: "pam"},
	{Name: "libpam0g", Version: "1.4.0-11ubuntu2", Source: "pam"},
	{Name: "libssl3", Version: "3.0.2-0ubuntu1", Source: "openssl"},
	{Name: "openssl", Version: "3.0.2-0ubuntu1"},
	{Name: "zlib1g", Version: "1:1.2.11.dfsg-2ubuntu9", Source: "zlib"},
}

const jammyOSRelease = `PRETTY_NAME="Ubuntu 22.04 LTS"
NAME="Ubuntu"
VERSION_ID="22.04"
VERSION="22.04 (Jammy Jellyfish)"
VERSION_CODENAME=jammy
ID=ubuntu
ID_LIKE=debian
UBUNTU_CODENAME=jammy
`

// jammyFindings are what Canonical's records say of jammy: its OSV records
// name the release "Ubuntu:22.04:LTS" (before scangate named it so, this
// image had no finding at all). The severity is the record's CVSS; Ubuntu's
// priority is kept beside it (--severity-source vendor picks it). Canonical
// gives neither a CVSS nor a priority for CVE-2024-2236, an open entry: it
// is UNKNOWN, never LOW.
var jammyFindings = []string{
	"CVE-2016-2781 coreutils@8.32-4.1ubuntu1 unfixed MEDIUM",
	"CVE-2023-0286 libssl3@3.0.2-0ubuntu1 fixed HIGH 3.0.2-0ubuntu1.8",
	"CVE-2023-0286 openssl@3.0.2-0ubuntu1 fixed HIGH 3.0.2-0ubuntu1.8",
	"CVE-2024-22365 libpam-modules@1.4.0-11ubuntu2 fixed MEDIUM 1.4.0-11ubuntu2.4",
	"CVE-2024-22365 libpam0g@1.4.0-11ubuntu2 fixed MEDIUM 1.4.0-11ubuntu2.4",
	"CVE-2024-2236 libgcrypt20@1.9.4-3ubuntu3 unfixed UNKNOWN",
}

func TestDistroUbuntu(t *testing.T) {
	t.Run("22.04", func(t *testing.T) {
		img := distrotest.Image(t, jammyOSRelease, map[string]string{"var/lib/dpkg/status": distrotest.DpkgStatus(jammy...)})
		eco, got := distroScan(t, img, "ubuntu")
		checkDistroScan(t, eco, "Ubuntu:22.04:LTS", got, jammyFindings)
	})
	t.Run("22.04 with Pro", func(t *testing.T) {
		// One ESM build installed makes the machine a Pro one: the
		// standard records still apply, and Pro's would too.
		pkgs := append(slices.Clone(jammy), distrotest.Deb{Name: "libcurl4", Version: "7.81.0-1ubuntu1.16+esm1", Source: "curl"})
		img := distrotest.Image(t, jammyOSRelease, map[string]string{"var/lib/dpkg/status": distrotest.DpkgStatus(pkgs...)})
		eco, got := distroScan(t, img, "ubuntu")
		checkDistroScan(t, eco, "Ubuntu:Pro:22.04:LTS", got, jammyFindings)
	})
	xenial := `PRETTY_NAME="Ubuntu 16.04.7 LTS"
NAME="Ubuntu"
VERSION_ID="16.04"
ID=ubuntu
`
	t.Run("16.04 with Pro", func(t *testing.T) {
		// 16.04's standard support ended in 2021; the fixes since are
		// Pro's, in "Ubuntu:Pro:16.04:LTS".
		img := distrotest.Image(t, xenial, map[string]string{"var/lib/dpkg/status": distrotest.DpkgStatus(
			distrotest.Deb{Name: "coreutils", Version: "8.25-2ubuntu3~16.04"},
			distrotest.Deb{Name: "libgcrypt20", Version: "1.6.5-2ubuntu0.6"},
			distrotest.Deb{Name: "libpam0g", Version: "1.1.8-3.2ubuntu2.3+esm4", Source: "pam"},
			distrotest.Deb{Name: "libssl1.0.0", Version: "1.0.2g-1ubuntu4.20+esm5", Source: "openssl"},
		)})
		eco, got := distroScan(t, img, "ubuntu")
		checkDistroScan(t, eco, "Ubuntu:Pro:16.04:LTS", got, []string{
			"CVE-2016-2781 coreutils@8.25-2ubuntu3~16.04 unfixed MEDIUM",
			"CVE-2023-0286 libssl1.0.0@1.0.2g-1ubuntu4.20+esm5 fixed HIGH 1.0.2g-1ubuntu4.20+esm6",
			"CVE-2024-22365 libpam0g@1.1.8-3.2ubuntu2.3+esm4 fixed MEDIUM 1.1.8-3.2ubuntu2.3+esm5",
			"CVE-2024-2236 libgcrypt20@1.6.5-2ubuntu0.6 unfixed UNKNOWN",
		})
	})
	t.Run("16.04 without Pro", func(t *testing.T) {
		// Pro's records are kept apart: a machine without Pro is never
		// told to install an ESM build it cannot get. Trivy does the same
		// (ESM data only when ESM is enabled); Grype matches ESM fixes for
		// every 16.04 machine. scangate's way is right for the fix offered,
		// but it means this end-of-life release gets no finding from
		// records Canonical now publishes only for Pro; the README says so.
		img := distrotest.Image(t, xenial, map[string]string{"var/lib/dpkg/status": distrotest.DpkgStatus(
			distrotest.Deb{Name: "libpam0g", Version: "1.1.8-3.2ubuntu2.3", Source: "pam"},
			distrotest.Deb{Name: "libssl1.0.0", Version: "1.0.2g-1ubuntu4.20", Source: "openssl"},
		)})
		eco, got := distroScan(t, img, "ubuntu")
		checkDistroScan(t, eco, "Ubuntu:16.04:LTS", got, nil)
	})
}
