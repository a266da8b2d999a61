package scan_test

// Hostile images: layers that try to climb out of the image root, link
// loops, package databases the unpacker cannot read, decompression bombs,
// corrupt and tampered layers. What a user must see for each: a clear
// error naming the image (ErrScan, or ErrLimit for the bounds), or a
// report built only from what is inside the image; never a panic, a hang,
// a file read or written outside the image, or a temporary file left.

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log"
	"net/http/httptest"
	"os"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	ggcrregistry "github.com/google/go-containerregistry/pkg/registry"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/static"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"github.com/google/go-containerregistry/pkg/v1/types"
	"github.com/klauspost/compress/zstd"

	"github.com/scangate/scangate/internal/image"
	"github.com/scangate/scangate/internal/imagetest"
	"github.com/scangate/scangate/internal/scan"
)

// hostileLimits are small enough that a bomb trips them at once and large
// enough for Debian's 77 kB dpkg status.
var hostileLimits = scan.Limits{
	MaxFileBytes:  1 << 20,
	MaxLayerBytes: 4 << 20,
	MaxImageBytes: 8 << 20,
	MaxLayerFiles: 2000,
	MaxImageFiles: 4000,
}

// privateTemp points os.TempDir at a folder of the test's own, so that
// what a scan leaves there is its own doing and no other test's, and
// stops the garbage collector, whose finalizers would otherwise hide a
// leak by removing an abandoned file at some random later moment. It
// returns the folder.
func privateTemp(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	t.Setenv("TMPDIR", dir)
	old := debug.SetGCPercent(-1)
	t.Cleanup(func() { debug.SetGCPercent(old) })
	return dir
}

// leftIn lists what is in dir.
func leftIn(t *testing.T, dir string) []string {
	t.Helper()
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range ents {
		names = append(names, e.Name())
	}
	return names
}

// catalog scans img under ref with a watchdog: a scan of these small
// images that takes more than 20 seconds is a hang.
func catalog(t *testing.T, ref string, img v1.Image, lim scan.Limits) (*scan.Report, error) {
	t.Helper()
	type result struct {
		r   *scan.Report
		err error
	}
	done := make(chan result, 1)
	go func() {
		r, err := scan.Catalog(context.Background(), img, scan.ImageInfo{Ref: ref}, lim)
		done <- result{r, err}
	}()
	select {
	case res := <-done:
		return res.r, res.err
	case <-time.After(20 * time.Second):
		t.Fatalf("%s: scan still running after 20s", ref)
		return nil, nil
	}
}

// wantScanError checks err is a scan error that names the image.
func wantScanError(t *testing.T, ref string, err error, want error) {
	t.Helper()
	if err == nil {
		t.Fatalf("%s: no error; want %v", ref, want)
	}
	if !errors.Is(err, scan.ErrScan) || want != nil && !errors.Is(err, want) {
		t.Errorf("%s: err = %v; want a scan error wrapping %v", ref, err, want)
	}
	if !strings.Contains(err.Error(), ref) {
		t.Errorf("%s: error %q does not name the image", ref, err)
	}
}

func countDebs(r *scan.Report) int {
	n := 0
	for _, p := range r.Packages {
		if p.Type == "deb" {
			n++
		}
	}
	return n
}

// checkPackages holds for every report: each package has a name, a type
// and an absolute path inside the image.
func checkPackages(t testing.TB, r *scan.Report) {
	t.Helper()
	for _, p := range r.Packages {
		if p.Name == "" || p.Type == "" || !strings.HasPrefix(p.Path, "/") {
			t.Errorf("package %+v: want a name, a type and an absolute path", p)
		}
	}
}

// snapshot records every file under dir with its content.
func snapshot(t *testing.T, dir string) map[string]string {
	t.Helper()
	files := map[string]string{}
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		data, err := os.ReadFile(p)
		files[p] = string(data)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return files
}

// TestEscapingEntriesStayInside: ../ and absolute names, symlinks and hard
// links that climb out of the root or point at host files are never
// followed to the host: nothing is read or written there. The layer's
// names that climb out make the scan an ErrInvalid error, as Docker
// refuses such a layer (TestEntriesClimbingOut); before, they were
// clamped at the root and the scan completed with Debian's 88 packages.
func TestEscapingEntriesStayInside(t *testing.T) {
	host := imagetest.HostCanaries(t)
	before := snapshot(t, host)
	passwd, passwdErr := os.Stat("/etc/passwd")
	tmp := privateTemp(t)

	for _, tc := range []struct {
		name   string
		layers []v1.Layer
	}{
		{"over-debian", []v1.Layer{imagetest.BookwormBase(t), imagetest.EscapingLayer(t, host)}},
		{"alone", []v1.Layer{imagetest.EscapingLayer(t, host)}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ref := "escaping-" + tc.name
			r, err := catalog(t, ref, imagetest.Build(t, tc.layers...), hostileLimits)
			if err == nil {
				t.Fatalf("%s: OS %+v, %d packages, no error; want ErrInvalid: names climb out of the root", ref, r.OS, len(r.Packages))
			}
			wantScanError(t, ref, err, scan.ErrInvalid)
		})
	}

	after := snapshot(t, host)
	if len(after) != len(before) {
		t.Errorf("files on the host: %d before the scan, %d after", len(before), len(after))
	}
	for p, body := range after {
		if before[p] != body {
			t.Errorf("host file %s changed to %q", p, body)
		}
	}
	if passwdErr == nil {
		if now, err := os.Stat("/etc/passwd"); err != nil || !now.ModTime().Equal(passwd.ModTime()) || now.Size() != passwd.Size() {
			t.Errorf("/etc/passwd changed during the scan")
		}
	}
	if left := leftIn(t, tmp); len(left) > 0 {
		t.Errorf("left in the temporary folder: %v", left)
	}
}

func symlink(name, target string) imagetest.RawEntry {
	return imagetest.RawEntry{Header: tar.Header{Name: name, Linkname: target, Typeflag: tar.TypeSymlink, Mode: 0o777}}
}

func hardlink(name, target string) imagetest.RawEntry {
	return imagetest.RawEntry{Header: tar.Header{Name: name, Linkname: target, Typeflag: tar.TypeLink}}
}

func file(name, body string) imagetest.RawEntry {
	return imagetest.RawEntry{Header: tar.Header{Name: name}, Body: body}
}

func layerOf(t testing.TB, entries ...imagetest.RawEntry) v1.Layer {
	return imagetest.LayerFromBytes(t, imagetest.Tar(t, entries...))
}

// TestSymlinkLoops: loops end in bounded time. A loop among files no
// extractor reads changes nothing; a loop where the OS or the package
// database should be makes them unreadable, which must be an error, not
// an image without an OS or without packages.
func TestSymlinkLoops(t *testing.T) {
	base := imagetest.BookwormBase(t)
	t.Run("unrelated-loop", func(t *testing.T) {
		r, err := catalog(t, "loop-ab", imagetest.Build(t, base, layerOf(t, symlink("a", "b"), symlink("b", "a"), symlink("c", "c"), symlink("d/e", "../d"))), hostileLimits)
		if err != nil {
			t.Fatal(err)
		}
		if countDebs(r) != 88 || r.OS == nil || r.OS.Ecosystem != "Debian:12" {
			t.Errorf("OS %+v, %d debs; want Debian 12 and 88 debs", r.OS, countDebs(r))
		}
	})
	for _, tc := range []struct {
		name  string
		layer v1.Layer
	}{
		// Fixed in 165f8d9: etc/os-release -> os-release gave no OS and
		// no error (readOS kept only the "not exist" of
		// usr/lib/os-release), so the 88 debs matched as ecosystem
		// "Linux": no findings, a clean result.
		{"os-release", layerOf(t, symlink("etc/os-release", "os-release"))},
		// Fixed in 165f8d9: these gave Debian 12 with zero packages and
		// no error (the walk skipped symlinks).
		{"dpkg-status", layerOf(t, symlink("var/lib/dpkg/status", "status"))},
		{"dpkg-folder", layerOf(t, symlink("var/lib/dpkg", "../../var/lib/dpkg"))},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ref := "loop-" + tc.name
			r, err := catalog(t, ref, imagetest.Build(t, base, tc.layer), hostileLimits)
			if err == nil {
				t.Fatalf("%s: OS %+v, %d debs, no error; want a scan error: a loop makes the file unreadable", ref, r.OS, countDebs(r))
			}
			wantScanError(t, ref, err, nil)
		})
	}
}

// TestUnreadablePackageDatabase: a dpkg status the unpacker or the
// extractor cannot read must fail the scan, never read as an image with
// no packages: that would be a clean result for an image with 88.
func TestUnreadablePackageDatabase(t *testing.T) {
	osRelease := imagetest.ReadFixture(t, "debian", "os-release")
	status := imagetest.ReadFixture(t, "debian", "dpkg-status")

	// A dpkg status larger than Limits.MaxFileBytes cannot be read: the
	// scan fails naming it. Fixed in 165f8d9: the unpacker skipped it with
	// an info log line, and the scan reported Debian 12 with zero packages
	// and no error.
	t.Run("too-large", func(t *testing.T) {
		lim := hostileLimits
		lim.MaxFileBytes = 64 << 10
		ref := "huge-dpkg-status"
		r, err := catalog(t, ref, imagetest.Build(t, imagetest.BookwormBase(t)), lim)
		if err == nil {
			t.Fatalf("%s: OS %+v, %d debs, no error; want a scan error: var/lib/dpkg/status (%d bytes) is over MaxFileBytes (%d) and was not read",
				ref, r.OS, countDebs(r), len(status), lim.MaxFileBytes)
		}
		wantScanError(t, ref, err, nil)
		if !strings.Contains(err.Error(), "var/lib/dpkg/status") {
			t.Errorf("error %q does not name the file", err)
		}
	})

	// A package database reached through a link inside the image is read,
	// or the scan fails. Fixed in 165f8d9 (symlinks read, a hard link
	// fails the scan): all three gave Debian 12 with zero packages and no
	// error. scalibr's walk skipped symlinks without
	// ScanConfig.ReadSymlinks; layerscanning stores hard links as symlinks
	// and resolves a relative target against the link's folder, whereas a
	// tar hard link names a path from the root, so var/lib/dpkg/status =>
	// var/lib/dpkg/status.real looks for
	// /var/lib/dpkg/var/lib/dpkg/status.real. (For other files that is
	// still so: see TestHardLinkedPackageFiles.)
	for _, tc := range []struct {
		name string
		link imagetest.RawEntry
	}{
		{"symlink", symlink("var/lib/dpkg/status", "status.real")},
		{"absolute-symlink", symlink("var/lib/dpkg/status", "/var/lib/dpkg/status.real")},
		{"hardlink", hardlink("var/lib/dpkg/status", "var/lib/dpkg/status.real")},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ref := "dpkg-status-" + tc.name
			img := imagetest.Build(t, layerOf(t, file("etc/os-release", osRelease), file("var/lib/dpkg/status.real", status), tc.link))
			r, err := catalog(t, ref, img, hostileLimits)
			if err != nil {
				wantScanError(t, ref, err, nil)
				return
			}
			if countDebs(r) != 88 {
				t.Errorf("%s: %d debs, no error; want the 88 packages of the linked status, or an error", ref, countDebs(r))
			}
		})
	}

	// Was a bug, now fixed: a dpkg status of exactly MaxFileBytes bytes is skipped unread,
	// and the scan reports Debian 12 with zero packages and no error. The
	// size check added to the counting reader fails files over the limit
	// (h.Size > MaxFileBytes), but layerscanning drops a file when it has
	// read MaxFileBytes of it (numBytes >= MaxFileBytes in handleFile),
	// which includes a file of exactly that size. Expected: 88 debs, or an
	// error; the check in limits.go wants >=.
	t.Run("exactly-max-file-bytes", func(t *testing.T) {
		lim := hostileLimits
		lim.MaxFileBytes = int64(len(status))
		ref := "dpkg-status-at-the-limit"
		r, err := catalog(t, ref, imagetest.Build(t, imagetest.BookwormBase(t)), lim)
		if err != nil {
			wantScanError(t, ref, err, nil)
			return
		}
		if countDebs(r) != 88 {
			t.Errorf("%s: status of %d bytes with MaxFileBytes %d: OS %+v, %d debs, no error; want 88 debs or an error",
				ref, len(status), lim.MaxFileBytes, r.OS, countDebs(r))
		}
	})

	// Was a bug, now fixed: var/lib/dpkg/status a folder (here holding one file) scans as
	// Debian 12 with zero packages and no error: checkReadable opens the
	// path, which succeeds for a folder, and the walk finds no status file.
	// dpkg itself cannot run on such an image; the database is there and
	// unreadable. Expected: a scan error naming /var/lib/dpkg/status.
	t.Run("folder", func(t *testing.T) {
		ref := "dpkg-status-folder"
		folder := layerOf(t, imagetest.RawEntry{Header: tar.Header{Name: "var/lib/dpkg/status/", Typeflag: tar.TypeDir, Mode: 0o755}}, file("var/lib/dpkg/status/x", "x"))
		r, err := catalog(t, ref, imagetest.Build(t, imagetest.BookwormBase(t), folder), hostileLimits)
		if err == nil {
			t.Fatalf("%s: OS %+v, %d debs, no error; want a scan error: the package database is a folder", ref, r.OS, countDebs(r))
		}
		wantScanError(t, ref, err, nil)
	})

	// A status that is not a dpkg status fails the extractor, and the scan
	// with it, naming both. Fixed in 165f8d9: the
	// message was "not all plugins succeeded, see the plugin statuses",
	// which the user cannot see.
	t.Run("garbage", func(t *testing.T) {
		ref := "garbage-dpkg-status"
		_, err := catalog(t, ref, imagetest.Build(t, imagetest.BookwormBase(t), layerOf(t, file("var/lib/dpkg/status", "\x00\x01 not a status\n\n::::\n"))), hostileLimits)
		wantScanError(t, ref, err, nil)
		if err != nil && (!strings.Contains(err.Error(), "dpkg") || !strings.Contains(err.Error(), "var/lib/dpkg/status")) {
			t.Errorf("error %q names neither the extractor (dpkg) nor the file (var/lib/dpkg/status)", err)
		}
	})
}

// TestHardLinkedPackageFiles: a package file stored as a tar hard link is
// read like the file it links to.
//
// Was a bug, now fixed: layerscanning turns a hard link into a symlink and resolves a
// relative target against the link's folder, but a tar hard link names its
// target from the archive root: app/node_modules/lodash/package.json =>
// store/files/3f/1c looks for /app/node_modules/lodash/store/files/3f/1c,
// finds nothing, and the walk skips the dangling link without a word:
// lodash 4.17.15 (and its findings) are missing from a report with no
// error. pnpm builds node_modules from hard links into its store, and
// layers keep the first path as a file and every other as a link, so
// pnpm images lose packages this way; Go binaries and jars installed
// under two names do too. 165f8d9 fails the scan for the package
// databases only. Expected: lodash in the report. Rewriting each
// TypeLink's Linkname to "/"+Linkname in the counting reader's stream
// (limits.go) would make layerscanning resolve it from the root.
func TestHardLinkedPackageFiles(t *testing.T) {
	lodash := `{"name": "lodash", "version": "4.17.15"}`
	ref := "hardlinked-package-json"
	img := imagetest.Build(t, layerOf(t, file("store/files/3f/1c", lodash), hardlink("app/node_modules/lodash/package.json", "store/files/3f/1c")))
	r, err := catalog(t, ref, img, hostileLimits)
	if err != nil {
		wantScanError(t, ref, err, nil)
		return
	}
	checkPackages(t, r)
	for _, p := range r.Packages {
		if p.Name == "lodash" && p.Version == "4.17.15" {
			return
		}
	}
	t.Errorf("%s: %d packages, no lodash 4.17.15 and no error; the package.json hard link was not followed", ref, len(r.Packages))
}

// countingOpener opens data and counts the bytes read from it.
func countingOpener(data []byte, n *atomic.Int64) tarball.Opener {
	return func() (io.ReadCloser, error) {
		return io.NopCloser(&countingReader{r: bytes.NewReader(data), n: n}), nil
	}
}

type countingReader struct {
	r io.Reader
	n *atomic.Int64
}

func (c *countingReader) Read(p []byte) (int, error) {
	k, err := c.r.Read(p)
	c.n.Add(int64(k))
	return k, err
}

// TestDecompressionBombs: layers that inflate beyond the limits stop the
// scan with ErrLimit as soon as the limit is passed, without inflating the
// rest, and leave nothing behind.
func TestDecompressionBombs(t *testing.T) {
	tmp := privateTemp(t)
	// 64 MiB of zeros in 512 KiB files, each under MaxFileBytes, and in a
	// single 64 MiB file, over it (the unpacker skips its content, but
	// reading past it still counts): about 64 KiB of gzip each.
	for _, tc := range []struct {
		name     string
		fileSize int64
	}{{"small-files", 512 << 10}, {"one-file", 64 << 20}} {
		t.Run(tc.name, func(t *testing.T) {
			bomb := imagetest.GzipBomb(t, 64<<20, tc.fileSize)
			var read atomic.Int64
			l, err := tarball.LayerFromOpener(countingOpener(bomb, &read))
			if err != nil {
				t.Fatal(err)
			}
			img := imagetest.Build(t, imagetest.BookwormBase(t), l)
			read.Store(0) // building the image hashed the whole layer
			ref := "bomb-" + tc.name
			_, err = catalog(t, ref, img, hostileLimits)
			wantScanError(t, ref, err, scan.ErrLimit)
			if err != nil && !strings.Contains(err.Error(), "layer 2") {
				t.Errorf("error %q does not say which layer", err)
			}
			if got := read.Load(); got > int64(len(bomb))/4 {
				t.Errorf("read %d of the bomb's %d compressed bytes: the scan went on well past the limit", got, len(bomb))
			}
		})
	}

	t.Run("many-files", func(t *testing.T) {
		ref := "many-files"
		_, err := catalog(t, ref, imagetest.Build(t, imagetest.BookwormBase(t), imagetest.LayerFromBytes(t, imagetest.GzipTar(t, imagetest.ManyFiles(t, 20_000)))), hostileLimits)
		wantScanError(t, ref, err, scan.ErrLimit)
		if err != nil && !strings.Contains(err.Error(), "more than 2000 files") {
			t.Errorf("error %q does not give the file limit", err)
		}
	})
	t.Run("many-files-across-layers", func(t *testing.T) {
		ref := "many-files-image"
		// Three different layers: a layer that repeats another's blob is
		// read and counted once (TestRepeatedLayers).
		var layers []v1.Layer
		for i := range 3 {
			many := imagetest.ManyFiles(t, 1500)
			layers = append(layers, imagetest.LayerFromBytes(t, append(imagetest.Tar(t, file(fmt.Sprintf("layer-%d", i), ""))[:512], many...)))
		}
		_, err := catalog(t, ref, imagetest.Build(t, layers...), hostileLimits)
		wantScanError(t, ref, err, scan.ErrLimit)
		if err != nil && !strings.Contains(err.Error(), "image: more than 4000 files") {
			t.Errorf("error %q does not give the image's file limit", err)
		}
	})
	if left := leftIn(t, tmp); len(left) > 0 {
		t.Errorf("left in the temporary folder: %v", left)
	}
}

// TestSparseFiles: sparse tar entries store a few bytes for a file of any
// size; the unpacker writes them out in full to its content file in
// $TMPDIR. What it writes must stay within the limits, or the scan stop.
//
// Was a bug, now fixed: MaxLayerBytes and MaxImageBytes count the bytes of the tar stream,
// not what is unpacked, so sparse files pass them: here 300 files of
// 256 KiB-1 (PAX 1.0 sparse, 2.5 kB each: a 15 kB gzip layer) make the
// unpacker write 75 MiB to $TMPDIR with MaxImageBytes at 2 MiB, and the
// scan succeeds. With the defaults (MaxFileBytes 512 MiB, MaxLayerFiles
// 1,000,000) one small layer can ask for petabytes: the disk fills, which
// Limits exist to prevent. Expected: ErrLimit once the unpacked sizes
// (h.Size, which the counting reader sees) pass MaxLayerBytes or
// MaxImageBytes; or refuse sparse entries.
func TestSparseFiles(t *testing.T) {
	tmp := privateTemp(t)
	lim := scan.Limits{MaxFileBytes: 256 << 10, MaxLayerBytes: 1 << 20, MaxImageBytes: 2 << 20, MaxLayerFiles: 2000, MaxImageFiles: 4000}
	bomb := imagetest.GzipTar(t, imagetest.SparseBomb(t, 300, lim.MaxFileBytes-1))
	img := imagetest.Build(t, imagetest.LayerFromBytes(t, bomb))

	// Watch $TMPDIR while the scan runs, for the most it holds.
	var peak atomic.Int64
	stop, stopped := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(stopped)
		for {
			var total int64
			ents, _ := os.ReadDir(tmp)
			for _, e := range ents {
				if info, err := e.Info(); err == nil {
					total += info.Size()
				}
			}
			if total > peak.Load() {
				peak.Store(total)
			}
			select {
			case <-stop:
				return
			case <-time.After(time.Millisecond):
			}
		}
	}()
	ref := "sparse-bomb"
	_, err := catalog(t, ref, img, lim)
	close(stop)
	<-stopped
	if err != nil {
		wantScanError(t, ref, err, scan.ErrLimit)
	}
	if p := peak.Load(); p > lim.MaxImageBytes+lim.MaxFileBytes {
		t.Errorf("%s (%d bytes of gzip): the scan wrote %d bytes to $TMPDIR with MaxImageBytes %d (err %v)", ref, len(bomb), p, lim.MaxImageBytes, err)
	}
}

// TestLimitLeavesNoTempFile: a scan stopped by a limit removes the
// unpacker's content file.
//
// Fixed in 165f8d9: when the limit was passed only after the unpacker had
// read the whole layer, FromV1Image succeeded and
// Catalog returned the limit error without li.CleanUp(), leaving the
// content file image-blob-NNN in os.TempDir() for good (the CLI exits
// before any finalizer runs). The input: a layer whose tar lacks the
// end-of-archive blocks and whose last entry is empty, one entry over
// MaxLayerFiles: the unpacker's last read gets EOF straight from the
// stream, before the counting goroutine has counted that entry.
func TestLimitLeavesNoTempFile(t *testing.T) {
	tmp := privateTemp(t)
	data := imagetest.Tar(t, file("a", "a"), imagetest.RawEntry{Header: tar.Header{Name: "b"}})
	noTrailer := data[:len(data)-1024] // the two zero blocks at the end
	lim := hostileLimits
	lim.MaxLayerFiles = 1
	for _, tc := range []struct {
		name string
		data []byte
	}{{"with-trailer", data}, {"without-trailer", noTrailer}} {
		t.Run(tc.name, func(t *testing.T) {
			ref := "late-limit-" + tc.name
			_, err := catalog(t, ref, imagetest.Build(t, imagetest.LayerFromBytes(t, tc.data)), lim)
			wantScanError(t, ref, err, scan.ErrLimit)
			if left := leftIn(t, tmp); len(left) > 0 {
				t.Errorf("left in the temporary folder: %v", left)
				for _, name := range left {
					os.Remove(filepath.Join(tmp, name))
				}
			}
		})
	}
}

// TestCorruptLayers: a layer that is not a tar, or is cut short, fails the
// scan with an error naming the image.
func TestCorruptLayers(t *testing.T) {
	tmp := privateTemp(t)
	good := imagetest.Tar(t, file("etc/os-release", "ID=debian\n"), file("var/lib/dpkg/status", imagetest.ReadFixture(t, "debian", "dpkg-status")))
	badHeader := slices.Clone(good)
	copy(badHeader[148:156], "garbage!") // the first header's checksum
	for _, tc := range []struct {
		name string
		data []byte
	}{
		{"garbage", bytes.Repeat([]byte("not a tar "), 300)},
		{"truncated-tar", good[:len(good)/2]},
		{"truncated-in-header", good[:100]},
		{"bad-header-checksum", badHeader},
		{"gzip-of-garbage", imagetest.GzipTar(t, bytes.Repeat([]byte("not a tar "), 300))},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ref := "corrupt-" + tc.name
			img, err := mutate.AppendLayers(empty.Image, imagetest.BookwormBase(t), imagetest.LayerFromBytes(t, tc.data))
			if err != nil {
				t.Fatal(err)
			}
			r, err := catalog(t, ref, img, hostileLimits)
			if err == nil {
				t.Fatalf("%s: scanned with no error (%d packages); want a scan error", ref, len(r.Packages))
			}
			wantScanError(t, ref, err, nil)
		})
	}
	if left := leftIn(t, tmp); len(left) > 0 {
		t.Errorf("left in the temporary folder: %v", left)
	}
}

// bookwormSources writes BookwormApp as an OCI layout and as a docker
// save archive, with the blob of its base layer replaced by blob when blob
// is not nil, and returns the two references.
func bookwormSources(t *testing.T, blob []byte) []string {
	t.Helper()
	img, layers := imagetest.BookwormApp(t)
	digest, err := layers[0].Digest()
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	lp, err := layout.Write(filepath.Join(dir, "oci"), empty.Index)
	if err != nil {
		t.Fatal(err)
	}
	if err := lp.AppendImage(img); err != nil {
		t.Fatal(err)
	}
	archive := filepath.Join(dir, "app.tar")
	if err := tarball.WriteToFile(archive, name.MustParseReference("app:1").(name.Tag), img); err != nil {
		t.Fatal(err)
	}
	if blob != nil {
		if err := os.WriteFile(filepath.Join(dir, "oci", "blobs", "sha256", digest.Hex), blob, 0o644); err != nil {
			t.Fatal(err)
		}
		replaceInTar(t, archive, filepath.Join(dir, "tampered.tar"), digest.Hex, blob)
		archive = filepath.Join(dir, "tampered.tar")
	}
	return []string{"oci:" + filepath.Join(dir, "oci"), "docker-archive:" + archive}
}

// TestCorruptLayerBlobs: in a well-formed archive or layout, a layer blob
// cut short, with a bad gzip checksum, empty or of garbage fails: at Open
// (exit 2) or in the scan, with an error naming the image.
//
// Fixed in 165f8d9 (DiffIDs checked): two of these scanned with no error:
//   - bad-crc (both sources): the unpacker stops reading at the tar's
//     end-of-archive blocks, so the gzip trailer and its CRC were never
//     read;
//   - empty (oci layout): a zero-byte blob, as a copy cut short or a full
//     disk leaves, read as an empty uncompressed tar: no OS and no
//     packages, a clean image.
func TestCorruptLayerBlobs(t *testing.T) {
	tmp := privateTemp(t)
	_, layers := imagetest.BookwormApp(t)
	rc, err := layers[0].Compressed()
	if err != nil {
		t.Fatal(err)
	}
	gz, err := io.ReadAll(rc)
	if err != nil {
		t.Fatal(err)
	}
	badCRC := slices.Clone(gz)
	badCRC[len(badCRC)-8] ^= 0xff // the CRC-32 in the gzip trailer
	for _, tc := range []struct {
		name string
		blob []byte
	}{
		{"truncated", gz[:len(gz)/2]},
		{"bad-crc", badCRC},
		{"empty", []byte{}},
		{"garbage", bytes.Repeat([]byte{0xde, 0xad}, 5000)},
	} {
		for _, ref := range bookwormSources(t, tc.blob) {
			t.Run(tc.name+"-"+ref[:3], func(t *testing.T) {
				opened, err := image.Open(context.Background(), ref, image.Options{TempDir: tmp})
				if err != nil {
					if !strings.Contains(err.Error(), ref) {
						t.Errorf("Open: %q does not name the image", err)
					}
					return
				}
				defer opened.Close()
				r, err := catalog(t, ref, opened.Image, hostileLimits)
				if err == nil {
					t.Fatalf("%s: scanned with no error: OS %+v, %d debs", ref, r.OS, countDebs(r))
				}
				wantScanError(t, ref, err, nil)
			})
		}
	}
	if left := leftIn(t, tmp); len(left) > 0 {
		t.Errorf("left in the temporary folder: %v", left)
	}
}

// TestTamperedLayerBlob: an archive or layout whose layer blob was swapped
// for other content must not be scanned as if it were the image its config
// names.
//
// Fixed in 165f8d9: nothing checked a layer's content against its DiffID,
// so the base layer's blob swapped for a tar with
// Debian's os-release and no dpkg status scanned as Debian 12 with zero
// packages and no error, under the untampered image's config digest, by
// which inventories are kept.
func TestTamperedLayerBlob(t *testing.T) {
	osOnly := imagetest.GzipTar(t, imagetest.Tar(t, file("etc/os-release", imagetest.ReadFixture(t, "debian", "os-release"))))
	for _, ref := range bookwormSources(t, osOnly) {
		t.Run(ref[:3], func(t *testing.T) {
			opened, err := image.Open(context.Background(), ref, image.Options{TempDir: t.TempDir()})
			if err != nil {
				return // refused at the door: fine
			}
			defer opened.Close()
			r, err := catalog(t, ref, opened.Image, hostileLimits)
			if err != nil {
				wantScanError(t, ref, err, nil)
				return
			}
			t.Errorf("%s: scanned with no error: OS %+v, %d debs, image %s; want an error: layer 1's content is not %s",
				ref, r.OS, countDebs(r), r.Image.ConfigDigest, r.Image.Layers[0])
		})
	}
}

// TestTamperedLayoutMetadata: in an OCI layout, a config or manifest blob
// whose content is not the digest it is filed under must not be scanned
// as the image that digest names.
//
// Was a bug, now fixed: go-containerregistry's layout reads blobs by name and checks
// nothing, and image.Open reports the manifest digest that index.json
// gives, never computed:
//   - config: image A's config blob replaced by the config of an image B
//     (Debian's os-release over A's app layers, no dpkg status) and A's
//     base layer blob by B's. The manifest is A's, untouched, and names
//     config sha256:<A's>; the blob under that name hashes to B's. The
//     DiffID check passes (the DiffIDs are B's) and the report is manifest
//     digest A, config digest B (computed), Debian 12, zero packages, no
//     error: a gate keyed on the manifest digest passes A, whose real
//     content has 88 packages and a CRITICAL.
//   - manifest: the blob under A's manifest digest replaced by B's
//     manifest: the report says manifest digest A over B's content.
//
// Expected: a scan error. Check that sha256(raw manifest) is the digest
// the index names (image.go, openLayout/pickFromIndex: use the computed
// img.Digest() and compare), and that sha256(raw config) is the config
// digest the manifest names (catalog.go, describe), as the registry path
// does.
func TestTamperedLayoutMetadata(t *testing.T) {
	a, aLayers := imagetest.BookwormApp(t)
	benign := layerOf(t, file("etc/os-release", imagetest.ReadFixture(t, "debian", "os-release")))
	b := imagetest.Build(t, benign, aLayers[1], aLayers[2])
	hexOf := func(h v1.Hash, err error) string {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
		return h.Hex
	}
	raw := func(data []byte, err error) []byte {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
		return data
	}
	rc, err := benign.Compressed()
	if err != nil {
		t.Fatal(err)
	}
	benignBlob := raw(io.ReadAll(rc))

	for _, tc := range []struct {
		name   string
		tamper func(dir string, lp layout.Path)
	}{
		{"config", func(dir string, lp layout.Path) {
			writeBlob(t, dir, hexOf(a.ConfigName()), raw(b.RawConfigFile()))
			writeBlob(t, dir, hexOf(aLayers[0].Digest()), benignBlob)
		}},
		{"manifest", func(dir string, lp layout.Path) {
			if err := lp.WriteImage(b); err != nil {
				t.Fatal(err)
			}
			writeBlob(t, dir, hexOf(a.Digest()), raw(b.RawManifest()))
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := filepath.Join(t.TempDir(), "oci")
			lp, err := layout.Write(dir, empty.Index)
			if err != nil {
				t.Fatal(err)
			}
			if err := lp.AppendImage(a); err != nil {
				t.Fatal(err)
			}
			tc.tamper(dir, lp)
			ref := "oci:" + dir
			opened, err := image.Open(context.Background(), ref, image.Options{})
			if err != nil {
				return // refused at the door: fine
			}
			defer opened.Close()
			r, err := catalog(t, ref, opened.Image, hostileLimits)
			if err != nil {
				wantScanError(t, ref, err, nil)
				return
			}
			t.Errorf("%s: scanned with no error as manifest %s, config %s: OS %s, %d debs; want an error, the %s blob is not what its digest says",
				ref, opened.Digest, r.Image.ConfigDigest, r.OS.Ecosystem, countDebs(r), tc.name)
		})
	}
}

func writeBlob(t *testing.T, dir, hex string, data []byte) {
	t.Helper()
	if err := os.WriteFile(filepath.Join(dir, "blobs", "sha256", hex), data, 0o644); err != nil {
		t.Fatal(err)
	}
}

// replaceInTar copies the tar at src to dst, with the body of every entry
// whose name contains match replaced by body.
func replaceInTar(t *testing.T, src, dst, match string, body []byte) {
	t.Helper()
	in, err := os.Open(src)
	if err != nil {
		t.Fatal(err)
	}
	defer in.Close()
	out, err := os.Create(dst)
	if err != nil {
		t.Fatal(err)
	}
	defer out.Close()
	tr, tw := tar.NewReader(in), tar.NewWriter(out)
	replaced := false
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		var r io.Reader = tr
		if strings.Contains(h.Name, match) {
			h.Size, r, replaced = int64(len(body)), bytes.NewReader(body), true
		}
		if err := tw.WriteHeader(h); err != nil {
			t.Fatal(err)
		}
		if _, err := io.Copy(tw, r); err != nil {
			t.Fatal(err)
		}
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	if !replaced {
		t.Fatalf("no entry named like %s in %s", match, src)
	}
}

// FuzzCatalogLayer scans arbitrary bytes as the top layer over Debian's
// base: no panic, no hang, and either a scan error or a report whose
// packages all have a name, a type and an absolute path.
func FuzzCatalogLayer(f *testing.F) {
	f.Add(imagetest.Tar(f, file("etc/os-release", "ID=alpine\nVERSION_ID=3.18.0\n"), file("lib/apk/db/installed", "P:musl\nV:1.2.4-r0\nA:x86_64\n\n")))
	f.Add(imagetest.Tar(f, file("app/node_modules/x/package.json", `{"name":"x","version":"1.0.0"}`), symlink("app/node_modules/y", "x"), hardlink("app/z.json", "app/node_modules/x/package.json")))
	f.Add(imagetest.Tar(f, symlink("var/lib/dpkg/status", "../../../../etc/passwd"), file("../../x", "x"), file("/abs", "x"), file("var/lib/dpkg/.wh.status", "")))
	f.Add(imagetest.Tar(f, file("var/lib/dpkg/status", "Package: a\nStatus: install ok installed\nVersion: 1\n\nPackage: b\n")))
	f.Add(imagetest.Tar(f, file("usr/lib/python3/dist-packages/a-1.0.dist-info/METADATA", "Name: a\nVersion: 1.0\n"), file("app/package-lock.json", `{"lockfileVersion":3,"packages":{"node_modules/q":{"version":"1.0.0"}}}`)))
	f.Add(imagetest.GzipTar(f, imagetest.Tar(f, file("a", "b"))))
	f.Add([]byte{})
	f.Add(bytes.Repeat([]byte{0}, 1024))
	base := imagetest.BookwormBase(f)
	lim := scan.Limits{MaxFileBytes: 256 << 10, MaxLayerBytes: 2 << 20, MaxImageBytes: 4 << 20, MaxLayerFiles: 500, MaxImageFiles: 1000}
	f.Fuzz(func(t *testing.T, data []byte) {
		layer, err := tarball.LayerFromOpener(func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(data)), nil })
		if err != nil {
			return
		}
		img, err := mutate.AppendLayers(empty.Image, base, layer)
		if err != nil {
			return
		}
		watchdog := time.AfterFunc(30*time.Second, func() { panic("Catalog still running after 30s") })
		defer watchdog.Stop()
		r, err := scan.Catalog(context.Background(), img, scan.ImageInfo{Ref: "fuzz"}, lim)
		if err != nil {
			if !errors.Is(err, scan.ErrScan) {
				t.Fatalf("err = %v, not a scan error", err)
			}
			return
		}
		checkPackages(t, r)
	})
}

// alpineFiles are an Alpine 3.18 os-release and apk database listing musl.
func alpineFiles(dir string) []imagetest.RawEntry {
	return []imagetest.RawEntry{
		file(dir+"etc/os-release", "ID=alpine\nVERSION_ID=3.18.4\nPRETTY_NAME=\"Alpine Linux v3.18\"\n"),
		file(dir+"lib/apk/db/installed", "C:Q1abc=\nP:musl\nV:1.2.4-r1\nA:x86_64\nS:383152\nI:622592\no:musl\n\n"),
	}
}

func hasPackage(r *scan.Report, name, path string) bool {
	return slices.ContainsFunc(r.Packages, func(p scan.Package) bool { return p.Name == name && p.Path == path })
}

// TestEntriesClimbingOut: a layer entry whose name climbs out of the
// image root, or a hard link whose target does, makes the scan an
// ErrInvalid error naming the entry: Docker refuses to unpack such a
// layer (moby/go-archive, UnpackLayer: "invalid entry name";
// resolveHardlinkTarget: "invalid hardlink target"), so no runtime runs
// the image and no report describes what it would run.
//
// Fixed here: each name was clamped at the root ("../../etc/x" read as
// "etc/x") and the scan completed, clean.
func TestEntriesClimbingOut(t *testing.T) {
	tmp := privateTemp(t)
	base := imagetest.BookwormBase(t)
	for _, tc := range []struct {
		name  string
		entry imagetest.RawEntry
		want  string // the entry, as the error names it
	}{
		{"dotdot", file("../../../escape", "x"), `"../../../escape"`},
		{"dot-dotdot", file("./../etc/shadow", "x"), `"./../etc/shadow"`},
		{"climb-inside", file("usr/../../etc/passwd", "x"), `"usr/../../etc/passwd"`},
		// Docker strips the leading "/" before cleaning, so an absolute
		// name's ".." climbs too.
		{"absolute-climb", file("/../../etc/passwd", "x"), `"/../../etc/passwd"`},
		{"dotdot-folder", imagetest.RawEntry{Header: tar.Header{Name: "../", Typeflag: tar.TypeDir, Mode: 0o755}}, `"../"`},
		{"whiteout-climb", file("../.wh.etc", ""), `"../.wh.etc"`},
		{"hardlink-dotdot", hardlink("app/package.json", "../../etc/passwd"), `"../../etc/passwd"`},
		{"hardlink-climb-inside", hardlink("app/package.json", "app/../../etc/passwd"), `"app/../../etc/passwd"`},
		{"hardlink-absolute-climb", hardlink("app/package.json", "/../etc/passwd"), `"/../etc/passwd"`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ref := "climbing-" + tc.name
			img := imagetest.Build(t, base, layerOf(t, file("app/readme", "hi"), tc.entry))
			r, err := catalog(t, ref, img, hostileLimits)
			if err == nil {
				t.Fatalf("%s: scanned with no error (OS %+v, %d debs); want ErrInvalid: Docker refuses the layer", ref, r.OS, countDebs(r))
			}
			wantScanError(t, ref, err, scan.ErrInvalid)
			if !strings.Contains(err.Error(), tc.want) || !strings.Contains(err.Error(), "layer 2") {
				t.Errorf("error %q does not name layer 2 and the entry %s", err, tc.want)
			}
		})
	}
	if left := leftIn(t, tmp); len(left) > 0 {
		t.Errorf("left in the temporary folder: %v", left)
	}
}

// TestAbsoluteNamesInsideRoot: absolute entry names, and absolute hard
// link targets (kaniko writes them), are read from the image root, as
// Docker unpacks them.
func TestAbsoluteNamesInsideRoot(t *testing.T) {
	lodash := `{"name": "lodash", "version": "4.17.15"}`
	img := imagetest.Build(t, layerOf(t, append(alpineFiles("/"),
		file("//store/./files/../files/1c", lodash),
		hardlink("/app/node_modules/lodash/package.json", "/store/files/1c"),
	)...))
	r, err := catalog(t, "absolute-names", img, hostileLimits)
	if err != nil {
		t.Fatal(err)
	}
	checkPackages(t, r)
	if r.OS == nil || r.OS.Ecosystem != "Alpine:v3.18" || !hasPackage(r, "musl", "/lib/apk/db/installed") || !hasPackage(r, "lodash", "/app/node_modules/lodash/package.json") {
		t.Errorf("OS %+v, packages %+v; want Alpine v3.18 with musl and lodash read from the image root", r.OS, r.Packages)
	}
}

// TestSymlinksClimbingOutResolveInRoot: a symlink whose target climbs
// above the root is kept, as Docker keeps it (moby/go-archive stores
// symlink targets verbatim; "containment applies when the symlink is
// followed"), and is followed as the container's kernel follows it: ".."
// at the root stays at the root.
//
// Fixed here: such a link was dropped, so a package database reached
// through one was missing, and the image scanned as Debian 12 with no
// packages and no error: a clean result for an image that runs 88. A
// link to a folder on the way to the database (climbing or not) did the
// same, as scalibr's walk does not follow links to folders: now an error.
func TestSymlinksClimbingOutResolveInRoot(t *testing.T) {
	osRelease := imagetest.ReadFixture(t, "debian", "os-release")
	status := imagetest.ReadFixture(t, "debian", "dpkg-status")
	for _, tc := range []struct {
		name    string
		entries []imagetest.RawEntry
	}{
		{"relative", []imagetest.RawEntry{file("srv/dpkg/status", status), symlink("var/lib/dpkg/status", "../../../../../../../srv/dpkg/status")}},
		{"absolute", []imagetest.RawEntry{file("srv/dpkg/status", status), symlink("var/lib/dpkg/status", "/../../srv/dpkg/status")}},
		// scalibr's walk does not follow links to folders: the status is
		// where dpkg's extractor does not look, and the scan says so.
		{"folder", []imagetest.RawEntry{file("srv/dpkg/status", status), symlink("var/lib/dpkg", "../../../../../srv/dpkg")}},
		{"folder-absolute", []imagetest.RawEntry{file("srv/dpkg/status", status), symlink("var/lib/dpkg", "/srv/dpkg")}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ref := "climbing-symlink-" + tc.name
			img := imagetest.Build(t, layerOf(t, append([]imagetest.RawEntry{file("etc/os-release", osRelease)}, tc.entries...)...))
			r, err := catalog(t, ref, img, hostileLimits)
			if strings.HasPrefix(tc.name, "folder") {
				// Was a bug, now fixed: Debian 12 with no packages, no error.
				if err == nil {
					t.Fatalf("%s: OS %+v, %d debs, no error; want 88 debs or an error naming var/lib/dpkg/status", ref, r.OS, countDebs(r))
				}
				wantScanError(t, ref, err, nil)
				if !strings.Contains(err.Error(), "/var/lib/dpkg/status is reached through a link to a folder") {
					t.Errorf("error %q does not say why /var/lib/dpkg/status cannot be read", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if r.OS == nil || r.OS.Ecosystem != "Debian:12" || countDebs(r) != 88 {
				t.Errorf("%s: OS %+v, %d debs, no error; want Debian 12's 88 packages, read through the link as a container sees them", ref, r.OS, countDebs(r))
			}
		})
	}
}

// mediaTypeImage is an image of one layer of blob under media type mt.
func mediaTypeImage(t *testing.T, blob []byte, mt types.MediaType) v1.Image {
	t.Helper()
	// go-containerregistry keeps a compressed blob as it is, and would
	// gzip an uncompressed one: that is stored as it is by static.
	l := static.NewLayer(blob, mt)
	if bytes.HasPrefix(blob, []byte{0x1f, 0x8b}) || bytes.HasPrefix(blob, []byte{0x28, 0xb5, 0x2f, 0xfd}) {
		var err error
		if l, err = tarball.LayerFromOpener(func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(blob)), nil }, tarball.WithMediaType(mt)); err != nil {
			t.Fatal(err)
		}
	}
	img, err := mutate.Append(empty.Image, mutate.Addendum{Layer: l, MediaType: mt})
	if err != nil {
		t.Fatal(err)
	}
	return img
}

// openAsLayout writes img as an OCI layout, its blobs as they are, and
// opens it as `scangate scan oci:DIR` does.
func openAsLayout(t *testing.T, img v1.Image) (*image.Image, string) {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "oci")
	lp, err := layout.Write(dir, empty.Index)
	if err != nil {
		t.Fatal(err)
	}
	if err := lp.AppendImage(img); err != nil {
		t.Fatal(err)
	}
	ref := "oci:" + dir
	opened, err := image.Open(context.Background(), ref, image.Options{TempDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { opened.Close() })
	return opened, ref
}

func zstdOf(t *testing.T, data []byte) []byte {
	t.Helper()
	var buf bytes.Buffer
	zw, err := zstd.NewWriter(&buf)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := zw.Write(data); err != nil {
		t.Fatal(err)
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// TestLayerMediaTypes: a layer is read as its descriptor's media type
// says, never as its bytes look: a type scangate does not know is
// ErrInvalid naming the type, and bytes that are not what a known type
// says are a corrupt layer.
//
// Fixed here: go-containerregistry's Uncompressed sniffs the bytes, so a
// Helm chart (a gzip tar) pushed as a layer, or a layer of any made-up
// type, scanned as a filesystem with no error, and a type that says
// uncompressed over gzip bytes scanned as the gzip's content.
func TestLayerMediaTypes(t *testing.T) {
	layerTar := imagetest.Tar(t, alpineFiles("")...)
	gz, zst := imagetest.GzipTar(t, layerTar), zstdOf(t, layerTar)
	for _, tc := range []struct {
		name string
		blob []byte
		mt   types.MediaType
		want error // nil: Alpine with musl
		msg  string
	}{
		{"docker-gzip", gz, types.DockerLayer, nil, ""},
		{"oci-gzip", gz, types.OCILayer, nil, ""},
		{"oci-zstd", zst, types.OCILayerZStd, nil, ""},
		{"oci-tar", layerTar, types.OCIUncompressedLayer, nil, ""},
		{"docker-tar", layerTar, types.DockerUncompressedLayer, nil, ""},
		{"oci-nondistributable-gzip", gz, types.OCIRestrictedLayer, nil, ""},
		{"helm-chart", gz, "application/vnd.cncf.helm.chart.content.v1.tar+gzip", scan.ErrInvalid, `"application/vnd.cncf.helm.chart.content.v1.tar+gzip"`},
		{"made-up", gz, "application/vnd.example.layer.v9+gzip", scan.ErrInvalid, `"application/vnd.example.layer.v9+gzip"`},
		{"encrypted", gz, "application/vnd.oci.image.layer.v1.tar+gzip+encrypted", scan.ErrInvalid, "+encrypted"},
		{"empty", gz, "", scan.ErrInvalid, `""`},
		{"gzip-says-zstd", gz, types.OCILayerZStd, scan.ErrCorrupt, "zstd"},
		{"zstd-says-gzip", zst, types.OCILayer, scan.ErrCorrupt, "gzip"},
		{"gzip-says-tar", gz, types.OCIUncompressedLayer, scan.ErrCorrupt, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			opened, ref := openAsLayout(t, mediaTypeImage(t, tc.blob, tc.mt))
			r, err := catalog(t, ref, opened.Image, hostileLimits)
			if tc.want == nil {
				if err != nil {
					t.Fatalf("%s: %v", tc.mt, err)
				}
				if r.OS == nil || r.OS.Ecosystem != "Alpine:v3.18" || !hasPackage(r, "musl", "/lib/apk/db/installed") {
					t.Errorf("%s: OS %+v, packages %+v; want Alpine with musl", tc.mt, r.OS, r.Packages)
				}
				return
			}
			if err == nil {
				t.Fatalf("%s over %d bytes: scanned with no error (OS %+v, %d packages); want %v", tc.mt, len(tc.blob), r.OS, len(r.Packages), tc.want)
			}
			wantScanError(t, ref, err, tc.want)
			if !strings.Contains(err.Error(), tc.msg) {
				t.Errorf("error %q does not say %s", err, tc.msg)
			}
		})
	}
}

// zerosLayer is a gzip tar of an Alpine base and n bytes of zeros in
// files of at most 512 KiB, with extra zero bytes after the tar's end:
// a few kilobytes that inflate to n+extra.
func zerosLayer(t *testing.T, n, extra int) []byte {
	t.Helper()
	var buf bytes.Buffer
	zw, err := gzip.NewWriterLevel(&buf, gzip.BestCompression)
	if err != nil {
		t.Fatal(err)
	}
	entries := alpineFiles("")
	for i := 0; n > 0; i++ {
		size := min(n, 512<<10)
		entries = append(entries, imagetest.RawEntry{Header: tar.Header{Name: fmt.Sprintf("zeros/%04d", i), Size: int64(size)}, Body: string(make([]byte, size))})
		n -= size
	}
	if _, err := zw.Write(imagetest.Tar(t, entries...)); err != nil {
		t.Fatal(err)
	}
	zero := make([]byte, 1<<20)
	for extra > 0 {
		k := min(extra, len(zero))
		if _, err := zw.Write(zero[:k]); err != nil {
			t.Fatal(err)
		}
		extra -= k
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// TestInflatedBytes: MaxLayerBytes and MaxImageBytes bound what the
// scan inflates, the bytes after a tar's end included (a layer's DiffID
// covers them, so they are read), and stop the scan once passed.
//
// Fixed here: only the files' sizes were counted, so a layer of one
// small file and 64 MiB of zeros after the tar's end (64 KiB of gzip)
// was inflated whole under a 4 MiB limit, and the scan completed.
func TestInflatedBytes(t *testing.T) {
	tmp := privateTemp(t)
	t.Run("layer", func(t *testing.T) {
		bomb := zerosLayer(t, 0, 64<<20)
		var read atomic.Int64
		l, err := tarball.LayerFromOpener(countingOpener(bomb, &read))
		if err != nil {
			t.Fatal(err)
		}
		img := imagetest.Build(t, imagetest.BookwormBase(t), l)
		read.Store(0)
		ref := "trailing-zeros"
		r, err := catalog(t, ref, img, hostileLimits)
		if err == nil {
			t.Fatalf("%s: scanned with no error (%d packages) after inflating 64 MiB; want ErrLimit at %d bytes", ref, len(r.Packages), hostileLimits.MaxLayerBytes)
		}
		wantScanError(t, ref, err, scan.ErrLimit)
		if !strings.Contains(err.Error(), "layer 2: more than 4194304 bytes uncompressed") {
			t.Errorf("error %q does not give the layer and its limit", err)
		}
		if got := read.Load(); got > int64(len(bomb))/4 {
			t.Errorf("read %d of the layer's %d compressed bytes: the scan went on well past the limit", got, len(bomb))
		}
	})
	t.Run("image", func(t *testing.T) {
		// Three different layers of 3 MiB each: each within the layer
		// limit (4 MiB), together over the image's (8 MiB).
		var layers []v1.Layer
		for i := range 3 {
			layers = append(layers, imagetest.LayerFromBytes(t, zerosLayer(t, 0, 3<<20+i)))
		}
		ref := "trailing-zeros-image"
		r, err := catalog(t, ref, imagetest.Build(t, layers...), hostileLimits)
		if err == nil {
			t.Fatalf("%s: scanned with no error (%d packages) after inflating 9 MiB; want ErrLimit at %d bytes", ref, len(r.Packages), hostileLimits.MaxImageBytes)
		}
		wantScanError(t, ref, err, scan.ErrLimit)
		if !strings.Contains(err.Error(), "image: more than 8388608 bytes uncompressed") {
			t.Errorf("error %q does not give the image's limit", err)
		}
	})
	if left := leftIn(t, tmp); len(left) > 0 {
		t.Errorf("left in the temporary folder: %v", left)
	}
}

// TestRepeatedLayers: an image of many layers that are one blob over and
// over is bounded by MaxLayers before anything is read; under a higher
// bound, the blob is read, inflated and counted once, whatever the count.
//
// Fixed here: there was no bound on layers, and each was read again: a
// 3 KiB blob inflating to 3 MiB, 1000 times over, is 3 GiB to inflate
// (and, at the defaults, thousands of such layers ran for minutes).
func TestRepeatedLayers(t *testing.T) {
	tmp := privateTemp(t)
	blob := zerosLayer(t, 3<<20, 0)
	var read atomic.Int64
	l, err := tarball.LayerFromOpener(countingOpener(blob, &read))
	if err != nil {
		t.Fatal(err)
	}
	layers := make([]v1.Layer, 1000)
	for i := range layers {
		layers[i] = l
	}
	img := imagetest.Build(t, layers...)

	lim := hostileLimits
	lim.MaxLayers = 500
	read.Store(0)
	_, err = catalog(t, "1000-layers", img, lim)
	wantScanError(t, "1000-layers", err, scan.ErrLimit)
	if err != nil && !strings.Contains(err.Error(), "1000 layers, more than 500") {
		t.Errorf("error %q does not give the count and the limit", err)
	}
	if got := read.Load(); got != 0 {
		t.Errorf("read %d bytes of layers before refusing 1000 layers", got)
	}

	lim.MaxLayers = 1000
	read.Store(0)
	r, err := catalog(t, "1000-layers", img, lim)
	if err != nil {
		t.Fatalf("1000 layers of one 3 MiB blob under MaxImageBytes 8 MiB and MaxLayers 1000: %v", err)
	}
	if r.OS == nil || r.OS.Ecosystem != "Alpine:v3.18" || !hasPackage(r, "musl", "/lib/apk/db/installed") || len(r.Image.Layers) != 1000 {
		t.Errorf("OS %+v, packages %+v, %d layers; want Alpine with musl and 1000 layers", r.OS, r.Packages, len(r.Image.Layers))
	}
	if got := read.Load(); got != int64(len(blob)) {
		t.Errorf("read %d compressed bytes for a %d-byte blob repeated 1000 times; want it read once", got, len(blob))
	}
	if left := leftIn(t, tmp); len(left) > 0 {
		t.Errorf("left in the temporary folder: %v", left)
	}
}

// gatedReader blocks its first Read until gate is closed.
type gatedReader struct {
	r    io.Reader
	gate <-chan struct{}
	hit  chan<- struct{}
	once sync.Once
}

func (g *gatedReader) Read(p []byte) (int, error) {
	g.once.Do(func() {
		close(g.hit)
		<-g.gate
	})
	return g.r.Read(p)
}

// openContentFiles lists the files in tmp with no name that this process
// holds open, as /proc shows them: the content file made with O_TMPFILE
// ("tmp/#INODE (deleted)"), or a scangate-content-NNN already unlinked.
func openContentFiles(t *testing.T, pid int, tmp string) []string {
	t.Helper()
	fds, err := os.ReadDir(fmt.Sprintf("/proc/%d/fd", pid))
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, fd := range fds {
		target, err := os.Readlink(fmt.Sprintf("/proc/%d/fd/%s", pid, fd.Name()))
		if err == nil && strings.HasPrefix(target, tmp+"/") && strings.HasSuffix(target, " (deleted)") {
			out = append(out, target)
		}
	}
	return out
}

// TestContentFileNeverInTempDir: the file the unpacker keeps package
// databases in never has a name (O_TMPFILE), so that no name in
// $TMPDIR outlives the scan, even one killed with SIGKILL (which runs no
// cleanup; internal/cli's TestScanKilled checks the command).
//
// Fixed here: the content file had a name in $TMPDIR for the whole scan,
// removed only by the scan's own cleanup.
func TestContentFileNeverInTempDir(t *testing.T) {
	tmp := privateTemp(t)
	gate, hit := make(chan struct{}), make(chan struct{})
	top := imagetest.Tar(t, file("app/node_modules/x/package.json", `{"name":"x","version":"1.0.0"}`))
	// The base layer's 77 kB dpkg status goes to the content file; the
	// top layer's reader, once armed, waits until the test has looked.
	var armed atomic.Bool
	l, err := tarball.LayerFromOpener(func() (io.ReadCloser, error) {
		r := io.Reader(bytes.NewReader(top))
		if armed.Load() {
			r = &gatedReader{r: r, gate: gate, hit: hit}
		}
		return io.NopCloser(r), nil
	})
	if err != nil {
		t.Fatal(err)
	}
	img := imagetest.Build(t, imagetest.BookwormBase(t), l)
	armed.Store(true)
	// Both layers are read at once (the unpacker reads GOMAXPROCS layers
	// at a time), so that the base layer never waits behind the gate.
	defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(max(2, runtime.GOMAXPROCS(0))))
	done := make(chan error, 1)
	go func() {
		_, err := scan.Catalog(context.Background(), img, scan.ImageInfo{Ref: "content-file"}, hostileLimits)
		done <- err
	}()
	select {
	case <-hit:
	case err := <-done:
		t.Fatalf("the scan ended (%v) without reading the top layer", err)
	}
	var held []string
	giveUp := time.After(2 * time.Minute) // a hang, not a timing
	for held == nil {
		select {
		case err := <-done:
			t.Fatalf("the scan ended (%v) before the base layer's content file was seen", err)
		case <-giveUp:
			close(gate)
			t.Fatalf("the scan never held its content file (%v)", <-done)
		case <-time.After(time.Millisecond):
		}
		held = openContentFiles(t, os.Getpid(), tmp)
	}
	left := leftIn(t, tmp)
	close(gate)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if len(left) > 0 {
		t.Errorf("while the scan held %v, $TMPDIR listed %v; want nothing: a SIGKILL now would leave it there", held, left)
	}
}

// TestRegistryLayerMediaTypes: a registry's layers are read as their
// media type says too, with the scanner's own inflater. The registry is
// go-containerregistry's, served on 127.0.0.1; the image is pushed to it
// and opened as `scangate scan HOST/REPO:TAG` does.
//
// Fixed here: a registry's layers come wrapped (remote.MountableLayer),
// so the scan read them through go-containerregistry's Uncompressed,
// which sniffs the bytes (a gzip blob whose type says tar scanned as the
// gzip's content) and inflates with compress/gzip, three times slower.
func TestRegistryLayerMediaTypes(t *testing.T) {
	srv := httptest.NewServer(ggcrregistry.New(ggcrregistry.Logger(log.New(io.Discard, "", 0))))
	t.Cleanup(srv.Close)
	host := strings.TrimPrefix(srv.URL, "http://")
	if !strings.HasPrefix(host, "127.0.0.1:") {
		t.Fatalf("test registry on %s; want loopback", host)
	}
	layerTar := imagetest.Tar(t, alpineFiles("")...)
	gz := imagetest.GzipTar(t, layerTar)
	for _, tc := range []struct {
		name string
		blob []byte
		mt   types.MediaType
		want error // nil: Alpine with musl
	}{
		{"oci-gzip", gz, types.OCILayer, nil},
		{"docker-gzip", gz, types.DockerLayer, nil},
		{"oci-tar", layerTar, types.OCIUncompressedLayer, nil},
		{"gzip-says-tar", gz, types.OCIUncompressedLayer, scan.ErrCorrupt},
		{"tar-says-gzip", layerTar, types.OCILayer, scan.ErrCorrupt},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ref := host + "/media/" + tc.name + ":1"
			tag, err := name.NewTag(ref)
			if err != nil {
				t.Fatal(err)
			}
			if err := remote.Write(tag, mediaTypeImage(t, tc.blob, tc.mt)); err != nil {
				t.Fatal(err)
			}
			opened, err := image.Open(context.Background(), ref, image.Options{Keychain: authn.NewMultiKeychain()})
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { opened.Close() })
			r, err := catalog(t, ref, opened.Image, hostileLimits)
			if tc.want == nil {
				if err != nil {
					t.Fatalf("%s: %v", tc.mt, err)
				}
				if r.OS == nil || r.OS.Ecosystem != "Alpine:v3.18" || !hasPackage(r, "musl", "/lib/apk/db/installed") {
					t.Errorf("%s: OS %+v, packages %+v; want Alpine with musl", tc.mt, r.OS, r.Packages)
				}
				return
			}
			if err == nil {
				t.Fatalf("%s over %d bytes: scanned with no error (OS %+v, %d packages); want %v", tc.mt, len(tc.blob), r.OS, len(r.Packages), tc.want)
			}
			wantScanError(t, ref, err, tc.want)
		})
	}
}
