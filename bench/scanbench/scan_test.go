package scanbench

import (
	"bytes"
	"compress/gzip"
	"context"
	"io"
	"os"
	"path/filepath"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	kgzip "github.com/klauspost/compress/gzip"

	"github.com/scangate/scangate/internal/cli"
	"github.com/scangate/scangate/internal/image"
	"github.com/scangate/scangate/internal/layercache"
	"github.com/scangate/scangate/internal/scan"
)

// cacheDir is where bench/inputs.sh leaves the images.
func cacheDir() string {
	if d := os.Getenv("SCANGATE_BENCH_CACHE"); d != "" {
		return d
	}
	home, _ := os.UserHomeDir()
	return filepath.Join(home, ".cache", "scangate-bench")
}

// input returns the path of a bench image, failing without it.
func input(b *testing.B, name string) string {
	b.Helper()
	p := filepath.Join(cacheDir(), name)
	if _, err := os.Stat(p); err != nil {
		b.Fatalf("%s is missing: run bench/inputs.sh first (it needs root, debootstrap and dockerd): %v", p, err)
	}
	return p
}

// refs are the images of the speed table: `docker save` archives of one
// and of several layers, and the one-layer image as a gzip OCI layout.
var refs = []struct{ name, ref string }{
	{"docker-save-big", "docker-archive:big.tar"},
	{"oci-gzip-big", "oci:big.oci"},
	{"docker-save-multi", "docker-archive:multi.tar"},
	{"docker-save-small", "docker-archive:small.tar"},
}

func ref(b *testing.B, r string) string {
	for _, t := range image.Transports {
		if len(r) > len(t) && r[:len(t)] == t {
			return t + input(b, r[len(t):])
		}
	}
	b.Fatalf("bad ref %s", r)
	return ""
}

// BenchmarkOpen is opening an image: for a docker save archive, indexing
// it and reading its config (go-containerregistry's tarball compressed
// every uncompressed layer here to name it).
func BenchmarkOpen(b *testing.B) {
	for _, r := range refs {
		b.Run(r.name, func(b *testing.B) {
			ref := ref(b, r.ref)
			for b.Loop() {
				img, err := image.Open(context.Background(), ref, image.Options{})
				if err != nil {
					b.Fatal(err)
				}
				img.Close()
			}
		})
	}
}

// BenchmarkCatalog is opening and cataloging an image, no cache.
func BenchmarkCatalog(b *testing.B) {
	for _, r := range refs {
		b.Run(r.name, func(b *testing.B) {
			ref := ref(b, r.ref)
			for b.Loop() {
				img, err := image.Open(context.Background(), ref, image.Options{})
				if err != nil {
					b.Fatal(err)
				}
				if _, err := scan.Catalog(context.Background(), img.Image, scan.ImageInfo{Ref: ref}, scan.DefaultLimits); err != nil {
					b.Fatal(err)
				}
				img.Close()
			}
		})
	}
}

// dataDir makes a data folder with the bundled feeds imported, as the
// demo does.
func dataDir(b *testing.B) string {
	b.Helper()
	dir := b.TempDir()
	feeds := filepath.Join("..", "..", "testdata", "vulndata")
	args := []string{"--data-dir", dir, "db", "import"}
	for _, f := range []string{"go-vulndb.zip", "pypa-advisory-database.zip", "debian", "alpine", "ghsa", "nvd"} {
		args = append(args, filepath.Join(feeds, f))
	}
	var out bytes.Buffer
	if code := cli.Main(context.Background(), args, &out, &out); code != 0 {
		b.Fatalf("db import: exit %d\n%s", code, out.String())
	}
	return dir
}

func scanOnce(b *testing.B, dir string, args ...string) {
	b.Helper()
	var stderr bytes.Buffer
	args = append([]string{"--data-dir", dir, "--format", "json", "scan"}, args...)
	if code := cli.Main(context.Background(), args, io.Discard, &stderr); code != 0 {
		b.Fatalf("scan: exit %d: %s", code, stderr.String())
	}
}

// BenchmarkScan is `scangate scan --format json IMAGE` in process, without
// the layer cache: open, catalog, match against the bundled database,
// the JSON report and the stored inventory (the binary adds its start,
// about 15 ms, which bench/speed.sh's figures include).
func BenchmarkScan(b *testing.B) {
	dir := dataDir(b)
	for _, r := range refs {
		b.Run(r.name, func(b *testing.B) {
			ref := ref(b, r.ref)
			for b.Loop() {
				scanOnce(b, dir, "--layer-cache-bytes", "0", ref)
			}
		})
	}
}

// BenchmarkScanRebuilt is the whole scan of rebuilt.tar, multi.tar with
// one more layer (lodash upgraded, minimist deleted), after multi.tar was
// scanned: its records of the new layers are removed before each run, so
// each run reads the new layers and takes the rest from the cache.
func BenchmarkScanRebuilt(b *testing.B) {
	dir := dataDir(b)
	scanOnce(b, dir, "docker-archive:"+input(b, "multi.tar"))
	records := func() map[string]bool {
		ms, err := filepath.Glob(filepath.Join(dir, layercache.Dir, "*.rec"))
		if err != nil {
			b.Fatal(err)
		}
		out := map[string]bool{}
		for _, m := range ms {
			out[m] = true
		}
		return out
	}
	base := records()
	rebuilt := "docker-archive:" + input(b, "rebuilt.tar")
	for b.Loop() {
		b.StopTimer()
		for r := range records() {
			if !base[r] {
				os.Remove(r)
			}
		}
		b.StartTimer()
		scanOnce(b, dir, rebuilt)
	}
	if n := len(records()) - len(base); n < 1 {
		b.Fatalf("the rebuilt image added %d records; want its new layers", n)
	}
}

// BenchmarkScanDockerAgain is the whole scan of docker:scangate-bench/big:1
// (bench/inputs.sh loads it into the engine) after a first scan filled
// the layer cache: the engine is asked for the image's ID, and the image
// is not exported, as its config, manifest and layers are in the cache.
func BenchmarkScanDockerAgain(b *testing.B) {
	input(b, "big.tar")
	dir := dataDir(b)
	const ref = "docker:scangate-bench/big:1"
	scanOnce(b, dir, ref)
	for b.Loop() {
		scanOnce(b, dir, ref)
	}
}

// gzipLayer is the bench image's layer as a gzip blob of the OCI layout.
func gzipLayer(b *testing.B) []byte {
	b.Helper()
	img, err := image.Open(context.Background(), "oci:"+input(b, "big.oci"), image.Options{})
	if err != nil {
		b.Fatal(err)
	}
	defer img.Close()
	ls, err := img.Layers()
	if err != nil {
		b.Fatal(err)
	}
	var biggest v1.Layer
	var size int64
	for _, l := range ls {
		if n, _ := l.Size(); n > size {
			biggest, size = l, n
		}
	}
	rc, err := biggest.Compressed()
	if err != nil {
		b.Fatal(err)
	}
	defer rc.Close()
	data, err := io.ReadAll(rc)
	if err != nil {
		b.Fatal(err)
	}
	return data
}

// BenchmarkInflate inflates the one-layer image's gzip layer with each
// inflater: the Go standard library's, klauspost's (the CGO_ENABLED=0
// build's), and the scanner's own (ISA-L with -tags isal).
func BenchmarkInflate(b *testing.B) {
	data := gzipLayer(b)
	inflaters := map[string]func(io.Reader) (io.ReadCloser, error){
		"compress-gzip":  func(r io.Reader) (io.ReadCloser, error) { return gzip.NewReader(r) },
		"klauspost-gzip": func(r io.Reader) (io.ReadCloser, error) { return kgzip.NewReader(r) },
		"scangate":       scan.NewGzipReader,
	}
	for _, name := range []string{"compress-gzip", "klauspost-gzip", "scangate"} {
		b.Run(name, func(b *testing.B) {
			b.SetBytes(int64(len(data)))
			for b.Loop() {
				zr, err := inflaters[name](bytes.NewReader(data))
				if err != nil {
					b.Fatal(err)
				}
				n, err := io.Copy(io.Discard, zr)
				if err != nil {
					b.Fatal(err)
				}
				zr.Close()
				b.ReportMetric(float64(n)/1e6, "MB-inflated/op")
			}
		})
	}
}
