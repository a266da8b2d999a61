package scan_test

import (
	"archive/tar"
	"strings"
	"testing"

	"github.com/scangate/scangate/internal/imagetest"
	"github.com/scangate/scangate/internal/scan"
)

func opaque(dir string) imagetest.RawEntry {
	return imagetest.RawEntry{Header: tar.Header{Name: dir + "/.wh..wh..opq", Typeflag: tar.TypeReg}}
}

func dirEntry(name string) imagetest.RawEntry {
	return imagetest.RawEntry{Header: tar.Header{Name: name + "/", Typeflag: tar.TypeDir, Mode: 0o755}}
}

// TestLayerMerge: whiteouts delete a lower file and what is below it, an
// opaque folder hides lower content but keeps its own layer's, and each
// package is attributed to the layer that introduced it, also in a dpkg
// status that a later layer rewrote.
func TestLayerMerge(t *testing.T) {
	tmp := privateTemp(t)
	osRelease := imagetest.ReadFixture(t, "debian", "os-release")
	status := imagetest.ReadFixture(t, "debian", "dpkg-status")
	extra := "Package: zz-extra\nStatus: install ok installed\nVersion: 1.0\nArchitecture: amd64\n\n"
	pkg := func(dir, name, version string) imagetest.RawEntry {
		return file(dir+"/"+name+"/package.json", `{"name": "`+name+`", "version": "`+version+`"}`)
	}
	l1 := layerOf(t, file("etc/os-release", osRelease), file("var/lib/dpkg/status", status),
		pkg("app/node_modules", "gone", "1.0.0"), pkg("app/node_modules", "hidden", "1.0.0"),
		pkg("opt/node_modules", "kept", "1.0.0"), pkg("lib2/node_modules", "hidden2", "1.0.0"))
	l2 := layerOf(t, file("var/lib/dpkg/status", status+"\n"+extra),
		file("app/node_modules/.wh.gone", ""), opaque("lib2"), pkg("lib2/node_modules", "fresh", "2.0.0"),
		dirEntry("app2"), opaque("app2"), pkg("app2/node_modules", "own", "3.0.0"))
	l3 := layerOf(t, file("app/.wh.node_modules", ""), symlink("srv", "/opt"), pkg("srv/node_modules", "through-link", "4.0.0"))
	img := imagetest.Build(t, l1, l2, l3)
	r, err := catalog(t, "merge", img, hostileLimits)
	if err != nil {
		t.Fatal(err)
	}
	checkPackages(t, r)
	byName := map[string]scan.Package{}
	for _, p := range r.Packages {
		byName[p.Name] = p
	}
	for _, gone := range []string{"gone", "hidden", "hidden2"} {
		if p, ok := byName[gone]; ok {
			t.Errorf("%s shows (%+v); a whiteout or opaque folder hides it", gone, p)
		}
	}
	ids := r.Image.Layers
	want := map[string]string{"kept": ids[0], "fresh": ids[1], "own": ids[1], "zlib1g": ids[0], "zz-extra": ids[1], "through-link": ids[2]}
	for name, layer := range want {
		p, ok := byName[name]
		if !ok {
			t.Errorf("%s missing", name)
			continue
		}
		if p.Layer != layer {
			t.Errorf("%s in layer %s, want %s", name, p.Layer, layer)
		}
	}
	if p := byName["through-link"]; p.Path != "/opt/node_modules/through-link/package.json" {
		t.Errorf("through-link at %s: a file written through a link lands where it leads", p.Path)
	}
	if countDebs(r) != 89 {
		t.Errorf("%d debs, want 89", countDebs(r))
	}
	if left := leftIn(t, tmp); len(left) > 0 {
		t.Errorf("left in the temporary folder: %v", left)
	}
}

// TestSymlinkResolution: links resolve inside the root (absolute targets
// from the image root), chains up to the depth limit are followed, longer
// ones fail the scan where they hide the package database.
func TestSymlinkResolution(t *testing.T) {
	osRelease := imagetest.ReadFixture(t, "debian", "os-release")
	status := imagetest.ReadFixture(t, "debian", "dpkg-status")
	chain := func(n int) []imagetest.RawEntry {
		es := []imagetest.RawEntry{file("etc/os-release", osRelease), file("data/s"+itoa(0), status)}
		for i := 1; i <= n; i++ {
			es = append(es, symlink("data/s"+itoa(i), "s"+itoa(i-1)))
		}
		return append(es, symlink("var/lib/dpkg/status", "/data/s"+itoa(n)))
	}
	r, err := catalog(t, "chain-ok", imagetest.Build(t, layerOf(t, chain(7)...)), hostileLimits)
	if err != nil || countDebs(r) != 88 {
		t.Fatalf("chain of 8 links: %v, want 88 debs", err)
	}
	_, err = catalog(t, "chain-long", imagetest.Build(t, layerOf(t, chain(12)...)), hostileLimits)
	if err == nil || !strings.Contains(err.Error(), "chain-long") {
		t.Fatalf("chain of 13 links: err %v, want a scan error", err)
	}
	// ".." inside the root is followed.
	r, err = catalog(t, "dotdot-link", imagetest.Build(t, layerOf(t, file("etc/os-release", osRelease),
		file("var/lib/dpkg/real", status), dirEntry("a"), symlink("var/lib/dpkg/status", "../../../a/../var/lib/dpkg/real"))), hostileLimits)
	if err != nil || countDebs(r) != 88 {
		t.Fatalf("dotdot-link: %v, want 88 debs", err)
	}
}

func itoa(i int) string { return string(rune('0'+i/10)) + string(rune('0'+i%10)) }

// TestLinkedPackageFiles: a package file reached only through a link is
// read whatever the order: the link before its target in the same layer,
// after it, or in a later layer than its target.
func TestLinkedPackageFiles(t *testing.T) {
	tmp := privateTemp(t)
	pj := func(name string) string { return `{"name": "` + name + `", "version": "1.0.0"}` }
	img := imagetest.Build(t,
		layerOf(t, file("store/c", pj("cross-layer")), file("store/b", pj("target-first")),
			symlink("app/node_modules/target-first/package.json", "../../../store/b")),
		layerOf(t, symlink("app/node_modules/link-first/package.json", "/store/a"), file("store/a", pj("link-first")),
			symlink("app/node_modules/cross-layer/package.json", "/store/c")))
	r, err := catalog(t, "linked", img, hostileLimits)
	if err != nil {
		t.Fatal(err)
	}
	found := map[string]bool{}
	for _, p := range r.Packages {
		found[p.Name] = true
	}
	for _, name := range []string{"target-first", "link-first", "cross-layer"} {
		if !found[name] {
			t.Errorf("%s missing: %+v", name, r.Packages)
		}
	}
	if left := leftIn(t, tmp); len(left) > 0 {
		t.Errorf("left in the temporary folder: %v", left)
	}
}
