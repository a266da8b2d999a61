package cli

import (
	"encoding/json"
	"fmt"
	"maps"
	"os"
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

// suseImage is an image of a SUSE release: its os-release and an rpm
// database in SUSE's rpm directory, usr/lib/sysimage/rpm. SLE 15 and Leap 15
// keep an ndb Packages.db there, which Debian's rpm cannot write (it has no
// ndb backend); SLE 16 keeps the sqlite rpmdb.sqlite written here. The
// extractor reads both through the same package list.
func suseImage(t *testing.T, osRelease string, pkgs ...distrotest.RPM) v1.Image {
	t.Helper()
	return distrotest.Image(t, osRelease, map[string]string{"usr/lib/sysimage/rpm/rpmdb.sqlite": string(distrotest.RPMDB(t, pkgs...))})
}

// sles is a BCI-style os-release: ID "sles" with the service pack as the
// minor version.
func sles(version, pretty string) string {
	return "NAME=\"SLES\"\nVERSION_ID=\"" + version + "\"\nPRETTY_NAME=\"" + pretty + "\"\nID=\"sles\"\nID_LIKE=\"suse\"\n"
}

// TestDistroSUSE imports SUSE's CVRF (internal/feed/testdata/suse). SUSE's
// advisories name binary RPMs, so packages match by their own names; every
// binary of a fixed source RPM is listed (kernel-rt and kernel-devel-rt,
// glibc and nscd), and each one installed below its fix is found.
func TestDistroSUSE(t *testing.T) {
	kernelRT := []distrotest.RPM{
		{Name: "kernel-rt", Version: "4.12.14", Release: "14.11.1"},
		// At the fix already: no finding.
		{Name: "kernel-devel-rt", Source: "kernel-source-rt", Version: "4.12.14", Release: "14.14.2"},
		{Name: "glibc", Version: "2.26", Release: "13.36.1"},
	}
	t.Run("SLES 15 SP1", func(t *testing.T) {
		// SUSE files the real-time kernel under the Realtime and OBS
		// Development Tools modules of 15 SP1, never under "Server 15 SP1":
		// a server query that read only its product's name would find
		// nothing. scangate reads every product of the service pack.
		img := suseImage(t, sles("15.1", "SUSE Linux Enterprise Server 15 SP1"), kernelRT...)
		eco, got := distroScan(t, img, "suse")
		checkDistroScan(t, eco, "SUSE:Linux Enterprise Server 15 SP1", got, []string{
			"SUSE-SU-2019:3295-1 kernel-rt@4.12.14-14.11.1 fixed HIGH 4.12.14-14.14.3",
		})
	})
	t.Run("SLES 15 SP2 is another service pack", func(t *testing.T) {
		img := suseImage(t, sles("15.2", "SUSE Linux Enterprise Server 15 SP2"), kernelRT...)
		eco, got := distroScan(t, img, "suse")
		checkDistroScan(t, eco, "SUSE:Linux Enterprise Server 15 SP2", got, nil)
	})
	t.Run("openSUSE Leap 15.0", func(t *testing.T) {
		img := suseImage(t, "NAME=\"openSUSE Leap\"\nVERSION=\"15.0\"\nID=\"opensuse-leap\"\nID_LIKE=\"suse opensuse\"\nVERSION_ID=\"15.0\"\nPRETTY_NAME=\"openSUSE Leap 15.0\"\n",
			distrotest.RPM{Name: "glibc", Version: "2.26", Release: "lp150.11.1.1"},
			distrotest.RPM{Name: "nscd", Source: "glibc", Version: "2.26", Release: "lp150.11.1.1"},
			distrotest.RPM{Name: "kernel-rt", Version: "4.12.14", Release: "14.11.1"},
		)
		eco, got := distroScan(t, img, "suse")
		checkDistroScan(t, eco, "openSUSE:Leap 15.0", got, []string{
			"openSUSE-SU-2018:1633-1 glibc@2.26-lp150.11.1.1 fixed MEDIUM 2.26-lp150.11.3.2",
			"openSUSE-SU-2018:1633-1 nscd@2.26-lp150.11.1.1 fixed MEDIUM 2.26-lp150.11.3.2",
		})
	})
	t.Run("SLES 12 SP4 with the Legacy module", func(t *testing.T) {
		// SLE 12's modules have no service pack ("Module for Legacy
		// Software 12"): every SLE 12 service pack reads them. Trivy files
		// the module under "SUSE Linux Enterprise 12", which its SLES 12.4
		// query never reads, and misses this.
		img := suseImage(t, sles("12.4", "SUSE Linux Enterprise Server 12 SP4"),
			distrotest.RPM{Name: "compat-openssl098", Version: "0.9.8j", Release: "106.9.1"},
		)
		eco, got := distroScan(t, img, "suse")
		checkDistroScan(t, eco, "SUSE:Linux Enterprise Server 12 SP4", got, []string{
			"SUSE-SU-2019:1608-1 compat-openssl098@0.9.8j-106.9.1 fixed MEDIUM 0.9.8j-106.12.1",
		})
	})
	python := []distrotest.RPM{
		{Name: "python", Version: "2.6.9", Release: "40.20.1"},
		{Name: "python-base", Version: "2.6.9", Release: "40.20.1"},
	}
	t.Run("SLES 11 SP4 with LTSS", func(t *testing.T) {
		// SUSE-SU-2019:14018-1 fixes python for 11 SP4's LTSS only. The
		// machine installed the LTSS product (sles-ltss-release), so it can
		// install the fix.
		pkgs := append(slices.Clone(python), distrotest.RPM{Name: "sles-ltss-release", Version: "11.4", Release: "1.1"})
		img := suseImage(t, sles("11.4", "SUSE Linux Enterprise Server 11 SP4"), pkgs...)
		eco, got := distroScan(t, img, "suse")
		checkDistroScan(t, eco, "SUSE:Linux Enterprise Server 11 SP4-LTSS", got, []string{
			"SUSE-SU-2019:14018-1 python-base@2.6.9-40.20.1 fixed HIGH 2.6.9-40.24.1",
			"SUSE-SU-2019:14018-1 python@2.6.9-40.20.1 fixed HIGH 2.6.9-40.24.1",
		})
	})
	t.Run("SLES 11 SP4 without LTSS", func(t *testing.T) {
		// LTSS's fixes are kept apart, as Ubuntu Pro's are: a machine
		// without the subscription is never told to install a build it
		// cannot get. Trivy folds LTSS into the service pack and would
		// report both; scangate's way is right for the fix offered, at the
		// cost of no finding from advisories SUSE publishes for LTSS only.
		img := suseImage(t, sles("11.4", "SUSE Linux Enterprise Server 11 SP4"), python...)
		eco, got := distroScan(t, img, "suse")
		checkDistroScan(t, eco, "SUSE:Linux Enterprise Server 11 SP4", got, nil)
	})
}

// ol is an Oracle Linux os-release, as oraclelinux images ship it.
func ol(version string) string {
	return "NAME=\"Oracle Linux Server\"\nVERSION=\"" + version + "\"\nID=\"ol\"\nID_LIKE=\"fedora\"\nVERSION_ID=\"" + version + "\"\nPRETTY_NAME=\"Oracle Linux Server " + version + "\"\n"
}

// TestDistroOracleLinux imports Oracle's ELSA OVAL samples
// (internal/feed/testdata/oracle: 18 ELSAs). ELSAs name binary packages.
//
// Cross-check with Trivy (trivy-db's oracle-oval and Trivy's Oracle
// detector, read at trivy-db a0049d7a and trivy dc3c56ee): Trivy reports by
// CVE (CVE-2019-14287 for sudo, with ELSA-2019-4821 as its vendor id) where
// scangate reports the ELSA with its CVEs as aliases, and rates by the
// ELSA's severity as scangate does (IMPORTANT is HIGH). It keeps fixes per
// architecture and filters by flavour as scangate does: nothing on the
// x86_64 rsyslog at 57.0.1, the aarch64 one found, the Ksplice openssl
// found and the normal openssl-libs not. Where they differ: trivy-db drops
// every "earlier than" test outside an architecture branch, which is all
// of the older definitions (OL5-OL7 of the bz2 sample), so Trivy reports
// neither git, kernel-uek nor sudo here; and it matches a package by its own
// architecture, so the noarch rsyslog-doc (listed under each machine
// architecture) is never found. Trivy also reads no "Module ... is
// enabled" criterion: a module package meets every stream's fixes. Grype's
// data (vunnel) drops the Ksplice fixes: Grype would miss the Ksplice
// openssl.
func TestDistroOracleLinux(t *testing.T) {
	t.Run("7 x86_64", func(t *testing.T) {
		img := rpmImage(t, ol("7.9"),
			distrotest.RPM{Name: "sudo", Version: "1.8.23", Release: "4.el7"},
			distrotest.RPM{Name: "git", Version: "1.8.3.1", Release: "5.el7"},
			distrotest.RPM{Name: "kernel-uek", Version: "4.14.35", Release: "1902.5.1.el7uek"},
			// ELSA-2022-4803 fixes rsyslog in 57.0.1 on x86_64 and in
			// 57.0.4 on aarch64: this build is fixed here. A noarch
			// package is matched for the machine's architecture.
			distrotest.RPM{Name: "rsyslog", Version: "8.24.0", Release: "57.0.1.el7_9.3"},
			distrotest.RPM{Name: "rsyslog-doc", Source: "rsyslog", Version: "8.24.0", Release: "57.el7_9.1", Arch: "noarch"},
			// ELSA-2011-1268 fixes xulrunner for Oracle Linux 5 and 6 only.
			distrotest.RPM{Name: "xulrunner", Version: "1.9.2.20", Release: "1.el6"},
		)
		eco, got := distroScan(t, img, "oracle")
		checkDistroScan(t, eco, "Oracle Linux:7", got, []string{
			"ELSA-2015-2561 git@1.8.3.1-5.el7 fixed MEDIUM 1.8.3.1-6.el7",
			"ELSA-2019-4820 kernel-uek@4.14.35-1902.5.1.el7uek fixed HIGH 4.14.35-1902.6.6.el7uek",
			"ELSA-2019-4821 sudo@1.8.23-4.el7 fixed HIGH 1.8.23-4.0.1.el7",
			"ELSA-2022-4803 rsyslog-doc@8.24.0-57.el7_9.1 fixed HIGH 8.24.0-57.0.1.el7_9.3",
		})
	})
	t.Run("7 aarch64", func(t *testing.T) {
		img := rpmImage(t, ol("7.9"),
			distrotest.RPM{Name: "rsyslog", Version: "8.24.0", Release: "57.0.1.el7_9.3", Arch: "aarch64"},
		)
		eco, got := distroScan(t, img, "oracle")
		checkDistroScan(t, eco, "Oracle Linux:7", got, []string{
			"ELSA-2022-4803 rsyslog@8.24.0-57.0.1.el7_9.3 fixed HIGH 8.24.0-57.0.4.el7_9.3",
		})
	})
	t.Run("8 Ksplice", func(t *testing.T) {
		// ELSA-2021-9151 fixes the Ksplice userspace openssl in
		// 2:1.1.1g-15.ksplice1.el8_3. The normal openssl-libs (epoch 1)
		// sorts below it but is another line of builds: no finding.
		img := rpmImage(t, ol("8.3"),
			distrotest.RPM{Name: "openssl", Epoch: 2, Version: "1.1.1g", Release: "12.ksplice1.el8_3"},
			distrotest.RPM{Name: "openssl-libs", Source: "openssl", Epoch: 1, Version: "1.1.1g", Release: "15.el8_3"},
		)
		eco, got := distroScan(t, img, "oracle")
		checkDistroScan(t, eco, "Oracle Linux:8", got, []string{
			"ELSA-2021-9151 openssl@2:1.1.1g-12.ksplice1.el8_3 fixed HIGH 2:1.1.1g-15.ksplice1.el8_3",
		})
	})
}

// TestDistroRedHatModules imports Red Hat's VEX of CVE-2023-2454
// (PostgreSQL; internal/feed/testdata/redhat), whose fixes for RHEL 8 are
// builds of four module streams (postgresql:10, :12, :13, :15) and for
// RHEL 9 a non-modular build (13.11-1.el9_2) beside a postgresql:15
// module build. This document (of 2023) names a fixed module build by its
// NEVRA alone ("postgresql-0:15.3-1.module+el9.2.0.z+19113+6f5d9d63.src"),
// not its stream, so those builds cannot be told apart and are left out
// (today's documents prefix the stream, "postgresql:15:...:postgresql-0:15.3-...",
// and are kept under "postgresql:15/postgresql"); the stream's known_affected
// entry, "red_hat_enterprise_linux_9:postgresql:15/postgresql", names it.
// The stream of an installed package is its modularity label, which rpm
// records and scangate reads.
func TestDistroRedHatModules(t *testing.T) {
	t.Run("RHEL 9 non-modular", func(t *testing.T) {
		// Compared with the non-modular fix only: taking the highest of
		// all of RHEL 9's fixes would tell it to install 15.3, a module
		// build, and would flag 13.11-1.el9_2 itself.
		img := rpmImage(t, "ID=\"rhel\"\nVERSION_ID=\"9.2\"\n",
			distrotest.RPM{Name: "postgresql", Version: "13.10", Release: "1.el9"},
			distrotest.RPM{Name: "postgresql-server", Source: "postgresql", Version: "13.11", Release: "1.el9_2"},
		)
		eco, got := distroScan(t, img, "redhat")
		checkDistroScan(t, eco, "Red Hat:9", got, []string{
			"CVE-2023-2454 postgresql@13.10-1.el9 fixed HIGH 13.11-1.el9_2",
		})
	})
	t.Run("RHEL 9 postgresql:15", func(t *testing.T) {
		// The label puts the package in postgresql:15, which Red Hat's
		// document says is affected; without it the package would be
		// compared with the non-modular 13.11 fix and pass.
		img := rpmImage(t, "ID=\"rhel\"\nVERSION_ID=\"9.2\"\n",
			distrotest.RPM{Name: "postgresql", Version: "15.2", Release: "1.module+el9.2.0+17906+d9f5d10d", Module: "postgresql:15:9020020230118094915:rhel9"},
		)
		eco, got := distroScan(t, img, "redhat")
		checkDistroScan(t, eco, "Red Hat:9", got, []string{
			"CVE-2023-2454 postgresql@15.2-1.module+el9.2.0+17906+d9f5d10d unfixed HIGH",
		})
	})
	t.Run("RHEL 8 postgresql:10", func(t *testing.T) {
		// RHEL 8's fixes are all stream builds the document does not name:
		// no finding, where the highest of them (15.3) would have been
		// offered to a postgresql:10 machine.
		img := rpmImage(t, "ID=\"rhel\"\nVERSION_ID=\"8.6\"\n",
			distrotest.RPM{Name: "postgresql", Version: "10.21", Release: "2.module+el8.6.0+14357+d1d3b2b8", Module: "postgresql:10:8060020220308102432:ad008a3a"},
		)
		eco, got := distroScan(t, img, "redhat")
		checkDistroScan(t, eco, "Red Hat:8", got, nil)
	})
}

// TestDistroBottlerocket imports Bottlerocket's BRSA sample
// (internal/feed/testdata/bottlerocket: BRSA-1bwujdrkn6nc for kernel-6.1,
// BRSA-kdg8bd1th2gb for glibc) and scans an image of a real Bottlerocket
// os-release and application inventory (Trivy's excerpts,
// internal/scan/testdata/bottlerocket). Bottlerocket has no rpm database;
// the inventory lists its RPMs.
//
// Cross-check with Trivy (trivy-db's bottlerocket source, its Bottlerocket
// detector): Trivy compares the same inventory with the same fixed
// versions in RPM order, by package name, without a release, so it finds
// the same two packages, by CVE (CVE-2024-43840, CVE-2025-15281) where
// scangate reports the BRSA with its CVE as alias.
func TestDistroBottlerocket(t *testing.T) {
	fixture := func(name string) string {
		data, err := os.ReadFile(filepath.Join("..", "scan", "testdata", "bottlerocket", name))
		if err != nil {
			t.Fatal(err)
		}
		return string(data)
	}
	osRelease := fixture("os-release")
	t.Run("February 2025", func(t *testing.T) {
		img := distrotest.Image(t, osRelease, map[string]string{"usr/share/bottlerocket/application-inventory.json": fixture("application-inventory-2025-02.json")})
		eco, got := distroScan(t, img, "bottlerocket")
		checkDistroScan(t, eco, "Bottlerocket", got, []string{
			"BRSA-1bwujdrkn6nc kernel-6.1@6.1.128-1.1740603423.4d405dc9.br1 fixed MEDIUM 6.1.140-1.1749663821.e27d1b03.br1",
			"BRSA-kdg8bd1th2gb glibc@1:2.40-1.1740525475.e3a5862c.br1 fixed MEDIUM 1:2.43-1.1773716061.e2e9d7a9.br1",
		})
	})
	t.Run("June 2026", func(t *testing.T) {
		// Both fixed: glibc 1:2.43-1.1781747852 is above the fix's build.
		img := distrotest.Image(t, osRelease, map[string]string{"usr/share/bottlerocket/application-inventory.json": fixture("application-inventory-2026-06.json")})
		eco, got := distroScan(t, img, "bottlerocket")
		checkDistroScan(t, eco, "Bottlerocket", got, nil)
	})
}
