// Package imagetest builds small real container images for tests: layers
// from file lists, and a Debian bookworm image with an npm app on top made
// from the repository's fixtures.
package imagetest

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"github.com/moby/moby/client"

	"github.com/scangate/scangate/internal/image"
)

// T is what the builders need of a test: testing.TB satisfies it, and so
// can a program's own reporter (the demo builds its image with these too).
type T interface {
	Helper()
	Fatal(args ...any)
	Fatalf(format string, args ...any)
	TempDir() string
}

// CleanupT is a T that can clean up after itself, as testing.TB can.
type CleanupT interface {
	T
	Cleanup(func())
}

// DockerLoad loads the archive at path into the real Docker Engine, which
// the test needs (it fails, never skips, without one), and removes ref
// from it when the test ends. It returns the engine's client.
func DockerLoad(t CleanupT, path, ref string) *client.Client {
	t.Helper()
	ctx := context.Background()
	cli, err := client.New(client.FromEnv)
	if err != nil {
		t.Fatalf("docker client: %v", err)
	}
	t.Cleanup(func() { cli.Close() })
	if _, err := cli.Ping(ctx, client.PingOptions{}); err != nil {
		t.Fatalf("this test needs a running Docker Engine (dockerd): %v", err)
	}
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	res, err := cli.ImageLoad(ctx, f, client.ImageLoadWithQuiet(true))
	if err != nil {
		t.Fatalf("docker load: %v", err)
	}
	io.Copy(io.Discard, res)
	res.Close()
	t.Cleanup(func() { cli.ImageRemove(ctx, ref, client.ImageRemoveOptions{Force: true}) })
	return cli
}

// DockerExports counts the engine's exports (docker save) of the image id
// since then, from the engine's own event log.
func DockerExports(t T, cli *client.Client, id string, since time.Time) int {
	t.Helper()
	until := time.Now()
	res := cli.Events(context.Background(), client.EventsListOptions{
		Since:   fmt.Sprintf("%d.%09d", since.Unix(), since.Nanosecond()),
		Until:   fmt.Sprintf("%d.%09d", until.Unix(), until.Nanosecond()),
		Filters: make(client.Filters).Add("type", "image").Add("event", "save"),
	})
	n := 0
	for {
		select {
		case m, ok := <-res.Messages:
			if !ok {
				return n
			}
			if m.Actor.ID == id {
				n++
			}
		case err, ok := <-res.Err:
			if ok && err != nil && !errors.Is(err, io.EOF) {
				t.Fatalf("docker events: %v", err)
			}
			return n
		}
	}
}

// DockerSave loads img into the real Docker Engine and saves it back with
// the engine's own `docker save`, which stores uncompressed layer.tar
// files. It needs dockerd and fails, never skips, without one.
func DockerSave(t CleanupT, img v1.Image, ref string) (path, imageID string) {
	t.Helper()
	ctx := context.Background()
	dir := t.TempDir()
	in := filepath.Join(dir, "in.tar")
	tag, err := name.NewTag(ref)
	if err != nil {
		t.Fatal(err)
	}
	if err := tarball.WriteToFile(in, tag, img); err != nil {
		t.Fatal(err)
	}
	cli := DockerLoad(t, in, ref)
	insp, err := cli.ImageInspect(ctx, ref)
	if err != nil {
		t.Fatal(err)
	}
	rc, err := cli.ImageSave(ctx, []string{ref})
	if err != nil {
		t.Fatalf("docker save: %v", err)
	}
	defer rc.Close()
	path = filepath.Join(dir, "saved.tar")
	out, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.Copy(out, rc); err != nil {
		t.Fatal(err)
	}
	if err := out.Close(); err != nil {
		t.Fatal(err)
	}
	return path, insp.ID
}

// Fixtures is the repository's feed and image fixture folder, found from
// the test's working folder (its package's folder) upwards, so that it is
// the same for internal/x and internal/e2e/x.
var Fixtures = filepath.Join(Root(), "testdata", "vulndata")

// Root is the repository's root: the nearest folder at or above the
// working folder that holds go.mod. A test runs in its package's folder, so
// this is the module scangate's tests are built from.
func Root() string {
	dir, err := os.Getwd()
	if err != nil {
		return "."
	}
	for d := dir; ; {
		if _, err := os.Stat(filepath.Join(d, "go.mod")); err == nil {
			return d
		}
		up := filepath.Dir(d)
		if up == d {
			return dir
		}
		d = up
	}
}

// FakeShell returns fakesh, a static linux/amd64 stand-in for /bin/sh
// (there is no Docker Hub to take a real one from): see its package doc for
// the commands it runs. It is built once per test process, by import path,
// so any package's tests can put it in a base image.
func FakeShell(t T) []byte {
	t.Helper()
	sh, err := fakeShell()
	if err != nil {
		t.Fatal(err)
	}
	return sh
}

var fakeShell = sync.OnceValues(func() ([]byte, error) {
	goCmd, err := exec.LookPath("go")
	if err != nil {
		goCmd = filepath.Join(runtime.GOROOT(), "bin", "go")
	}
	dir, err := os.MkdirTemp("", "scangate-fakesh-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(dir)
	out := filepath.Join(dir, "sh")
	cmd := exec.Command(goCmd, "build", "-o", out, "github.com/scangate/scangate/internal/imagetest/fakesh")
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOOS=linux", "GOARCH=amd64")
	if msg, err := cmd.CombinedOutput(); err != nil {
		return nil, fmt.Errorf("building internal/imagetest/fakesh: %v\n%s", err, msg)
	}
	return os.ReadFile(out)
})

// An Entry is one tar entry of a test layer. A base name starting with
// ".wh." deletes that path from the layers below, as the image spec says.
type Entry struct {
	Name, Body string
	Link       string // a symlink target, when set
	Hardlink   string // a hard link target, when set
	Mode       int64  // file mode; 0644 when zero
}

// Layer makes an uncompressed layer of the entries.
func Layer(t T, entries ...Entry) v1.Layer {
	t.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, e := range entries {
		mode := e.Mode
		if mode == 0 {
			mode = 0o644
		}
		h := &tar.Header{Name: e.Name, Mode: mode, Size: int64(len(e.Body)), Typeflag: tar.TypeReg}
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
func Build(t T, layers ...v1.Layer) v1.Image {
	t.Helper()
	img, err := image.Stack(layers...)
	if err != nil {
		t.Fatal(err)
	}
	return img
}

// BookwormApp is Debian bookworm minbase (its real dpkg status) with an npm
// app on top (lodash 4.17.15, minimist 1.2.0), whose last layer deletes
// minimist with a whiteout. It returns the image and its layers.
func BookwormApp(t T) (v1.Image, []v1.Layer) {
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
func WriteDockerArchive(t T, path, tag string, img v1.Image) string {
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

func read(t T, path string) string {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(data)
}

// A RawEntry is a tar entry written as it is, for layers no well-behaved
// builder makes: names that climb out or are absolute, links anywhere.
// A non-empty Body is written after the header, whatever its type.
type RawEntry struct {
	Header tar.Header
	Body   string
}

// Tar writes the entries as one tar stream. Without Header.Typeflag an
// entry is a regular file; without Header.Mode it gets 0644, and without
// Header.Size a regular file is as long as Body.
func Tar(t T, entries ...RawEntry) []byte {
	t.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, e := range entries {
		h := e.Header
		if h.Typeflag == 0 {
			h.Typeflag = tar.TypeReg
		}
		if h.Mode == 0 {
			h.Mode = 0o644
		}
		if h.Size == 0 && h.Typeflag == tar.TypeReg {
			h.Size = int64(len(e.Body))
		}
		if err := tw.WriteHeader(&h); err != nil {
			t.Fatal(err)
		}
		if e.Body != "" {
			if _, err := io.WriteString(tw, e.Body); err != nil {
				t.Fatal(err)
			}
		}
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// LayerFromBytes makes a layer of data as it is: a tar, the gzip of one,
// or any bytes at all. go-containerregistry treats data starting with the
// gzip magic as compressed and anything else as an uncompressed tar.
func LayerFromBytes(t T, data []byte) v1.Layer {
	t.Helper()
	l, err := tarball.LayerFromOpener(func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(data)), nil })
	if err != nil {
		t.Fatal(err)
	}
	return l
}

// BookwormBase is the bottom layer of BookwormApp alone: Debian bookworm's
// os-release and dpkg status (88 packages).
func BookwormBase(t T) v1.Layer {
	t.Helper()
	_, layers := BookwormApp(t)
	return layers[0]
}

// ReadFixture reads a fixture file under Fixtures.
func ReadFixture(t T, elem ...string) string {
	t.Helper()
	return read(t, filepath.Join(append([]string{Fixtures}, elem...)...))
}

// HostCanaries writes files outside any image that a scanner reading past
// an image's root would pick up: an os-release saying ID=evil, a dpkg
// status and npm package.json files naming evil-host-* packages. It
// returns their folder.
func HostCanaries(t T) string {
	t.Helper()
	host := t.TempDir()
	files := map[string]string{
		"os-release":   "ID=evil\nVERSION_ID=666\nPRETTY_NAME=\"Evil OS\"\n",
		"status":       "Package: evil-host-deb\nStatus: install ok installed\nVersion: 6.6.6\nArchitecture: all\n\n",
		"package.json": `{"name": "evil-host-npm", "version": "6.6.6"}`,
		filepath.Join("node_modules", "evil-host-dir", "package.json"): `{"name": "evil-host-dir", "version": "6.6.6"}`,
	}
	for name, body := range files {
		p := filepath.Join(host, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return host
}

// EscapingLayer tries every way out of the image root towards host (a
// HostCanaries folder): file names with ../ and absolute names, symlinks
// and hard links, relative and absolute, to files and to folders. Written
// files carry the body "escaped". A scanner that stays inside the image
// reads none of host's files and writes nothing anywhere.
func EscapingLayer(t T, host string) v1.Layer {
	t.Helper()
	host = filepath.ToSlash(host)
	climb := strings.Repeat("../", 24) + strings.TrimPrefix(host, "/")
	reg := func(name string) RawEntry { return RawEntry{Header: tar.Header{Name: name}, Body: "escaped"} }
	sym := func(name, target string) RawEntry {
		return RawEntry{Header: tar.Header{Name: name, Linkname: target, Typeflag: tar.TypeSymlink, Mode: 0o777}}
	}
	hard := func(name, target string) RawEntry {
		return RawEntry{Header: tar.Header{Name: name, Linkname: target, Typeflag: tar.TypeLink}}
	}
	return LayerFromBytes(t, Tar(t,
		reg(climb+"/written-relative"),
		reg(host+"/written-absolute"),
		reg("../../../../"+host+"/written-dotdot"),
		reg("/etc/passwd"),
		reg("./../etc/shadow"),
		// The OS: absolute with a climb, and relative climbs.
		sym("etc/os-release", "/../../../"+host+"/os-release"),
		sym("usr/lib/os-release", climb+"/os-release"),
		// Package databases and manifests, where extractors look.
		sym("var/lib/dpkg/status.d/evil-absolute", host+"/status"),
		sym("var/lib/dpkg/status.d/evil-relative", climb+"/status"),
		hard("var/lib/dpkg/status.d/evil-hard", climb+"/status"),
		hard("var/lib/dpkg/status.d/evil-hard-absolute", host+"/status"),
		sym("app/node_modules/evil-absolute/package.json", host+"/package.json"),
		sym("app/node_modules/evil-relative/package.json", climb+"/package.json"),
		hard("app/node_modules/evil-hard/package.json", climb+"/package.json"),
		// Folders: a walk that followed these would reach host's node_modules.
		sym("opt/escape-relative", climb),
		sym("opt/escape-absolute", host),
		sym("opt/escape-root", "/../../../../../"),
	))
}

// GzipTar compresses a tar stream, as registries serve layers.
func GzipTar(t T, data []byte) []byte {
	t.Helper()
	var buf bytes.Buffer
	zw, err := gzip.NewWriterLevel(&buf, gzip.BestCompression)
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

// GzipBomb is a gzip layer of a tar with files of zeros that add up to
// about size bytes (each at most fileSize): a few hundred kilobytes that
// inflate to size.
func GzipBomb(t T, size, fileSize int64) []byte {
	t.Helper()
	var buf bytes.Buffer
	zw, err := gzip.NewWriterLevel(&buf, gzip.BestCompression)
	if err != nil {
		t.Fatal(err)
	}
	tw := tar.NewWriter(zw)
	zeros := make([]byte, 1<<20)
	for i := 0; int64(i)*fileSize < size; i++ {
		n := min(fileSize, size-int64(i)*fileSize)
		if err := tw.WriteHeader(&tar.Header{Name: fmt.Sprintf("bomb/%06d", i), Mode: 0o644, Size: n, Typeflag: tar.TypeReg}); err != nil {
			t.Fatal(err)
		}
		for n > 0 {
			k := min(n, int64(len(zeros)))
			if _, err := tw.Write(zeros[:k]); err != nil {
				t.Fatal(err)
			}
			n -= k
		}
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// ManyFiles is a tar of n empty files.
func ManyFiles(t T, n int) []byte {
	t.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for i := range n {
		if err := tw.WriteHeader(&tar.Header{Name: fmt.Sprintf("many/%07d", i), Mode: 0o644, Typeflag: tar.TypeReg}); err != nil {
			t.Fatal(err)
		}
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// SparseBomb is a tar of n sparse files (PAX format 1.0, as GNU tar
// writes them) of realSize bytes each, of which one byte is stored: about
// 2.5 kB of tar per file, whatever realSize. archive/tar cannot write
// sparse files, so the blocks are made here by hand.
func SparseBomb(t T, n int, realSize int64) []byte {
	t.Helper()
	var out []byte
	for i := range n {
		name := fmt.Sprintf("sparse/%06d", i)
		var pax string
		for _, kv := range [][2]string{{"GNU.sparse.major", "1"}, {"GNU.sparse.minor", "0"}, {"GNU.sparse.name", name}, {"GNU.sparse.realsize", fmt.Sprint(realSize)}} {
			pax += paxRecord(kv[0], kv[1])
		}
		// The sparse map (one data block: the last byte), then the data.
		body := append(padBlock([]byte(fmt.Sprintf("1\n%d\n1\n", realSize-1))), 'x')
		out = append(out, rawHeader(t, "PaxHeaders/"+name, 'x', int64(len(pax)))...)
		out = append(out, padBlock([]byte(pax))...)
		out = append(out, rawHeader(t, fmt.Sprintf("GNUSparseFile.0/%06d", i), tar.TypeReg, int64(len(body)))...)
		out = append(out, padBlock(body)...)
	}
	return append(out, make([]byte, 1024)...)
}

// rawHeader is a USTAR header block.
func rawHeader(t T, name string, typ byte, size int64) []byte {
	t.Helper()
	if len(name) > 100 {
		t.Fatalf("tar name %q: longer than 100 bytes", name)
	}
	b := make([]byte, 512)
	copy(b[0:100], name)
	copy(b[100:108], "0000644\x00")
	copy(b[108:116], "0000000\x00")
	copy(b[116:124], "0000000\x00")
	copy(b[124:136], fmt.Sprintf("%011o\x00", size))
	copy(b[136:148], "00000000000\x00")
	b[156] = typ
	copy(b[257:265], "ustar\x0000")
	copy(b[148:156], "        ")
	sum := 0
	for _, c := range b {
		sum += int(c)
	}
	copy(b[148:156], fmt.Sprintf("%06o\x00 ", sum))
	return b
}

func padBlock(b []byte) []byte {
	if r := len(b) % 512; r != 0 {
		b = append(b, make([]byte, 512-r)...)
	}
	return b
}

// paxRecord is one "LEN KEY=VALUE\n" record, LEN counting itself.
func paxRecord(k, v string) string {
	n := len(k) + len(v) + 3
	for {
		s := fmt.Sprintf("%d %s=%s\n", n, k, v)
		if len(s) == n {
			return s
		}
		n = len(s)
	}
}
