package image_test

import (
	"archive/tar"
	"context"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"github.com/google/go-containerregistry/pkg/v1/types"

	"github.com/scangate/scangate/internal/image"
	"github.com/scangate/scangate/internal/imagetest"
)

// TestDockerSaveArchive opens what `docker save` really writes: the image
// is known by its config digest, the engine's image ID; its layers are the
// stored tars, so a layer's digest is its DiffID, and nothing is
// compressed to name it (go-containerregistry's tarball gzipped every
// layer to make up gzip digests, which no registry or engine ever saw).
func TestDockerSaveArchive(t *testing.T) {
	src, srcLayers := imagetest.BookwormApp(t)
	path, id := imagetest.DockerSave(t, src, "127.0.0.1:5000/archive-test:1")

	img, err := image.Open(context.Background(), "docker-archive:"+path, image.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer img.Close()
	if img.Repository != "127.0.0.1:5000/archive-test" || strings.Join(img.Tags, ",") != "1" {
		t.Errorf("repository %q, tags %q; want 127.0.0.1:5000/archive-test, 1", img.Repository, img.Tags)
	}
	cfg, err := img.ConfigName()
	if err != nil || cfg.String() != id {
		t.Errorf("config digest %s (%v); want the engine's image ID %s", cfg, err, id)
	}
	layers, err := img.Layers()
	if err != nil {
		t.Fatal(err)
	}
	m, err := img.Manifest()
	if err != nil {
		t.Fatal(err)
	}
	if len(layers) != len(srcLayers) || len(m.Layers) != len(srcLayers) {
		t.Fatalf("%d layers, %d in the manifest; want %d", len(layers), len(m.Layers), len(srcLayers))
	}
	for i, l := range layers {
		want, _ := srcLayers[i].DiffID()
		diffID, _ := l.DiffID()
		digest, _ := l.Digest()
		mt, _ := l.MediaType()
		if diffID != want || digest != want || m.Layers[i].Digest != want {
			t.Errorf("layer %d: DiffID %s, digest %s, manifest %s; want all %s", i, diffID, digest, m.Layers[i].Digest, want)
		}
		if mt != types.DockerUncompressedLayer || m.Layers[i].MediaType != types.DockerUncompressedLayer {
			t.Errorf("layer %d: media type %s (manifest %s); want %s", i, mt, m.Layers[i].MediaType, types.DockerUncompressedLayer)
		}
	}
	if err := readAll(img.Image); err != nil {
		t.Errorf("reading the layers: %v", err)
	}
}

// TestDockerArchiveLinkedLayers: docker save writes a layer that two
// images share once and links the other's layer.tar to it; a hard link
// names its target from the archive's root. Links never lead out of the
// archive: a link to a path outside is a path that is not in it.
func TestDockerArchiveLinkedLayers(t *testing.T) {
	layer := imagetest.Layer(t, imagetest.Entry{Name: "etc/os-release", Body: "ID=alpine\nVERSION_ID=3.20.0\n"})
	img := imagetest.Build(t, layer, layer, layer)
	rc, err := layer.Uncompressed()
	if err != nil {
		t.Fatal(err)
	}
	body, err := io.ReadAll(rc)
	if err != nil {
		t.Fatal(err)
	}
	config, err := img.RawConfigFile()
	if err != nil {
		t.Fatal(err)
	}
	manifest := `[{"Config":"config.json","RepoTags":["linked:1"],"Layers":["a/layer.tar","b/layer.tar","c/layer.tar"]}]`
	data := imagetest.Tar(t,
		entry("manifest.json", manifest),
		entry("config.json", string(config)),
		entry("a/layer.tar", string(body)),
		imagetest.RawEntry{Header: tar.Header{Name: "b/layer.tar", Linkname: "../a/layer.tar", Typeflag: tar.TypeSymlink}},
		imagetest.RawEntry{Header: tar.Header{Name: "c/layer.tar", Linkname: "a/layer.tar", Typeflag: tar.TypeLink}},
	)
	path := writeFile(t, filepath.Join(t.TempDir(), "linked.tar"), data)
	opened, err := image.Open(context.Background(), "docker-archive:"+path, image.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer opened.Close()
	if err := readAll(opened.Image); err != nil {
		t.Errorf("reading linked layers: %v", err)
	}

	escaping := imagetest.Tar(t,
		entry("manifest.json", manifest),
		entry("config.json", string(config)),
		entry("a/layer.tar", string(body)),
		imagetest.RawEntry{Header: tar.Header{Name: "b/layer.tar", Linkname: "../../../../etc/passwd", Typeflag: tar.TypeSymlink}},
		imagetest.RawEntry{Header: tar.Header{Name: "c/layer.tar", Linkname: "c/layer.tar", Typeflag: tar.TypeSymlink}},
	)
	ref := "docker-archive:" + writeFile(t, filepath.Join(t.TempDir(), "escaping.tar"), escaping)
	if _, err := image.Open(context.Background(), ref, image.Options{}); err == nil || !strings.Contains(err.Error(), "not in the archive") {
		t.Errorf("a layer linked out of the archive: err = %v; want it not found", err)
	}
}

// FuzzDockerArchive opens arbitrary bytes as a docker save archive: no
// panic, and either an error or an image whose layers read to the end or
// fail.
func FuzzDockerArchive(f *testing.F) {
	small := imagetest.Build(f, imagetest.Layer(f, imagetest.Entry{Name: "etc/os-release", Body: "ID=alpine\n"}))
	dir := f.TempDir()
	good := filepath.Join(dir, "good.tar")
	if err := tarball.WriteToFile(good, name.MustParseReference("app:1").(name.Tag), small); err != nil {
		f.Fatal(err)
	}
	data, err := os.ReadFile(good)
	if err != nil {
		f.Fatal(err)
	}
	f.Add(data)
	f.Add(imagetest.Tar(f, entry("manifest.json", `[{"Config":"c","Layers":["l"]}]`), entry("c", `{"rootfs":{"diff_ids":["sha256:00"]}}`),
		imagetest.RawEntry{Header: tar.Header{Name: "l", Linkname: "l", Typeflag: tar.TypeSymlink}}))
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, data []byte) {
		path := writeFile(t, filepath.Join(t.TempDir(), "fuzz.tar"), data)
		img, err := image.Open(context.Background(), "docker-archive:"+path, image.Options{})
		if err != nil {
			return
		}
		_ = readAll(img.Image)
		_, _ = img.Manifest() // a gzip layer is hashed here: it may fail, never panic
		if err := img.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
}
