package scan_test

import (
	"context"
	"errors"
	"os"
	"strings"
	"testing"

	"github.com/scangate/scangate/internal/image"
	"github.com/scangate/scangate/internal/imagetest"
	"github.com/scangate/scangate/internal/layercache"
	"github.com/scangate/scangate/internal/scan"
)

// TestArchiveReadInPlace scans what the real Docker Engine's `docker save`
// writes (uncompressed layer.tar files), whose package files the scan reads
// where they are in the archive instead of copying them out as it reads
// each layer. The report is the one the image gives read from its layers;
// a layer cache filled from the archive serves the image again without
// reading a byte of it; and a write to the archive while it is scanned
// fails the scan, with nothing kept in the cache.
func TestArchiveReadInPlace(t *testing.T) {
	ctx := context.Background()
	goBin := goBinary(t, t.TempDir()) // over a megabyte: read in place
	img := imagetest.Build(t, imagetest.BookwormBase(t),
		imagetest.Layer(t,
			imagetest.Entry{Name: "usr/local/bin/hello", Body: goBin, Mode: 0o755},
			imagetest.Entry{Name: "usr/bin/true", Body: cBinary(t), Mode: 0o755},
			imagetest.Entry{Name: "usr/lib/libhello.so.1", Link: "../local/bin/hello"},
			imagetest.Entry{Name: "app/node_modules/lodash/package.json", Body: `{"name": "lodash", "version": "4.17.15"}`},
		))
	path, _ := imagetest.DockerSave(t, img, "127.0.0.1:5000/in-place-test:1")
	open := func() *image.Image {
		t.Helper()
		opened, err := image.Open(ctx, "docker-archive:"+path, image.Options{TempDir: t.TempDir()})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { opened.Close() })
		return opened
	}

	want, err := scan.Catalog(ctx, img, scan.ImageInfo{Ref: "layers"}, scan.DefaultLimits)
	if err != nil {
		t.Fatal(err)
	}
	cache, err := layercache.Open(t.TempDir(), 0)
	if err != nil {
		t.Fatal(err)
	}
	got, err := scan.CatalogWithCache(ctx, open().Image, scan.ImageInfo{Ref: "archive"}, scan.DefaultLimits, cache)
	if err != nil {
		t.Fatal(err)
	}
	if g, w := packagesJSON(t, got), packagesJSON(t, want); g != w {
		t.Errorf("read in place from the archive:\n%s\nread from the layers:\n%s", g, w)
	}
	stdlib := find(got, "stdlib")
	if len(stdlib) != 1 || stdlib[0].Path != "/usr/local/bin/hello" || len(stdlib[0].Locations) != 2 {
		t.Errorf("stdlib %+v; want the Go binary's, found through its link too", stdlib)
	}
	if len(find(got, "dpkg")) != 1 || len(find(got, "lodash")) != 1 {
		t.Errorf("the archive's dpkg status or package.json was not read: %s", packagesJSON(t, got))
	}
	again, read, err := catalogCounting(t, img, cache, scan.DefaultLimits)
	if err != nil {
		t.Fatal(err)
	}
	if read != 0 {
		t.Errorf("the cache filled from the archive: %d layer bytes read again; want none", read)
	}
	if g, w := packagesJSON(t, again), packagesJSON(t, want); g != w {
		t.Errorf("from the cache filled from the archive:\n%s\nread from the layers:\n%s", g, w)
	}

	// The same bytes written over the archive's first block, after it was
	// opened: every byte is what it was, but the scan cannot know that.
	changed := open()
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	block := make([]byte, 512)
	if _, err := f.ReadAt(block, 0); err != nil {
		t.Fatal(err)
	}
	if _, err := f.WriteAt(block, 0); err != nil {
		t.Fatal(err)
	}
	f.Close()
	empty, err := layercache.Open(t.TempDir(), 0)
	if err != nil {
		t.Fatal(err)
	}
	// Through the progress bar's wrapper, as a terminal sees it: still read
	// in place, so still checked.
	withBar := image.WithProgress(changed.Image, func(int64) {})
	if _, err := scan.CatalogWithCache(ctx, withBar, scan.ImageInfo{Ref: "changed"}, scan.DefaultLimits, empty); !errors.Is(err, image.ErrChanged) || !errors.Is(err, scan.ErrScan) {
		t.Errorf("archive written to during the scan: %v; want a scan error saying it changed", err)
	}
	if u, err := empty.Usage(); err != nil || u.Records != 0 {
		t.Errorf("archive written to during the scan: the cache holds %+v (%v); want nothing", u, err)
	}

	// The archive cut short after it was opened: its layers are read from
	// a mapping of the file as it was, whose pages past the new end fault
	// when touched. The scan fails; the process does not crash.
	cut := open()
	if err := os.Truncate(path, 4096); err != nil {
		t.Fatal(err)
	}
	_, err = scan.CatalogWithCache(ctx, cut.Image, scan.ImageInfo{Ref: "cut"}, scan.DefaultLimits, empty)
	if !errors.Is(err, scan.ErrScan) || !strings.Contains(err.Error(), "cut short") {
		t.Errorf("archive cut short during the scan: %v; want a scan error saying so", err)
	}
	if u, err := empty.Usage(); err != nil || u.Records != 0 {
		t.Errorf("archive cut short during the scan: the cache holds %+v (%v); want nothing", u, err)
	}
}
