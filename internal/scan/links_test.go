package scan_test

import (
	"maps"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/scangate/scangate/internal/imagetest"
	"github.com/scangate/scangate/internal/scan"
)

// debianJars are two real Debian bookworm packages (apt-get download; see
// testdata/deb/NOTICE). Each installs its jar once under /usr/share/java
// and three links to it: the versioned name beside it and two in
// /usr/share/maven-repo.
var debianJars = []string{
	filepath.Join("testdata", "deb", "libcommons-io-java_2.11.0-2_all.deb"),
	filepath.Join("testdata", "deb", "libcommons-lang3-java_3.12.0-2+deb12u1_all.deb"),
}

// TestDebianJarsThroughSymlinks scans Debian bookworm with
// libcommons-io-java and libcommons-lang3-java installed as dpkg installs
// them: each jar is one file reached through four paths, so it is one
// Maven package with its four locations, and each advisory is one finding.
func TestDebianJarsThroughSymlinks(t *testing.T) {
	layer, _ := debLayer(t, imagetest.ReadFixture(t, "debian", "dpkg-status"), debianJars...)
	img := imagetest.Build(t, imagetest.BookwormBase(t), layer)
	data := importFeeds(t, filepath.Join(feedFixtures, "maven"), filepath.Join(imagetest.Fixtures, "debian"))
	r := scanArchive(t, data, img)

	want := map[string][]string{
		"commons-io:commons-io 2.11.0": {
			"/usr/share/java/commons-io.jar",
			"/usr/share/java/commons-io-2.11.0.jar",
			"/usr/share/maven-repo/commons-io/commons-io/2.11.0/commons-io-2.11.0.jar",
			"/usr/share/maven-repo/commons-io/commons-io/debian/commons-io-debian.jar",
		},
		"org.apache.commons:commons-lang3 3.12.0": {
			"/usr/share/java/commons-lang3.jar",
			"/usr/share/java/commons-lang3-3.12.0.jar",
			"/usr/share/maven-repo/org/apache/commons/commons-lang3/3.12.0/commons-lang3-3.12.0.jar",
			"/usr/share/maven-repo/org/apache/commons/commons-lang3/debian/commons-lang3-debian.jar",
		},
	}
	got := map[string][]string{}
	debs := map[string]string{}
	for _, p := range r.Packages {
		switch p.Type {
		case "java":
			key := p.Name + " " + p.Version
			if _, dup := got[key]; dup {
				t.Errorf("%s listed twice (second at %s)", key, p.Path)
			}
			got[key] = p.Locations
			if want, ok := want[key]; ok && p.Path != want[0] {
				t.Errorf("%s at %s, want the jar itself, %s", key, p.Path, want[0])
			}
		case "deb":
			debs[p.Name] = p.Version
		}
	}
	if len(got) != len(want) {
		t.Errorf("%d Maven packages, want %d: %v", len(got), len(want), got)
	}
	for key, paths := range want {
		if !slices.Equal(got[key], paths) {
			t.Errorf("%s locations\n got %q\nwant %q", key, got[key], paths)
		}
	}
	// The Debian packages that own the jars are listed too, from dpkg.
	if debs["libcommons-io-java"] != "2.11.0-2" || debs["libcommons-lang3-java"] != "3.12.0-2+deb12u1" {
		t.Errorf("deb packages: io %q, lang3 %q", debs["libcommons-io-java"], debs["libcommons-lang3-java"])
	}

	// One finding per advisory and jar, as a user counts them.
	findings := map[string]int{}
	for _, f := range r.Findings {
		p := r.Packages[f.Package]
		if p.Type == "java" {
			findings[f.ID+" "+p.Name]++
		}
	}
	wantFindings := map[string]int{
		// Apache's advisory: commons-io 2.0 up to 2.14.0. Debian ships
		// 2.11.0-2 unpatched; trivy and osv-scanner report the same.
		"GHSA-78wr-2p64-hpwj commons-io:commons-io": 1,
		// commons-lang3 3.0 up to 3.18.0. Debian's 3.12.0-2+deb12u1 carries
		// the fix as a patch (its changelog: "d/patches/CVE-2025-48924.patch"),
		// but the jar's pom.properties still says 3.12.0, so scangate, like
		// trivy and osv-scanner (osv.dev answers GHSA-j288-q9x7-2f5v for
		// commons-lang3 3.12.0), reports it: on this image the finding is
		// a false positive that only Debian's own tracker can clear.
		"GHSA-j288-q9x7-2f5v org.apache.commons:commons-lang3": 1,
	}
	if !maps.Equal(findings, wantFindings) {
		t.Errorf("Maven findings %v, want %v", findings, wantFindings)
	}

	// The table a person reads names each advisory once.
	archive := imagetest.WriteDockerArchive(t, filepath.Join(t.TempDir(), "jars.tar"), "127.0.0.1:5000/jars:1", img)
	table, errs, code := runScangate(t, data, "scan", "docker-archive:"+archive)
	if code != 0 {
		t.Fatalf("scangate scan: exit %d\n%s", code, errs)
	}
	for id := range wantFindings {
		id = strings.Fields(id)[0]
		if n := strings.Count(table, id); n != 1 {
			t.Errorf("the table names %s %d times, want once:\n%s", id, n, table)
		}
	}
}

// TestLinkedFileCountsOnce: a package file reached through a symlink and
// a hard link is one package, at the file's own path, whichever layer adds
// the links. A folder reached through a link is not walked again (the walk
// follows links to files, not to folders, so it cannot loop).
func TestLinkedFileCountsOnce(t *testing.T) {
	lock := readFile(t, filepath.Join("testdata", "lockfiles", "trivy", "composer", "composer.lock"))
	img := imagetest.Build(t,
		imagetest.Layer(t, imagetest.Entry{Name: "srv/app/composer.lock", Body: lock}),
		imagetest.Layer(t,
			imagetest.Entry{Name: "var/www", Link: "/srv/app"}, // not walked
			imagetest.Entry{Name: "opt/composer.lock", Link: "../srv/app/composer.lock"},
			imagetest.Entry{Name: "home/composer.lock", Hardlink: "srv/app/composer.lock"},
		))
	r := scanArchive(t, importFeeds(t, filepath.Join(feedFixtures, "packagist")), img)
	var psr7 []scan.Package
	for _, p := range r.Packages {
		if p.Name == "guzzlehttp/psr7" {
			psr7 = append(psr7, p)
		}
	}
	want := []string{"/srv/app/composer.lock", "/home/composer.lock", "/opt/composer.lock"}
	if len(psr7) != 1 || psr7[0].Path != want[0] || !slices.Equal(psr7[0].Locations, want) {
		t.Fatalf("guzzlehttp/psr7: %+v; want one package at %s with locations %q", psr7, want[0], want)
	}
	n := 0
	for _, f := range r.Findings {
		if f.ID == "GHSA-q7rv-6hp3-vh96" {
			n++
		}
	}
	if n != 1 {
		t.Errorf("GHSA-q7rv-6hp3-vh96 found %d times, want once", n)
	}
}
