package cli

import (
	"encoding/json"
	"fmt"
	"maps"
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
		OS       struct{ Ecosystem string }
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

// rpmImage is an image of an RPM distribution: its os-release and an rpm
// database (constructed by rpm itself, see distrotest) at the path RHEL 9,
// Amazon Linux 2023 and the rebuilds use.
func rpmImage(t *testing.T, osRelease string, pkgs ...distrotest.RPM) v1.Image {
	t.Helper()
	return distrotest.Image(t, osRelease, map[string]string{"var/lib/rpm/rpmdb.sqlite": string(distrotest.RPMDB(t, pkgs...))})
}

func TestDistroRedHat(t *testing.T) {
	t.Run("RHEL 9", func(t *testing.T) {
		// RHEL 9.2's curl: Red Hat's VEX fixes CVE-2023-38545 in the main
		// stream's 7.76.1-26.el9_3.2 (9.2 EUS got 7.76.1-23.el9_2.4, a
		// stream scangate does not read: a machine on 9.2 EUS would be
		// told to take 9.3's build; Trivy reads the main stream too).
		// Red Hat matches by source RPM: both curl binaries are found. Its
		// VEX says RHEL 9's samba is not affected by CVE-2023-4154.
		img := rpmImage(t, "ID=\"rhel\"\nVERSION_ID=\"9.2\"\nPRETTY_NAME=\"Red Hat Enterprise Linux 9.2 (Plow)\"\n",
			distrotest.RPM{Name: "curl", Version: "7.76.1", Release: "23.el9"},
			distrotest.RPM{Name: "libcurl-minimal", Source: "curl", Version: "7.76.1", Release: "23.el9"},
			distrotest.RPM{Name: "samba-client-libs", Source: "samba", Version: "4.17.5", Release: "102.el9"},
		)
		eco, got := distroScan(t, img, "redhat")
		checkDistroScan(t, eco, "Red Hat:9", got, []string{
			"CVE-2023-38545 curl@7.76.1-23.el9 fixed HIGH 7.76.1-26.el9_3.2",
			"CVE-2023-38545 libcurl-minimal@7.76.1-23.el9 fixed HIGH 7.76.1-26.el9_3.2",
		})
	})
	t.Run("RHEL 8 not affected", func(t *testing.T) {
		img := rpmImage(t, "ID=\"rhel\"\nVERSION_ID=\"8.8\"\n",
			distrotest.RPM{Name: "curl", Version: "7.61.1", Release: "30.el8"},
			distrotest.RPM{Name: "libcurl", Source: "curl", Version: "7.61.1", Release: "30.el8"},
		)
		eco, got := distroScan(t, img, "redhat")
		checkDistroScan(t, eco, "Red Hat:8", got, nil)
	})
	t.Run("Rocky Linux 8", func(t *testing.T) {
		// Rocky's errata name binary packages. java-11-openjdk has epoch 1:
		// 1:11.0.12 is below the fix 1:11.0.13; a build without the epoch
		// would sort below any epoch-1 version.
		img := rpmImage(t, "ID=\"rocky\"\nVERSION_ID=\"8.7\"\nPRETTY_NAME=\"Rocky Linux 8.7 (Green Obsidian)\"\n",
			distrotest.RPM{Name: "firefox", Version: "102.10.0", Release: "1.el8_7"},
			distrotest.RPM{Name: "java-11-openjdk", Epoch: 1, Version: "11.0.12.0.7", Release: "0.el8_4"},
		)
		eco, got := distroScan(t, img, "rocky")
		checkDistroScan(t, eco, "Rocky Linux:8", got, []string{
			"RLSA-2021:3891 java-11-openjdk@1:11.0.12.0.7-0.el8_4 fixed MEDIUM 1:11.0.13.0.8-1.el8_4",
			"RLSA-2023:3220 firefox@102.10.0-1.el8_7 fixed UNKNOWN 0:102.11.0-2.el8_7",
		})
	})
	t.Run("AlmaLinux 9", func(t *testing.T) {
		// avahi is at the fixed build already: no finding.
		img := rpmImage(t, "ID=\"almalinux\"\nVERSION_ID=\"9.0\"\n",
			distrotest.RPM{Name: "libtiff", Version: "4.4.0", Release: "1.el9"},
			distrotest.RPM{Name: "avahi", Version: "0.8", Release: "20.el9"},
		)
		eco, got := distroScan(t, img, "alma")
		checkDistroScan(t, eco, "AlmaLinux:9", got, []string{
			"ALSA-2022:8194 libtiff@4.4.0-1.el9 fixed UNKNOWN 4.4.0-2.el9",
		})
	})
}

func TestDistroAmazonLinux(t *testing.T) {
	t.Run("2023", func(t *testing.T) {
		img := rpmImage(t, "ID=\"amzn\"\nVERSION_ID=\"2023\"\nPRETTY_NAME=\"Amazon Linux 2023\"\n",
			distrotest.RPM{Name: "rsyslog", Version: "8.2204.0", Release: "2.amzn2023.0.1"},
		)
		eco, got := distroScan(t, img, "amazon")
		checkDistroScan(t, eco, "Amazon Linux:2023", got, []string{
			"ALAS2023-2023-001 rsyslog@8.2204.0-2.amzn2023.0.1 fixed HIGH 8.2204.0-3.amzn2023.0.2",
		})
	})
	t.Run("2", func(t *testing.T) {
		// Amazon Linux 2 keeps a Berkeley DB rpm database; Debian's rpm
		// writes only sqlite, which osv-scalibr reads the same way. qemu-img
		// has epoch 10.
		img := rpmImage(t, "ID=\"amzn\"\nVERSION_ID=\"2\"\nPRETTY_NAME=\"Amazon Linux 2\"\n",
			distrotest.RPM{Name: "qemu-img", Epoch: 10, Version: "1.5.3", Release: "141.amzn2.5.2"},
		)
		eco, got := distroScan(t, img, "amazon")
		checkDistroScan(t, eco, "Amazon Linux:2", got, []string{
			"ALAS2-2018-942 qemu-img@10:1.5.3-141.amzn2.5.2 fixed HIGH 10:1.5.3-141.amzn2.5.3",
		})
	})
}

func TestDistroWolfiChainguard(t *testing.T) {
	wolfiFeed := filepath.Join("..", "..", "..", "testdata", "vulndata", "formats", "alpine", "wolfi-secdb-sample")
	pkgs := map[string]string{"lib/apk/db/installed": distrotest.APKInstalled(
		distrotest.APK{Name: "busybox", Version: "1.35.0-r2"},
		distrotest.APK{Name: "coreutils", Version: "9.1-r0"},
		distrotest.APK{Name: "curl", Version: "7.86.0-r0"},
		distrotest.APK{Name: "libcurl-openssl4", Version: "7.86.0-r0", Origin: "curl"},
	)}
	busybox := []string{
		"CVE-2022-28391 busybox@1.35.0-r2 fixed UNKNOWN 1.35.0-r3",
		"CVE-2022-30065 busybox@1.35.0-r2 fixed UNKNOWN 1.35.0-r3",
	}
	t.Run("Wolfi", func(t *testing.T) {
		// coreutils is "0" in the secdb: not affected by CVE-2016-2781.
		img := distrotest.Image(t, "ID=wolfi\nNAME=\"Wolfi\"\nPRETTY_NAME=\"Wolfi\"\nVERSION_ID=\"20230201\"\n", pkgs)
		eco, got := distroScan(t, img, wolfiFeed)
		checkDistroScan(t, eco, "Wolfi", got, busybox)
	})
	t.Run("Chainguard", func(t *testing.T) {
		// Chainguard's secdb has no distroversion; its urlprefix on
		// cgr.dev names it. The Wolfi feed does not apply to it.
		with := maps.Clone(pkgs)
		with["lib/apk/db/installed"] += distrotest.APKInstalled(distrotest.APK{Name: "bind", Version: "9.18.10-r0"})
		img := distrotest.Image(t, "ID=chainguard\nNAME=\"Chainguard\"\nPRETTY_NAME=\"Chainguard\"\n", with)
		eco, got := distroScan(t, img, "chainguard", wolfiFeed)
		checkDistroScan(t, eco, "Chainguard", got, append(slices.Clone(busybox),
			"CVE-2022-3094 bind@9.18.10-r0 fixed UNKNOWN 9.18.11-r0",
			"CVE-2022-3736 bind@9.18.10-r0 fixed UNKNOWN 9.18.11-r0",
			"CVE-2022-3924 bind@9.18.10-r0 fixed UNKNOWN 9.18.11-r0",
			// Chainguard's secdb is newer than the Wolfi sample: curl's
			// 7.87.0-r0 fixes, found on both binaries of origin curl.
			"CVE-2022-43551 curl@7.86.0-r0 fixed UNKNOWN 7.87.0-r0",
			"CVE-2022-43551 libcurl-openssl4@7.86.0-r0 fixed UNKNOWN 7.87.0-r0",
			"CVE-2022-43552 curl@7.86.0-r0 fixed UNKNOWN 7.87.0-r0",
			"CVE-2022-43552 libcurl-openssl4@7.86.0-r0 fixed UNKNOWN 7.87.0-r0",
		))
	})
}

func TestDistroDistroless(t *testing.T) {
	// A distroless image: no dpkg status, one file per package in
	// status.d, as gcr.io/distroless/base-debian12 lays them out.
	img := distrotest.Image(t, imagetest.ReadFixture(t, "debian", "os-release"), map[string]string{
		"var/lib/dpkg/status.d/zlib1g": distrotest.DpkgStatus(distrotest.Deb{Name: "zlib1g", Version: "1:1.2.13.dfsg-1", Source: "zlib"}),
	})
	eco, got := distroScan(t, img, filepath.Join("..", "..", "..", "testdata", "vulndata", "debian"))
	checkDistroScan(t, eco, "Debian:12", got, []string{
		// The tracker's urgency "not yet assigned" is no rating: UNKNOWN.
		"CVE-2023-45853 zlib1g@1:1.2.13.dfsg-1 unfixed UNKNOWN",
	})
}
