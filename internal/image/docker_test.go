package image_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"io"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/moby/moby/client"

	"github.com/scangate/scangate/internal/image"
	"github.com/scangate/scangate/internal/imagetest"
	"github.com/scangate/scangate/internal/layercache"
)

// TestDockerEngineFromCache opens an image of the real Docker Engine with
// a cache: the first open exports it; the next takes its config and
// manifest from the cache and exports it only when a layer is read, and
// the image is the same either way. A cache record that does not read
// back is passed over, and the image exported again. The engine's own
// event log counts the exports.
func TestDockerEngineFromCache(t *testing.T) {
	const ref = "scangate-test/engine-cache:1"
	built := imagetest.Build(t,
		imagetest.Layer(t, imagetest.Entry{Name: "etc/os-release", Body: "ID=debian\nVERSION_ID=\"12\"\n"}),
		imagetest.Layer(t, imagetest.Entry{Name: "app/node_modules/lodash/package.json", Body: `{"name": "lodash", "version": "4.17.15"}`}),
	)
	_, id := imagetest.DockerSave(t, built, ref)
	cli, err := client.New(client.FromEnv)
	if err != nil {
		t.Fatal(err)
	}
	defer cli.Close()
	cacheDir := t.TempDir()
	cache, err := layercache.Open(cacheDir, 0)
	if err != nil {
		t.Fatal(err)
	}
	tmp := t.TempDir()
	opts := image.Options{Cache: cache, TempDir: tmp}
	since := time.Now()
	exports := func(want int, when string) {
		t.Helper()
		if got := imagetest.DockerExports(t, cli, id, since); got != want {
			t.Fatalf("%s: the engine exported the image %d times, want %d", when, got, want)
		}
	}

	first := openEngine(t, ref, opts)
	exports(1, "first open")
	want := describe(t, first, true)
	closeAndClean(t, first, tmp)

	second := openEngine(t, ref, opts)
	got := describe(t, second, false)
	exports(1, "second open, before a layer is read")
	if got != want {
		t.Fatalf("from the cache:\n%s\nexported:\n%s", got, want)
	}
	if got := describe(t, second, true); got != want {
		t.Fatalf("from the cache, its layers read:\n%s\nexported:\n%s", got, want)
	}
	exports(2, "second open, its layers read")
	closeAndClean(t, second, tmp)

	// A record cut short, or of another image, is no record.
	recs, err := filepath.Glob(filepath.Join(cacheDir, "*.rec"))
	if err != nil || len(recs) != 1 {
		t.Fatalf("cache records %v (%v), want one", recs, err)
	}
	data, err := os.ReadFile(recs[0])
	if err != nil {
		t.Fatal(err)
	}
	flipped := bytes.Clone(data) // a config that is not the image's
	at := bytes.Index(flipped, []byte(`"config":"`)) + 20
	flipped[at] ^= 1
	for i, bad := range [][]byte{data[:len(data)/2], flipped, []byte("{}")} {
		if err := os.WriteFile(recs[0], bad, 0o600); err != nil {
			t.Fatal(err)
		}
		img := openEngine(t, ref, opts)
		exports(3+i, "a bad record")
		if got := describe(t, img, false); got != want {
			t.Fatalf("with a bad record:\n%s\nwant:\n%s", got, want)
		}
		closeAndClean(t, img, tmp)
	}

	// Without a cache, every open exports.
	img := openEngine(t, ref, image.Options{TempDir: tmp})
	exports(6, "no cache")
	closeAndClean(t, img, tmp)
}

func openEngine(t *testing.T, ref string, opts image.Options) *image.Image {
	t.Helper()
	img, err := image.Open(context.Background(), "docker:"+ref, opts)
	if err != nil {
		t.Fatal(err)
	}
	return img
}

// describe gives what a scan reads of the image: its names, manifest and
// config, and, if read, each layer's content hash beside its DiffID.
func describe(t *testing.T, img *image.Image, read bool) string {
	t.Helper()
	var b bytes.Buffer
	b.WriteString(img.Repository)
	for _, tag := range img.Tags {
		b.WriteString(" " + tag)
	}
	raw, err := img.RawManifest()
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := img.RawConfigFile()
	if err != nil {
		t.Fatal(err)
	}
	b.WriteString("\nmanifest " + string(raw) + "\nconfig " + string(cfg) + "\n")
	if !read {
		return b.String()
	}
	layers, err := img.Layers()
	if err != nil {
		t.Fatal(err)
	}
	for i, l := range layers {
		diffID, err := l.DiffID()
		if err != nil {
			t.Fatal(err)
		}
		rc, err := l.Compressed()
		if err != nil {
			t.Fatal(err)
		}
		h := sha256.New()
		if _, err := io.Copy(h, rc); err != nil {
			t.Fatalf("layer %d: %v", i+1, err)
		}
		rc.Close()
		if got := "sha256:" + hex.EncodeToString(h.Sum(nil)); got != diffID.String() {
			t.Fatalf("layer %d reads as %s, its DiffID is %s", i+1, got, diffID)
		}
	}
	return b.String()
}

// closeAndClean closes the image and checks that its export is gone.
func closeAndClean(t *testing.T, img *image.Image, tmp string) {
	t.Helper()
	if err := img.Close(); err != nil {
		t.Fatal(err)
	}
	if left, _ := os.ReadDir(tmp); len(left) != 0 {
		t.Fatalf("%d files left in the temporary folder after Close", len(left))
	}
}
