// Package imagetest builds small real container images for tests: layers
// from file lists, and a Debian bookworm image with an npm app on top made
// from the repository's fixtures.
package imagetest

import (
	"archive/tar"
	"bytes"
	"io"
	"os"
	"path/filepath"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
)

// Fixtures is the repository's feed and image fixture folder, as seen from
// a package two levels down (internal/x).
var Fixtures = filepath.Join("..", "..", "testdata", "vulndata")

// An Entry is one tar entry of a test layer. A base name starting with
// ".wh." deletes that path from the layers below, as the image spec says.
type Entry struct {
	Name, Body string
	Link       string // a symlink target, when set
	Hardlink   string // a hard link target, when set
}

// Layer makes an uncompressed layer of the entries.
func Layer(t testing.TB, entries ...Entry) v1.Layer {
	t.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, e := range entries {
		h := &tar.Header{Name: e.Name, Mode: 0o644, Size: int64(len(e.Body)), Typeflag: tar.TypeReg}
		switch {
		case e.Link != "":
			h = &tar.Header{Name: e.Name, Linkname: e.Link, Typeflag: tar.TypeSymlink, Mode: 0o777}
		case e.Hardlink != "":
			h = &tar.Header{Name: e.Name, Linkname: e.Hardlink, Typeflag: tar.TypeLink, Mode: 0o644}
		}
		if err := tw.WriteHeader(h); err != nil {
			t.Fatal(err)
		}
		if h.Typeflag == tar.TypeReg {
			io.WriteString(tw, e.Body)
		}
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	data := buf.Bytes()
	l, err := tarball.LayerFromOpener(func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(data)), nil })
	if err != nil {
		t.Fatal(err)
	}
	return l
}

// Build stacks layers into a linux/amd64 image.
func Build(t testing.TB, layers ...v1.Layer) v1.Image {
	t.Helper()
	img, err := mutate.AppendLayers(empty.Image, layers...)
	if err != nil {
		t.Fatal(err)
	}
	cf, err := img.ConfigFile()
	if err != nil {
		t.Fatal(err)
	}
	cf = cf.DeepCopy()
	cf.OS, cf.Architecture = "linux", "amd64"
	if img, err = mutate.ConfigFile(img, cf); err != nil {
		t.Fatal(err)
	}
	return img
}

// BookwormApp is Debian bookworm minbase (its real dpkg status) with an npm
// app on top (lodash 4.17.15, minimist 1.2.0), whose last layer deletes
// minimist with a whiteout. It returns the image and its layers.
func BookwormApp(t testing.TB) (v1.Image, []v1.Layer) {
	t.Helper()
	base := Layer(t,
		Entry{Name: "etc/os-release", Body: read(t, filepath.Join(Fixtures, "debian", "os-release"))},
		Entry{Name: "var/lib/dpkg/status", Body: read(t, filepath.Join(Fixtures, "debian", "dpkg-status"))},
	)
	app := Layer(t,
		Entry{Name: "app/node_modules/lodash/package.json", Body: `{"name": "lodash", "version": "4.17.15"}`},
		Entry{Name: "app/node_modules/minimist/package.json", Body: `{"name": "minimist", "version": "1.2.0"}`},
	)
	cleanup := Layer(t, Entry{Name: "app/node_modules/.wh.minimist"})
	layers := []v1.Layer{base, app, cleanup}
	return Build(t, layers...), layers
}

// WriteDockerArchive saves img as `docker save` would, tagged tag.
func WriteDockerArchive(t testing.TB, path, tag string, img v1.Image) string {
	t.Helper()
	tg, err := name.NewTag(tag)
	if err != nil {
		t.Fatal(err)
	}
	if err := tarball.WriteToFile(path, tg, img); err != nil {
		t.Fatal(err)
	}
	return path
}

func read(t testing.TB, path string) string {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(data)
}
