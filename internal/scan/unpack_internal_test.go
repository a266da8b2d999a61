package scan

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"hash"
	"io"
	"os"
	"path/filepath"
	"reflect"
	"sync/atomic"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/layout"

	"github.com/scangate/scangate/internal/image"
	"github.com/scangate/scangate/internal/imagetest"
)

type errAfter struct {
	r   io.Reader
	err error
}

func (e *errAfter) Read(p []byte) (int, error) {
	n, err := e.r.Read(p)
	if errors.Is(err, io.EOF) {
		return n, e.err
	}
	return n, err
}

// TestReadAhead: the bytes come through in order, the source's own error
// (a truncation) is kept, and Close mid-stream returns; with a hash, the
// hash has seen every byte once Read returns io.EOF.
func TestReadAhead(t *testing.T) {
	data := bytes.Repeat([]byte("0123456789abcdef"), 3*readAheadChunk/16+5)
	want := sha256.Sum256(data)
	for _, hashed := range []bool{false, true} {
		var h hash.Hash
		if hashed {
			h = sha256.New()
		}
		got, err := io.ReadAll(newReadAhead(io.NopCloser(bytes.NewReader(data)), h))
		if err != nil || !bytes.Equal(got, data) {
			t.Fatalf("hashed %v: read %d bytes, err %v; want %d bytes", hashed, len(got), err, len(data))
		}
		if hashed && !bytes.Equal(h.Sum(nil), want[:]) {
			t.Fatalf("hash %x, want %x", h.Sum(nil), want)
		}
		if hashed {
			h = sha256.New()
		}
		ra := newReadAhead(io.NopCloser(&errAfter{r: bytes.NewReader(data), err: io.ErrUnexpectedEOF}), h)
		got, err = io.ReadAll(ra)
		if !errors.Is(err, io.ErrUnexpectedEOF) || !bytes.Equal(got, data) {
			t.Fatalf("hashed %v: truncated: %d bytes, err %v; want io.ErrUnexpectedEOF after all bytes", hashed, len(got), err)
		}
		ra.Close()
		if hashed {
			h = sha256.New()
		}
		ra = newReadAhead(io.NopCloser(bytes.NewReader(bytes.Repeat(data, 20))), h)
		if _, err := io.ReadFull(ra, make([]byte, 10)); err != nil {
			t.Fatal(err)
		}
		if err := ra.Close(); err != nil {
			t.Fatal(err)
		}
		if _, err := ra.Read(make([]byte, 10)); err == nil {
			t.Fatal("read after close: no error")
		}
	}
}

// mappedBytes is a mapped file, as image's sectionCloser is a mapped
// section of an archive: its Read must not be used, its bytes are taken
// as they are (and their pages given back, which only a file's mapping
// can take).
type mappedBytes struct{ data []byte }

func mapped(t *testing.T, data []byte) []byte {
	t.Helper()
	path := filepath.Join(t.TempDir(), "mapped")
	if err := os.WriteFile(path, data, 0o600); err != nil {
		t.Fatal(err)
	}
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	m, err := mapFile(f)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { unmap(m) })
	return m
}

func (m *mappedBytes) Read([]byte) (int, error) { return 0, errors.New("read: the bytes are mapped") }
func (m *mappedBytes) Close() error             { return nil }
func (m *mappedBytes) Mapped() []byte           { return m.data }

// TestReadAheadMapped: a mapped stream comes through whole and hashed in
// slices of the mapping, Close mid-stream returns, and a Seek skips.
func TestReadAheadMapped(t *testing.T) {
	data := bytes.Repeat([]byte("0123456789abcdef"), 3*mappedChunk/16+5)
	want := sha256.Sum256(data)
	h := sha256.New()
	m := mapped(t, data)
	got, err := io.ReadAll(newReadAhead(&mappedBytes{m}, h))
	if err != nil || !bytes.Equal(got, data) || !bytes.Equal(h.Sum(nil), want[:]) {
		t.Fatalf("read %d bytes (err %v), hash %x; want %d bytes, hash %x", len(got), err, h.Sum(nil), len(data), want)
	}
	ra := newReadAhead(&mappedBytes{m}, sha256.New())
	if _, err := ra.Seek(int64(mappedChunk+7), io.SeekCurrent); err != nil {
		t.Fatal(err)
	}
	b := make([]byte, 9)
	if _, err := io.ReadFull(ra, b); err != nil || !bytes.Equal(b, data[mappedChunk+7:mappedChunk+16]) {
		t.Fatalf("after a seek: %q (%v), want %q", b, err, data[mappedChunk+7:mappedChunk+16])
	}
	if err := ra.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := ra.Read(b); err == nil {
		t.Fatal("read after close: no error")
	}
}

// TestEntryNames: names and hard link targets as moby/go-archive v0.3.0
// reads them (its TestUnpackLayer* cases of "invalid entry name" and
// "invalid hardlink target"), and symlink targets as a container's
// kernel follows them.
func TestEntryNames(t *testing.T) {
	for _, tc := range []struct {
		name, want string
		ok         bool
	}{
		{"a/b", "a/b", true},
		{"./a//b/", "a/b", true},
		{"/etc/passwd", "etc/passwd", true},
		{"//etc/../etc/x", "etc/x", true},
		{"a/../b", "b", true},
		{"./", "", true},
		{"/", "", true},
		{"", "", true},
		{"..", "", false},
		{"../", "", false},
		{"../x", "", false},
		{"a/../../x", "", false},
		{"/../x", "", false},
		{"./../x", "", false},
		{"..x/y", "..x/y", true},
	} {
		if got, ok := entryName(tc.name); got != tc.want || ok != tc.ok {
			t.Errorf("entryName(%q) = %q, %v; want %q, %v", tc.name, got, ok, tc.want, tc.ok)
		}
	}
	for _, tc := range []struct {
		target, want string
		ok           bool
	}{
		{"a/b", "a/b", true},
		{"/a/b", "a/b", true},
		{"a/../b", "b", true},
		{"/a/../b", "b", true},
		{"../b", "", false},
		{"a/../../b", "", false},
		{"/../b", "", false},
		{"/a/../../b", "", false},
		{".", "", false},
		{"", "", false},
		{"/", "", false},
	} {
		if got, ok := hardLinkTarget(tc.target); got != tc.want || ok != tc.ok {
			t.Errorf("hardLinkTarget(%q) = %q, %v; want %q, %v", tc.target, got, ok, tc.want, tc.ok)
		}
	}
	for _, tc := range []struct{ dir, target, want string }{
		{"", "a/b", "a/b"},
		{"var/lib/dpkg", "../../../etc/x", "etc/x"},
		{"var/lib/dpkg", "../../../../../etc/x", "etc/x"},
		{"a", "/../x", "x"},
		{"a", "/x/../y", "y"},
		{"a", "b/../../..", ""},
	} {
		if got := linkTarget(tc.dir, tc.target); got != tc.want {
			t.Errorf("linkTarget(%q, %q) = %q, want %q", tc.dir, tc.target, got, tc.want)
		}
	}
}

// TestStoredGzipFastPath: a docker-archive's and an OCI layout's gzip
// layers are inflated from their stored blobs; a layer that would
// compress on the fly is not. (A go-containerregistry upgrade that renames
// its types makes scans slower, not wrong: this test says so.)
func TestStoredGzipFastPath(t *testing.T) {
	img, _ := imagetest.BookwormApp(t)
	dir := t.TempDir()
	archive := imagetest.WriteDockerArchive(t, filepath.Join(dir, "app.tar"), "scangate.test/app:1", img)
	if _, err := layout.Write(filepath.Join(dir, "oci"), empty.Index); err != nil {
		t.Fatal(err)
	}
	lp, err := layout.FromPath(filepath.Join(dir, "oci"))
	if err != nil {
		t.Fatal(err)
	}
	if err := lp.AppendImage(img); err != nil {
		t.Fatal(err)
	}
	for _, ref := range []string{"docker-archive:" + archive, "oci:" + filepath.Join(dir, "oci")} {
		opened, err := image.Open(context.Background(), ref, image.Options{TempDir: t.TempDir()})
		if err != nil {
			t.Fatal(err)
		}
		ls, err := newLimitedImage(opened.Image, DefaultLimits).Layers()
		if err != nil {
			t.Fatal(err)
		}
		for i, l := range ls {
			if !compressedIsStored(l.(*limitedLayer)) {
				t.Errorf("%s: layer %d (%T) read through Uncompressed", ref, i+1, l.(*limitedLayer).Layer)
			}
		}
		// The progress bar's wrapper keeps the fast path.
		ls, err = newLimitedImage(image.WithProgress(opened.Image, func(int64) {}), DefaultLimits).Layers()
		if err != nil {
			t.Fatal(err)
		}
		for i, l := range ls {
			if !compressedIsStored(l.(*limitedLayer)) {
				t.Errorf("%s with progress: layer %d read through Uncompressed", ref, i+1)
			}
		}
		opened.Close()
	}
	ls, err := newLimitedImage(img, DefaultLimits).Layers()
	if err != nil {
		t.Fatal(err)
	}
	if compressedIsStored(ls[0].(*limitedLayer)) {
		t.Errorf("a layer from an opener (%T) counted as a stored blob", ls[0].(*limitedLayer).Layer)
	}
}

// TestReadAheadSeek: skipping forward drops exactly the bytes skipped,
// across chunks, and a skip past the end stops at the end.
func TestReadAheadSeek(t *testing.T) {
	data := make([]byte, 3*readAheadChunk+123)
	for i := range data {
		data[i] = byte(i * 7)
	}
	ra := newReadAhead(io.NopCloser(bytes.NewReader(data)), sha256.New())
	defer ra.Close()
	head := make([]byte, 10)
	if _, err := io.ReadFull(ra, head); err != nil || !bytes.Equal(head, data[:10]) {
		t.Fatalf("head: %v", err)
	}
	if pos, err := ra.Seek(0, io.SeekCurrent); err != nil || pos != 10 {
		t.Fatalf("Seek(0) = %d, %v; want 10", pos, err)
	}
	skip := int64(readAheadChunk + 5000)
	if pos, err := ra.Seek(skip, io.SeekCurrent); err != nil || pos != 10+skip {
		t.Fatalf("Seek(%d) = %d, %v", skip, pos, err)
	}
	next := make([]byte, 100)
	if _, err := io.ReadFull(ra, next); err != nil || !bytes.Equal(next, data[10+skip:10+skip+100]) {
		t.Fatalf("after the skip: %v", err)
	}
	if pos, err := ra.Seek(int64(len(data)), io.SeekCurrent); err != nil || pos != int64(len(data)) {
		t.Fatalf("Seek past the end = %d, %v; want %d", pos, err, len(data))
	}
	if n, err := ra.Read(next); n != 0 || err != io.EOF {
		t.Fatalf("read at the end: %d, %v", n, err)
	}
	if _, err := ra.Seek(-1, io.SeekCurrent); err == nil {
		t.Fatal("seek back: no error")
	}
}

// TestSonameTargetFirst: a layer whose tar lists a shared library before
// the link its SONAME names (docker import of a `tar -c` of a debootstrap
// tree does, for 26 of Debian's libraries) is read once, not a second time
// for the library, and the scan finds what it finds in a tar that lists
// the link first (a sorted one, as docker build writes).
func TestSonameTargetFirst(t *testing.T) {
	lib := imagetest.Entry{Name: "usr/lib/x86_64-linux-gnu/libdemo.so.1.2.3", Body: string(imagetest.FakeShell(t))}
	link := imagetest.Entry{Name: "usr/lib/x86_64-linux-gnu/libdemo.so.1", Link: "libdemo.so.1.2.3"}
	var got [][]Package
	for _, order := range [][]imagetest.Entry{{link, lib}, {lib, link}} {
		var opens atomic.Int32
		top := countingLayer{Layer: imagetest.Layer(t, order...), opens: &opens}
		r, err := Catalog(context.Background(), imagetest.Build(t, imagetest.BookwormBase(t), top), ImageInfo{Ref: "test"}, DefaultLimits)
		if err != nil {
			t.Fatal(err)
		}
		if n := opens.Load(); n != 1 {
			t.Errorf("%s first: the layer was read %d times, want once", order[0].Name, n)
		}
		for i := range r.Packages {
			if r.Packages[i].Layer == r.Image.Layers[1] {
				r.Packages[i].Layer = "top" // the two tars differ, and so do their DiffIDs
			}
		}
		got = append(got, r.Packages)
	}
	if !reflect.DeepEqual(got[0], got[1]) {
		t.Errorf("the library listed first changed the packages: %d with the link first, %d with the library first", len(got[0]), len(got[1]))
		for i := range min(len(got[0]), len(got[1])) {
			if !reflect.DeepEqual(got[0][i], got[1][i]) {
				t.Errorf("first difference: %+v, then %+v", got[0][i], got[1][i])
				break
			}
		}
	}
	found := false
	for _, p := range got[1] {
		found = found || (p.Type == "go-module" && p.Path == "/usr/lib/x86_64-linux-gnu/libdemo.so.1")
	}
	if !found {
		t.Error("no Go module found in the library through its link")
	}
}

// countingLayer counts the reads of a layer's content.
type countingLayer struct {
	v1.Layer
	opens *atomic.Int32
}

func (l countingLayer) Uncompressed() (io.ReadCloser, error) {
	l.opens.Add(1)
	return l.Layer.Uncompressed()
}

func (l countingLayer) Compressed() (io.ReadCloser, error) {
	l.opens.Add(1)
	return l.Layer.Compressed()
}
