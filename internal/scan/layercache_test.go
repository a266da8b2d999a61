package scan_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync/atomic"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/scangate/scangate/internal/image"
	"github.com/scangate/scangate/internal/imagetest"
	"github.com/scangate/scangate/internal/layercache"
	"github.com/scangate/scangate/internal/scan"
)

// catalogCounting catalogs img with cache (nil: none), and says how many
// layer bytes were read to do it.
func catalogCounting(t *testing.T, img v1.Image, cache *layercache.Cache, limits scan.Limits) (*scan.Report, int64, error) {
	t.Helper()
	var read atomic.Int64
	counted := image.WithProgress(img, func(n int64) { read.Add(n) })
	r, err := scan.CatalogWithCache(context.Background(), counted, scan.ImageInfo{Ref: "cache-test"}, limits, cache)
	return r, read.Load(), err
}

func uncompressedSize(t *testing.T, l v1.Layer) int64 {
	t.Helper()
	rc, err := l.Uncompressed()
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	var n int64
	buf := make([]byte, 32<<10)
	for {
		k, err := rc.Read(buf)
		n += int64(k)
		if err != nil {
			return n
		}
	}
}

func packagesJSON(t *testing.T, r *scan.Report) string {
	t.Helper()
	data, err := json.MarshalIndent(r.Packages, "", " ")
	if err != nil {
		t.Fatal(err)
	}
	return string(data)
}

func find(r *scan.Report, name string) []scan.Package {
	var out []scan.Package
	for _, p := range r.Packages {
		if p.Name == name {
			out = append(out, p)
		}
	}
	return out
}

// TestLayerCacheRebuiltImage: a pipeline rebuilds an image with one new
// small layer on the same base. The second scan reads only that layer,
// and its report is the one a scan without a cache makes: a package the
// new layer deletes (a whiteout) is gone, one it upgrades shows the new
// version only, each attributed to the layer that brought it.
func TestLayerCacheRebuiltImage(t *testing.T) {
	cache, err := layercache.Open(filepath.Join(t.TempDir(), "layercache"), 0)
	if err != nil {
		t.Fatal(err)
	}
	_, layers := imagetest.BookwormApp(t)
	first := imagetest.Build(t, layers[:2]...) // Debian + lodash 4.17.15 + minimist 1.2.0
	r1, read1, err := catalogCounting(t, first, cache, scan.DefaultLimits)
	if err != nil {
		t.Fatal(err)
	}
	if got := find(r1, "minimist"); len(got) != 1 {
		t.Fatalf("first image: minimist %v; want one", got)
	}
	if want := uncompressedSize(t, layers[0]) + uncompressedSize(t, layers[1]); read1 != want {
		t.Errorf("first scan read %d layer bytes; want all %d", read1, want)
	}

	update := imagetest.Layer(t,
		imagetest.Entry{Name: "app/node_modules/lodash/package.json", Body: `{"name": "lodash", "version": "4.17.21"}`},
		imagetest.Entry{Name: "app/node_modules/.wh.minimist"},
	)
	rebuilt := imagetest.Build(t, layers[0], layers[1], update)
	r2, read2, err := catalogCounting(t, rebuilt, cache, scan.DefaultLimits)
	if err != nil {
		t.Fatal(err)
	}
	if want := uncompressedSize(t, update); read2 != want {
		t.Errorf("rebuilt image: read %d layer bytes; want only the new layer's %d", read2, want)
	}
	uncached, _, err := catalogCounting(t, rebuilt, nil, scan.DefaultLimits)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := packagesJSON(t, r2), packagesJSON(t, uncached); got != want {
		t.Errorf("cached scan's packages differ from an uncached scan's:\n%s\nwant\n%s", got, want)
	}
	if got := find(r2, "minimist"); len(got) != 0 {
		t.Errorf("minimist, deleted by the new layer, is still listed: %v", got)
	}
	lodash := find(r2, "lodash")
	newLayer, _ := update.DiffID()
	if len(lodash) != 1 || lodash[0].Version != "4.17.21" || lodash[0].Layer != newLayer.String() {
		t.Errorf("lodash: %+v; want only 4.17.21, from the new layer %s", lodash, newLayer)
	}
	base, _ := layers[0].DiffID()
	for _, p := range r2.Packages {
		if p.Type == "deb" && p.Layer != base.String() {
			t.Errorf("%s %s attributed to %s; want the base layer", p.Name, p.Version, p.Layer)
		}
	}
	if n := len(find(r2, "zlib1g")); n != 1 {
		t.Errorf("zlib1g listed %d times; want 1", n)
	}
	if r2.Cataloger == nil || r2.Cataloger.Extractors["os/dpkg"] != 0 || r2.Cataloger.Scalibr == "" {
		t.Errorf("report's cataloger %+v; want osv-scalibr's version and os/dpkg's", r2.Cataloger)
	}
}

// TestLayerCacheDamagedRecord: a record that does not read back whole (a
// flipped byte, a cut file) is a miss: the layer is read again and the
// report is unchanged.
func TestLayerCacheDamagedRecord(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "layercache")
	cache, err := layercache.Open(dir, 0)
	if err != nil {
		t.Fatal(err)
	}
	img, layers := imagetest.BookwormApp(t)
	want, _, err := catalogCounting(t, img, cache, scan.DefaultLimits)
	if err != nil {
		t.Fatal(err)
	}
	recs, err := filepath.Glob(filepath.Join(dir, "*.rec"))
	if err != nil || len(recs) != len(layers) {
		t.Fatalf("%d records (%v); want one per layer, %d", len(recs), err, len(layers))
	}
	for i, rec := range recs {
		data, err := os.ReadFile(rec)
		if err != nil {
			t.Fatal(err)
		}
		if i%2 == 0 {
			data[len(data)/2] ^= 0x40
		} else {
			data = data[:len(data)-3]
		}
		if err := os.WriteFile(rec, data, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	got, read, err := catalogCounting(t, img, cache, scan.DefaultLimits)
	if err != nil {
		t.Fatal(err)
	}
	var all int64
	for _, l := range layers {
		all += uncompressedSize(t, l)
	}
	if read != all {
		t.Errorf("read %d layer bytes with damaged records; want every layer again, %d", read, all)
	}
	if packagesJSON(t, got) != packagesJSON(t, want) {
		t.Errorf("packages differ after damaged records")
	}
}

// TestLayerCacheLimits: a layer taken from the cache counts against the
// scan's limits as it would if it were read.
func TestLayerCacheLimits(t *testing.T) {
	cache, err := layercache.Open(filepath.Join(t.TempDir(), "layercache"), 0)
	if err != nil {
		t.Fatal(err)
	}
	img, _ := imagetest.BookwormApp(t)
	if _, _, err := catalogCounting(t, img, cache, scan.DefaultLimits); err != nil {
		t.Fatal(err)
	}
	for name, lim := range map[string]scan.Limits{
		"image files": {MaxImageFiles: 3},
		"layer bytes": {MaxLayerBytes: 1000},
		"file bytes":  {MaxFileBytes: 1000},
	} {
		t.Run(name, func(t *testing.T) {
			_, read, err := catalogCounting(t, img, cache, lim)
			if !errors.Is(err, scan.ErrLimit) {
				t.Errorf("err = %v; want ErrLimit", err)
			}
			if read != 0 {
				t.Errorf("read %d layer bytes; the cache holds every layer", read)
			}
		})
	}
}

// goBinary builds a real Go binary (standard library only: no network)
// in dir, and returns its bytes.
func goBinary(t testing.TB, dir string) string {
	t.Helper()
	src := "package main\n\nimport \"fmt\"\n\nfunc main() { fmt.Println(\"hello\") }\n"
	if err := os.WriteFile(filepath.Join(dir, "main.go"), []byte(src), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "go.mod"), []byte("module example.com/hello\n\ngo 1.22\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("go", "build", "-trimpath", "-ldflags=-s -w", "-o", "hello", ".")
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "GOTOOLCHAIN=local", "GOPROXY=off", "GOFLAGS=-mod=mod", "CGO_ENABLED=0")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	data, err := os.ReadFile(filepath.Join(dir, "hello"))
	if err != nil {
		t.Fatal(err)
	}
	return string(data)
}

// cBinary is a real executable that is not a Go or Rust one: this
// machine's true(1).
func cBinary(t testing.TB) string {
	t.Helper()
	data, err := os.ReadFile("/usr/bin/true")
	if err != nil {
		t.Fatalf("a C executable to put in images: %v", err)
	}
	return string(data)
}

// TestLayerCacheExecutables: the Go-binary and Rust extractors read every
// executable, and find nothing in most (a distribution's C programs). A
// layer's record keeps that they found nothing instead of the bytes, and
// a rebuilt image's scan answers them from it, without reading the base
// layer, and lists exactly what a scan without the cache lists: an
// executable the new layer replaces with a Go binary is that Go binary,
// attributed to the new layer; one it deletes is gone.
func TestLayerCacheExecutables(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "layercache")
	cache, err := layercache.Open(dir, 0)
	if err != nil {
		t.Fatal(err)
	}
	goBin, cBin := goBinary(t, t.TempDir()), cBinary(t)
	base := imagetest.Layer(t,
		imagetest.Entry{Name: "etc/os-release", Body: "ID=debian\nVERSION_ID=12\n"},
		imagetest.Entry{Name: "usr/bin/true", Body: cBin, Mode: 0o755},
		imagetest.Entry{Name: "usr/bin/tool", Body: cBin + "x", Mode: 0o755},
		imagetest.Entry{Name: "usr/bin/gone", Body: cBin + "y", Mode: 0o755},
		imagetest.Entry{Name: "usr/local/bin/hello", Body: goBin, Mode: 0o755},
	)
	app := imagetest.Layer(t, imagetest.Entry{Name: "app/node_modules/lodash/package.json", Body: `{"name": "lodash", "version": "4.17.15"}`})
	first := imagetest.Build(t, base, app)
	r1, _, err := catalogCounting(t, first, cache, scan.DefaultLimits)
	if err != nil {
		t.Fatal(err)
	}
	if got := find(r1, "stdlib"); len(got) != 1 || got[0].Path != "/usr/local/bin/hello" {
		t.Fatalf("first image: stdlib %+v; want the Go binary's", got)
	}
	u, err := cache.Usage()
	if err != nil {
		t.Fatal(err)
	}
	// The Go binary's bytes are kept (the extractor found packages in
	// it); the three C executables' are not.
	if min, max := int64(len(goBin)), int64(len(goBin)+len(cBin)); u.Bytes < min || u.Bytes >= max {
		t.Errorf("the cache holds %d bytes; want the Go binary's %d and less than one C executable more", u.Bytes, min)
	}

	update := imagetest.Layer(t,
		imagetest.Entry{Name: "usr/bin/tool", Body: goBin, Mode: 0o755},
		imagetest.Entry{Name: "usr/bin/.wh.gone"},
		imagetest.Entry{Name: "usr/bin/new", Body: cBin + "z", Mode: 0o755},
	)
	rebuilt := imagetest.Build(t, base, app, update)
	got, read, err := catalogCounting(t, rebuilt, cache, scan.DefaultLimits)
	if err != nil {
		t.Fatal(err)
	}
	if want := uncompressedSize(t, update); read != want {
		t.Errorf("rebuilt image: read %d layer bytes; want only the new layer's %d", read, want)
	}
	want, _, err := catalogCounting(t, rebuilt, nil, scan.DefaultLimits)
	if err != nil {
		t.Fatal(err)
	}
	if g, w := packagesJSON(t, got), packagesJSON(t, want); g != w {
		t.Errorf("with the cache:\n%s\nwithout:\n%s", g, w)
	}
	newLayer, _ := update.DiffID()
	var tool []scan.Package
	for _, p := range find(got, "stdlib") {
		if p.Path == "/usr/bin/tool" {
			tool = append(tool, p)
		}
	}
	if len(tool) != 1 || tool[0].Layer != newLayer.String() {
		t.Errorf("/usr/bin/tool's stdlib %+v; want one, from the new layer %s", tool, newLayer)
	}
}

// FuzzLayerCacheExact builds two images from the fuzzer's bytes that share
// their lower layers, from a vocabulary of what makes scans go wrong:
// package files rewritten in upper layers, whiteouts of files and
// folders, opaque folders, links to package files and folders, folders
// replaced by files. The second image scanned with the cache the first
// filled must list exactly what it lists scanned without a cache.
func FuzzLayerCacheExact(f *testing.F) {
	status := func(pkgs ...string) string {
		var b strings.Builder
		for _, p := range pkgs {
			name, version, _ := strings.Cut(p, "=")
			fmt.Fprintf(&b, "Package: %s\nStatus: install ok installed\nVersion: %s\nArchitecture: amd64\n\n", name, version)
		}
		return b.String()
	}
	pkgJSON := func(name, version string) string { return fmt.Sprintf(`{"name": %q, "version": %q}`, name, version) }
	vocab := []imagetest.Entry{
		{Name: "etc/os-release", Body: "ID=debian\nVERSION_ID=12\n"},
		{Name: "var/lib/dpkg/status", Body: status("zlib1g=1:1.2.13.dfsg-1", "libc6=2.36-9")},
		{Name: "var/lib/dpkg/status", Body: status("zlib1g=1:1.2.13.dfsg-1")},
		{Name: "var/lib/dpkg/status", Body: status("zlib1g=1:1.3.dfsg-3", "libc6=2.36-9", "bash=5.2-2")},
		{Name: "app/node_modules/lodash/package.json", Body: pkgJSON("lodash", "4.17.15")},
		{Name: "app/node_modules/lodash/package.json", Body: pkgJSON("lodash", "4.17.21")},
		{Name: "app/node_modules/minimist/package.json", Body: pkgJSON("minimist", "1.2.0")},
		{Name: "app/node_modules/.wh.minimist"},
		{Name: "app/node_modules/.wh..wh..opq"},
		{Name: "app/.wh.node_modules"},
		{Name: "app/node_modules", Body: "a file where a folder was"},
		{Name: "srv/node_modules/qs/package.json", Link: "/app/node_modules/lodash/package.json"},
		{Name: "app", Link: "srv"},
		{Name: "srv/node_modules/ws/package.json", Body: pkgJSON("ws", "7.4.5")},
		{Name: "usr/lib/python3/dist-packages/requests-2.25.0.dist-info/METADATA", Body: "Metadata-Version: 2.1\nName: requests\nVersion: 2.25.0\n"},
		{Name: "usr/lib/python3/dist-packages/.wh.requests-2.25.0.dist-info"},
	}
	// Executables, which a record keeps as "nothing found" rather than
	// their bytes when only the Go and Rust extractors read them: a C
	// program, a Go binary over it, its deletion, links that make other
	// extractors read it (bytes needed after all) and a folder link that
	// moves it.
	goBin, cBin := goBinary(f, f.TempDir()), cBinary(f)
	vocab = append(vocab,
		imagetest.Entry{Name: "usr/bin/tool", Body: cBin, Mode: 0o755},                                      // 16
		imagetest.Entry{Name: "usr/bin/tool", Body: goBin, Mode: 0o755},                                     // 17
		imagetest.Entry{Name: "usr/bin/.wh.tool"},                                                           // 18
		imagetest.Entry{Name: "usr/local/bin/tool", Link: "/usr/bin/tool"},                                  // 19
		imagetest.Entry{Name: "app/node_modules/tool/package.json", Link: "/usr/bin/tool"},                  // 20
		imagetest.Entry{Name: "usr/bin", Link: "/opt/bin"},                                                  // 21
		imagetest.Entry{Name: "opt/bin/tool", Body: cBin + "x", Mode: 0o755},                                // 22
		imagetest.Entry{Name: "usr/bin/other", Body: cBin + "y", Mode: 0o755},                               // 23
		imagetest.Entry{Name: "usr/lib/python3/dist-packages/x.dist-info/METADATA", Link: "/usr/bin/other"}, // 24
	)
	f.Add([]byte{16, 23, 0xff, 17, 0xfe, 18})
	f.Add([]byte{16, 23, 0xff, 0xfe, 20, 24})
	f.Add([]byte{16, 0xff, 1, 0xfe, 17, 19})
	f.Add([]byte{22, 0xff, 21, 0xfe, 16})
	f.Add([]byte{0, 1, 4, 6, 0xff, 5, 7, 0xfe, 2, 8})
	f.Add([]byte{0, 2, 4, 0xff, 12, 13, 0xfe, 9, 11})
	f.Add([]byte{0, 1, 14, 0xff, 6, 10, 0xfe, 15, 3})
	f.Add([]byte{1, 0xff, 4, 6, 0xff, 0xfe, 8, 0xff, 7})
	f.Fuzz(func(t *testing.T, data []byte) {
		if len(data) > 64 {
			return
		}
		// 0xff ends a shared layer, 0xfe starts the images' own tops:
		// first gets the layers before the next 0xff, second the rest.
		var shared, firstTop, secondTop [][]imagetest.Entry
		cur := &shared
		layer := []imagetest.Entry{}
		flush := func() {
			if len(layer) > 0 {
				*cur = append(*cur, layer)
			}
			layer = []imagetest.Entry{}
		}
		for _, b := range data {
			switch {
			case b == 0xff:
				flush()
			case b == 0xfe:
				flush()
				if cur == &shared {
					cur = &firstTop
				} else {
					cur = &secondTop
				}
			default:
				e := vocab[int(b)%len(vocab)]
				if !slices.ContainsFunc(layer, func(o imagetest.Entry) bool { return o.Name == e.Name }) {
					layer = append(layer, e)
				}
			}
		}
		flush()
		toLayers := func(lists [][]imagetest.Entry) []v1.Layer {
			var out []v1.Layer
			for _, es := range lists {
				out = append(out, imagetest.Layer(t, es...))
			}
			return out
		}
		base := toLayers(shared)
		first := imagetest.Build(t, append(slices.Clone(base), toLayers(firstTop)...)...)
		second := imagetest.Build(t, append(slices.Clone(base), toLayers(secondTop)...)...)
		cache, err := layercache.Open(filepath.Join(t.TempDir(), "layercache"), 0)
		if err != nil {
			t.Fatal(err)
		}
		if _, _, err := catalogCounting(t, first, cache, scan.DefaultLimits); err != nil {
			return // an image the scanner refuses is refused with or without a cache
		}
		want, _, wantErr := catalogCounting(t, second, nil, scan.DefaultLimits)
		got, _, err := catalogCounting(t, second, cache, scan.DefaultLimits)
		if (err == nil) != (wantErr == nil) {
			t.Fatalf("with the cache: err %v; without: %v", err, wantErr)
		}
		if err != nil {
			return
		}
		if g, w := packagesJSON(t, got), packagesJSON(t, want); g != w {
			t.Errorf("with the cache:\n%s\nwithout:\n%s", g, w)
		}
	})
}
