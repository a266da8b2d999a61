package image_test

// Bad input for Open: OCI archives whose entries climb out of the unpack
// folder or are links, broken and hostile OCI layouts, corrupt docker save
// archives. Every one must end in an error that names the image, with no
// panic, no hang, nothing written outside the unpack folder and nothing
// left in the TempDir Open was given.

import (
	"archive/tar"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"runtime/debug"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/tarball"

	"github.com/scangate/scangate/internal/image"
	"github.com/scangate/scangate/internal/imagetest"
)

const (
	indexType    = "application/vnd.oci.image.index.v1+json"
	manifestType = "application/vnd.oci.image.manifest.v1+json"
	configType   = "application/vnd.oci.image.config.v1+json"
	layerType    = "application/vnd.oci.image.layer.v1.tar+gzip"
)

func entry(name, body string) imagetest.RawEntry {
	return imagetest.RawEntry{Header: tar.Header{Name: name}, Body: body}
}

func writeFile(t testing.TB, path string, data []byte) string {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, data, 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

// files lists every file and folder under dir with its content.
func files(t *testing.T, dir string) map[string]string {
	t.Helper()
	out := map[string]string{}
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			out[p] = "(dir)"
			return nil
		}
		data, err := os.ReadFile(p)
		out[p] = string(data)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func emptyDir(t *testing.T, dir string) {
	t.Helper()
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(ents) > 0 {
		var names []string
		for _, e := range ents {
			names = append(names, e.Name())
		}
		t.Errorf("left in %s: %v", dir, names)
	}
}

// TestOCIArchiveRefusesEscapes: an oci-archive whose entries climb out of
// the unpack folder, are absolute, or are links or devices is refused,
// naming the archive and the entry; nothing is written outside the unpack
// folder and the folder itself is removed.
func TestOCIArchiveRefusesEscapes(t *testing.T) {
	// base/canary is what a link or a climbing name would reach; the
	// unpack folder is made in base/a/b, so ../../x from inside it lands
	// in base/a.
	base := t.TempDir()
	tempDir := filepath.Join(base, "a", "b")
	if err := os.MkdirAll(tempDir, 0o755); err != nil {
		t.Fatal(err)
	}
	canary := writeFile(t, filepath.Join(base, "canary"), []byte("host file"))
	before := files(t, base)
	archives := t.TempDir()
	link := func(typ byte, name, target string) imagetest.RawEntry {
		return imagetest.RawEntry{Header: tar.Header{Name: name, Linkname: target, Typeflag: typ, Mode: 0o777}}
	}
	layoutFile := entry("oci-layout", `{"imageLayoutVersion":"1.0.0"}`)
	for _, tc := range []struct {
		name    string
		entries []imagetest.RawEntry
		entry   string // what the message must name
	}{
		{"dotdot", []imagetest.RawEntry{layoutFile, entry("../escape", "x")}, "../escape"},
		{"dotdot-deep", []imagetest.RawEntry{entry("../../../../../../../../../tmp/scangate-escape", "x")}, "scangate-escape"},
		{"dotdot-inside", []imagetest.RawEntry{entry("blobs/sha256/../../../escape", "x")}, "escape"},
		{"dot-dotdot", []imagetest.RawEntry{entry("./../escape", "x")}, "escape"},
		{"absolute", []imagetest.RawEntry{entry(filepath.ToSlash(base)+"/absolute-escape", "x")}, "absolute-escape"},
		{"absolute-canary", []imagetest.RawEntry{entry(filepath.ToSlash(canary), "overwritten")}, "canary"},
		{"dir-dotdot", []imagetest.RawEntry{{Header: tar.Header{Name: "../escape-dir/", Typeflag: tar.TypeDir, Mode: 0o755}}}, "escape-dir"},
		{"symlink-file", []imagetest.RawEntry{layoutFile, link(tar.TypeSymlink, "index.json", canary)}, "index.json"},
		{"symlink-dir-then-file", []imagetest.RawEntry{link(tar.TypeSymlink, "blobs", base), entry("blobs/through-link", "x")}, "blobs"},
		{"symlink-relative", []imagetest.RawEntry{link(tar.TypeSymlink, "index.json", "../../canary")}, "index.json"},
		{"hardlink", []imagetest.RawEntry{link(tar.TypeLink, "index.json", canary)}, "index.json"},
		{"hardlink-dotdot", []imagetest.RawEntry{link(tar.TypeLink, "index.json", "../../canary")}, "index.json"},
		{"char-device", []imagetest.RawEntry{{Header: tar.Header{Name: "index.json", Typeflag: tar.TypeChar, Devmajor: 1, Devminor: 3}}}, "index.json"},
		{"fifo", []imagetest.RawEntry{{Header: tar.Header{Name: "index.json", Typeflag: tar.TypeFifo}}}, "index.json"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			path := writeFile(t, filepath.Join(archives, tc.name+".tar"), imagetest.Tar(t, tc.entries...))
			ref := "oci-archive:" + path
			img, err := image.Open(context.Background(), ref, image.Options{TempDir: tempDir})
			if err == nil {
				img.Close()
				t.Fatalf("%s opened; want it refused", tc.name)
			}
			if msg := err.Error(); !strings.Contains(msg, ref) || !strings.Contains(msg, tc.entry) {
				t.Errorf("error %q: want the archive (%s) and the entry (%s) named", msg, ref, tc.entry)
			}
			emptyDir(t, tempDir)
			after := files(t, base)
			for p, body := range after {
				if before[p] != body {
					t.Errorf("%s: %q written outside the unpack folder", p, body)
				}
			}
			if len(after) != len(before) {
				t.Errorf("%d files and folders under %s before, %d after", len(before), base, len(after))
			}
		})
	}
	if _, err := os.Lstat("/tmp/scangate-escape"); err == nil {
		t.Errorf("/tmp/scangate-escape exists")
	}
}

// ociArchive writes img as an OCI layout, tagged tag when tag is not
// empty, and tars it up; it returns the archive's path and the layout's.
func ociArchive(t testing.TB, img v1.Image, tag string) (archive, dir string) {
	t.Helper()
	dir = filepath.Join(t.TempDir(), "layout")
	lp, err := layout.Write(dir, empty.Index)
	if err != nil {
		t.Fatal(err)
	}
	var opts []layout.Option
	if tag != "" {
		opts = append(opts, layout.WithAnnotations(map[string]string{"org.opencontainers.image.ref.name": tag}))
	}
	if err := lp.AppendImage(img, opts...); err != nil {
		t.Fatal(err)
	}
	return tarDir(t, dir), dir
}

// tarDir writes the files and folders under dir as a tar beside it.
func tarDir(t testing.TB, dir string) string {
	t.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || p == dir {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		info, err := d.Info()
		if err != nil {
			return err
		}
		h, err := tar.FileInfoHeader(info, "")
		if err != nil {
			return err
		}
		h.Name = filepath.ToSlash(rel)
		if err := tw.WriteHeader(h); err != nil {
			return err
		}
		if d.IsDir() {
			return nil
		}
		data, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		_, err = tw.Write(data)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	return writeFile(t, dir+".tar", buf.Bytes())
}

// readAll reads what a scan reads: the config and every layer to its end.
func readAll(img v1.Image) error {
	if _, err := img.ConfigFile(); err != nil {
		return err
	}
	layers, err := img.Layers()
	if err != nil {
		return err
	}
	for _, l := range layers {
		rc, err := l.Uncompressed()
		if err != nil {
			return err
		}
		tr := tar.NewReader(rc)
		for {
			if _, err = tr.Next(); err != nil {
				break
			}
		}
		rc.Close()
		if !errors.Is(err, io.EOF) {
			return err
		}
	}
	return nil
}

// TestOCIArchiveOpensAndCleansUp: a good archive opens, by tag or alone,
// and Close removes what it unpacked; one over MaxArchiveBytes is refused
// with nothing left.
func TestOCIArchiveOpensAndCleansUp(t *testing.T) {
	img, _ := imagetest.BookwormApp(t)
	archive, _ := ociArchive(t, img, "1")
	tempDir := t.TempDir()
	for _, ref := range []string{"oci-archive:" + archive, "oci-archive:" + archive + ":1"} {
		opened, err := image.Open(context.Background(), ref, image.Options{TempDir: tempDir})
		if err != nil {
			t.Fatalf("%s: %v", ref, err)
		}
		if err := readAll(opened.Image); err != nil {
			t.Errorf("%s: %v", ref, err)
		}
		if !strings.HasPrefix(opened.Digest, "sha256:") {
			t.Errorf("%s: digest %q", ref, opened.Digest)
		}
		if err := opened.Close(); err != nil {
			t.Error(err)
		}
		emptyDir(t, tempDir)
	}

	ref := "oci-archive:" + archive
	_, err := image.Open(context.Background(), ref, image.Options{TempDir: tempDir, MaxArchiveBytes: 1000})
	if err == nil || !strings.Contains(err.Error(), "more than 1000 bytes") || !strings.Contains(err.Error(), archive) {
		t.Errorf("MaxArchiveBytes 1000: err = %v; want the archive named and the limit given", err)
	}
	emptyDir(t, tempDir)

	_, err = image.Open(context.Background(), ref+":2", image.Options{TempDir: tempDir})
	if !errors.Is(err, image.ErrBadReference) || !strings.Contains(err.Error(), `"2"`) {
		t.Errorf("missing tag: err = %v; want a bad reference naming the tag", err)
	}
	emptyDir(t, tempDir)
}

// blobs is an OCI layout written by hand, for layouts no tool writes.
type blobs struct {
	t   *testing.T
	dir string
}

func newLayout(t *testing.T) blobs {
	dir := t.TempDir()
	writeFile(t, filepath.Join(dir, "oci-layout"), []byte(`{"imageLayoutVersion":"1.0.0"}`))
	return blobs{t, dir}
}

// put stores data as a blob and returns its descriptor as JSON.
func (b blobs) put(mediaType string, data []byte, extra string) string {
	sum := sha256.Sum256(data)
	h := hex.EncodeToString(sum[:])
	writeFile(b.t, filepath.Join(b.dir, "blobs", "sha256", h), data)
	return b.desc(mediaType, "sha256:"+h, len(data), extra)
}

func (b blobs) desc(mediaType, digest string, size int, extra string) string {
	return fmt.Sprintf(`{"mediaType":%q,"digest":%q,"size":%d%s}`, mediaType, digest, size, extra)
}

func (b blobs) index(descs ...string) []byte {
	return fmt.Appendf(nil, `{"schemaVersion":2,"mediaType":%q,"manifests":[%s]}`, indexType, strings.Join(descs, ","))
}

func (b blobs) manifest(config string, layers ...string) []byte {
	return fmt.Appendf(nil, `{"schemaVersion":2,"mediaType":%q,"config":%s,"layers":[%s]}`, manifestType, config, strings.Join(layers, ","))
}

func (b blobs) setIndex(data []byte) {
	writeFile(b.t, filepath.Join(b.dir, "index.json"), data)
}

// config is an image config for the layers' DiffIDs.
func (b blobs) config(diffIDs ...string) string {
	ids := `"` + strings.Join(diffIDs, `","`) + `"`
	if len(diffIDs) == 0 {
		ids = ""
	}
	return b.put(configType, fmt.Appendf(nil, `{"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":[%s]}}`, ids), "")
}

const missing = "sha256:0000000000000000000000000000000000000000000000000000000000000000"

// TestBrokenLayouts: OCI layouts with no index, an empty or broken one,
// descriptors of missing blobs, layers of unknown types, and no image for
// the platform: Open, or reading the image as a scan does, fails with an
// error naming the image; as oci: and as oci-archive:, which leaves
// nothing behind.
func TestBrokenLayouts(t *testing.T) {
	layerTar := imagetest.Tar(t, entry("etc/os-release", "ID=debian\n"))
	gz := imagetest.GzipTar(t, layerTar)
	diffSum := sha256.Sum256(layerTar)
	diffID := "sha256:" + hex.EncodeToString(diffSum[:])

	for _, tc := range []struct {
		name string
		make func(b blobs)
		// opens says Open may succeed, the error then coming when the
		// image is read.
		opens bool
		msg   string
	}{
		{"no-index", func(b blobs) {}, false, "index.json"},
		{"empty-index-file", func(b blobs) { b.setIndex(nil) }, false, "JSON"},
		{"garbage-index", func(b blobs) { b.setIndex([]byte("{not json")) }, false, ""},
		{"index-is-a-folder", func(b blobs) {
			if err := os.Mkdir(filepath.Join(b.dir, "index.json"), 0o755); err != nil {
				b.t.Fatal(err)
			}
		}, false, "index.json"},
		{"no-manifests", func(b blobs) { b.setIndex(b.index()) }, false, "no image"},
		// Open trusts the index's descriptor and reads the manifest only
		// when the scan asks for it.
		{"missing-manifest-blob", func(b blobs) { b.setIndex(b.index(b.desc(manifestType, missing, 100, ""))) }, true, "0000000000"},
		{"manifest-not-json", func(b blobs) { b.setIndex(b.index(b.put(manifestType, []byte("<html>"), ""))) }, true, ""},
		{"missing-config-blob", func(b blobs) {
			b.setIndex(b.index(b.put(manifestType, b.manifest(b.desc(configType, missing, 10, ""), b.put(layerType, gz, "")), "")))
		}, true, "0000000000"},
		{"missing-layer-blob", func(b blobs) {
			b.setIndex(b.index(b.put(manifestType, b.manifest(b.config(diffID), b.desc(layerType, missing, 10, "")), "")))
		}, true, "0000000000"},
		{"unknown-layer-type-not-a-tar", func(b blobs) {
			sbom := []byte(`{"spdxVersion":"SPDX-2.3"}`)
			b.setIndex(b.index(b.put(manifestType, b.manifest(b.config("sha256:"+fmt.Sprintf("%x", sha256.Sum256(sbom))), b.put("application/vnd.example.sbom+json", sbom, "")), "")))
		}, true, ""},
		{"other-platform-only", func(b blobs) {
			b.setIndex(b.index(b.put(manifestType, b.manifest(b.config(diffID), b.put(layerType, gz, "")), `,"platform":{"os":"linux","architecture":"arm64"}`)))
		}, false, "no image for platform linux/amd64"},
		{"not-an-image", func(b blobs) {
			b.setIndex(b.index(b.put("application/vnd.example.artifact+json", []byte(`{}`), "")))
		}, false, "no image for platform"},
		{"nested-empty-index", func(b blobs) {
			b.setIndex(b.index(b.put(indexType, b.index(), "")))
		}, false, "no image for platform"},
		{"nested-missing-index", func(b blobs) {
			b.setIndex(b.index(b.desc(indexType, missing, 10, "")))
		}, false, "0000000000"},
	} {
		b := newLayout(t)
		tc.make(b)
		archive := tarDir(t, b.dir)
		for _, ref := range []string{"oci:" + b.dir, "oci-archive:" + archive} {
			t.Run(tc.name+"/"+ref[:strings.IndexByte(ref, ':')], func(t *testing.T) {
				tempDir := t.TempDir()
				img, err := image.Open(context.Background(), ref, image.Options{TempDir: tempDir})
				if err == nil {
					if !tc.opens {
						t.Errorf("opened with no error")
					}
					err = readAll(img.Image)
					img.Close()
					if err == nil {
						t.Fatalf("opened and read with no error")
					}
				} else if !strings.Contains(err.Error(), ref) {
					t.Errorf("error %q does not name the image", err)
				}
				if !strings.Contains(err.Error(), tc.msg) {
					t.Errorf("error %q does not say %q", err, tc.msg)
				}
				emptyDir(t, tempDir)
			})
		}
	}
}

// TestUnknownLayerTypeStillATar: a layer whose media type scangate does
// not know is read for what it is: go-containerregistry sniffs the
// content, so a gzip tar reads as a tar whatever the type says.
func TestUnknownLayerTypeStillATar(t *testing.T) {
	b := newLayout(t)
	layerTar := imagetest.Tar(t, entry("etc/os-release", "ID=debian\n"))
	sum := sha256.Sum256(layerTar)
	b.setIndex(b.index(b.put(manifestType, b.manifest(b.config("sha256:"+hex.EncodeToString(sum[:])), b.put("application/vnd.example.layer.v9+gzip", imagetest.GzipTar(t, layerTar), "")), "")))
	img, err := image.Open(context.Background(), "oci:"+b.dir, image.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if err := readAll(img.Image); err != nil {
		t.Errorf("unknown layer type holding a gzip tar: %v", err)
	}
}

// The child process of TestNestedIndexes opens the layout named by this
// variable and prints the outcome.
const childEnv = "SCANGATE_IMAGE_TEST_CHILD_REF"

// openInChild opens ref in a child process, so that a crash or a hang of
// Open fails the test instead of taking the test binary down with it. It
// returns the child's output and whether it finished in time.
func openInChild(t *testing.T, testName, ref string, timeout time.Duration) (string, bool) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, os.Args[0], "-test.run=^"+testName+"$", "-test.v")
	// Its own TMPDIR: a crash leaves an oci-archive's unpack folder behind.
	cmd.Env = append(os.Environ(), childEnv+"="+ref, "TMPDIR="+t.TempDir())
	out, _ := cmd.CombinedOutput() // a crash shows in the output
	return string(out), ctx.Err() == nil
}

func childOpen() bool {
	ref := os.Getenv(childEnv)
	if ref == "" {
		return false
	}
	// The default 1 GB stack makes a runaway recursion slow to die.
	debug.SetMaxStack(32 << 20)
	_, err := image.Open(context.Background(), ref, image.Options{})
	fmt.Printf("OPEN RESULT: %v\n", err)
	return true
}

// TestNestedIndexes: an index that lists itself, and indexes that list the
// same index many times over many levels, end with an error in bounded
// time.
//
// Found and fixed in 3272f92 (nesting bounded at 4): an index blob listing
// itself (a layout does not check that a blob hashes to its name) recursed
// until "fatal error: stack overflow", a crash no recover catches; an index
// listing one child twice, 40 levels down, was tried 2^40 times.
//
// Was a bug, now fixed: the bound is on depth only, and each index is read again every time
// it is reached, so breadth still multiplies: index.json lists one index
// 100 times, which lists one index 100 times, four levels down to an empty
// index: 100^4 = 10^8 index reads, and Open never returns (a layout of
// four 14 kB blobs, as oci: or oci-archive:). Expected: an error in
// milliseconds; visit each index digest once (a map of digests tried,
// whose failure is remembered), or bound the total number of indexes read.
func TestNestedIndexes(t *testing.T) {
	if childOpen() {
		return
	}
	b := newLayout(t)
	// An index blob naming itself: digest "sha256:aaaa…" is not its hash.
	self := "sha256:" + strings.Repeat("a", 64)
	selfIndex := b.index(b.desc(indexType, self, 100, ""))
	writeFile(t, filepath.Join(b.dir, "blobs", "sha256", strings.Repeat("a", 64)), selfIndex)
	b.setIndex(selfIndex)

	fan := newLayout(t)
	child := fan.index()
	for range 40 {
		d := fan.put(indexType, child, "")
		child = fan.index(d, d)
	}
	fan.setIndex(child)

	// Four levels of 100 entries each naming the same child, down to an
	// empty index: 10^8 ways to look.
	wide := newLayout(t)
	child = wide.index()
	for range 4 {
		d := wide.put(indexType, child, "")
		child = wide.index(slices.Repeat([]string{d}, 100)...)
	}
	wide.setIndex(child)

	for _, tc := range []struct{ name, ref string }{
		{"self", "oci:" + b.dir},
		{"self-archive", "oci-archive:" + tarDir(t, b.dir)},
		{"fan-out", "oci:" + fan.dir},
		{"wide", "oci:" + wide.dir},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			out, finished := openInChild(t, "TestNestedIndexes", tc.ref, 2*time.Second)
			_, result, ok := strings.Cut(out, "OPEN RESULT: ")
			switch {
			case !finished:
				t.Errorf("image.Open(%s) still running after 2s", tc.ref)
			case !ok:
				if i := strings.Index(out, "fatal error"); i >= 0 {
					out, _, _ = strings.Cut(out[i:], "\n")
				}
				t.Errorf("image.Open(%s) crashed:\n%s", tc.ref, out)
			case strings.HasPrefix(result, "<nil>"):
				t.Errorf("image.Open(%s) found an image", tc.ref)
			}
		})
	}
}

// TestDockerArchiveCorrupt: garbage, empty, truncated and inconsistent
// docker save archives fail at Open or when read, naming the archive.
func TestDockerArchiveCorrupt(t *testing.T) {
	img, _ := imagetest.BookwormApp(t)
	dir := t.TempDir()
	good := filepath.Join(dir, "good.tar")
	if err := tarball.WriteToFile(good, name.MustParseReference("app:1").(name.Tag), img); err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(good)
	if err != nil {
		t.Fatal(err)
	}
	two, err := mutate.AppendLayers(img, imagetest.Layer(t, imagetest.Entry{Name: "x", Body: "x"}))
	if err != nil {
		t.Fatal(err)
	}
	twoImages := filepath.Join(dir, "two.tar")
	if err := tarball.MultiRefWriteToFile(twoImages, map[name.Reference]v1.Image{
		name.MustParseReference("app:1"): img, name.MustParseReference("app:2"): two,
	}); err != nil {
		t.Fatal(err)
	}

	cases := map[string][]byte{
		"garbage.tar":       bytes.Repeat([]byte("garbage "), 1000),
		"empty.tar":         {},
		"zeros.tar":         make([]byte, 10240),
		"no-manifest.tar":   imagetest.Tar(t, entry("hello", "world")),
		"empty-manifest":    imagetest.Tar(t, entry("manifest.json", "[]")),
		"manifest-garbage":  imagetest.Tar(t, entry("manifest.json", "{{{")),
		"manifest-missing":  imagetest.Tar(t, entry("manifest.json", `[{"Config":"config.json","RepoTags":["app:1"],"Layers":["layer.tar"]}]`)),
		"manifest-escaping": imagetest.Tar(t, entry("manifest.json", `[{"Config":"../../../../etc/passwd","RepoTags":["app:1"],"Layers":["/etc/passwd"]}]`)),
	}
	for _, cut := range []int{1, 2, 3, 4, 5, 6, 7} {
		cases[fmt.Sprintf("cut-%d-of-8.tar", cut)] = data[:len(data)*cut/8]
	}
	cases["cut-trailer.tar"] = data[:len(data)-1024]

	for file, body := range cases {
		t.Run(file, func(t *testing.T) {
			ref := "docker-archive:" + writeFile(t, filepath.Join(dir, file), body)
			opened, err := image.Open(context.Background(), ref, image.Options{})
			if err == nil {
				err = readAll(opened.Image)
				opened.Close()
				if err == nil {
					if file == "cut-trailer.tar" {
						return // only the end-of-archive blocks are gone: nothing is missing
					}
					t.Fatalf("opened and read with no error")
				}
				return
			}
			if !strings.Contains(err.Error(), ref) {
				t.Errorf("error %q does not name the archive", err)
			}
		})
	}
	t.Run("two-images", func(t *testing.T) {
		ref := "docker-archive:" + twoImages
		_, err := image.Open(context.Background(), ref, image.Options{})
		if err == nil || !strings.Contains(err.Error(), ref) {
			t.Errorf("archive with two images and no tag: err = %v; want an error naming it", err)
		}
	})
	t.Run("folder", func(t *testing.T) {
		ref := "docker-archive:" + dir
		if _, err := image.Open(context.Background(), ref, image.Options{}); err == nil || !strings.Contains(err.Error(), ref) {
			t.Errorf("a folder: err = %v", err)
		}
	})
}

// FuzzUntarOCIArchive opens arbitrary bytes as an oci-archive: no panic,
// an error or an image, and nothing left in TempDir once the image is
// closed.
func FuzzUntarOCIArchive(f *testing.F) {
	// A small real archive, so that mutations explore a real layout.
	small, err := mutate.AppendLayers(empty.Image, imagetest.Layer(f, imagetest.Entry{Name: "etc/os-release", Body: "ID=alpine\n"}))
	if err != nil {
		f.Fatal(err)
	}
	archive, _ := ociArchive(f, small, "1")
	data, err := os.ReadFile(archive)
	if err != nil {
		f.Fatal(err)
	}
	f.Add(data)
	f.Add(imagetest.Tar(f, entry("../x", "x")))
	f.Add(imagetest.Tar(f, imagetest.RawEntry{Header: tar.Header{Name: "index.json", Linkname: "/etc/passwd", Typeflag: tar.TypeSymlink}}))
	f.Add(imagetest.Tar(f, entry("index.json", `{"schemaVersion":2,"manifests":[{"mediaType":"application/vnd.oci.image.index.v1+json","digest":"sha256:aa","size":1}]}`)))
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, data []byte) {
		dir := t.TempDir()
		path := writeFile(t, filepath.Join(dir, "fuzz.tar"), data)
		tempDir := filepath.Join(dir, "tmp")
		if err := os.Mkdir(tempDir, 0o700); err != nil {
			t.Fatal(err)
		}
		img, err := image.Open(context.Background(), "oci-archive:"+path, image.Options{TempDir: tempDir, MaxArchiveBytes: 1 << 20})
		if err == nil {
			_ = readAll(img.Image)
			if err := img.Close(); err != nil {
				t.Errorf("Close: %v", err)
			}
		}
		ents, err := os.ReadDir(tempDir)
		if err != nil {
			t.Fatal(err)
		}
		if len(ents) > 0 {
			t.Errorf("left in TempDir: %s", ents[0].Name())
		}
		ents, err = os.ReadDir(dir)
		if err != nil {
			t.Fatal(err)
		}
		if len(ents) != 2 {
			t.Errorf("%d entries beside the archive, want only it and TempDir", len(ents))
		}
	})
}
