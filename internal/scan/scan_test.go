package scan_test

import (
	"bytes"
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"

	"github.com/scangate/scangate/internal/storetest"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/tarball"

	"github.com/scangate/scangate/internal/image"
	"github.com/scangate/scangate/internal/imagetest"
	"github.com/scangate/scangate/internal/scan"
	"github.com/scangate/scangate/internal/vulndb"
	"github.com/scangate/scangate/internal/vulndbtest"
)

var fixtures = imagetest.Fixtures

func TestMain(m *testing.M) { vulndbtest.Main(m) }

// fixtureDB is every fixture feed imported into a real SQLite file.
func fixtureDB(t testing.TB) *vulndb.DB { return vulndbtest.DB(t) }

func diffID(t testing.TB, l v1.Layer) string {
	d, err := l.DiffID()
	if err != nil {
		t.Fatal(err)
	}
	return d.String()
}

func scanRef(t *testing.T, ref string) *scan.Report {
	t.Helper()
	ctx := context.Background()
	img, err := image.Open(ctx, ref, image.Options{TempDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	defer img.Close()
	r, err := scan.Catalog(ctx, img.Image, scan.ImageInfo{Ref: ref, Digest: img.Digest, Tags: img.Tags}, scan.DefaultLimits)
	if err != nil {
		t.Fatal(err)
	}
	if err := scan.Match(ctx, r, fixtureDB(t), scan.OrderNVD); err != nil {
		t.Fatal(err)
	}
	return r
}

func TestScanDockerArchiveAndOCILayout(t *testing.T) {
	img, layers := imagetest.BookwormApp(t)
	dir := t.TempDir()
	archive := filepath.Join(dir, "app.tar")
	tag, _ := name.NewTag("127.0.0.1:5000/app:1")
	if err := tarball.WriteToFile(archive, tag, img); err != nil {
		t.Fatal(err)
	}
	lp, err := layout.Write(filepath.Join(dir, "oci"), empty.Index)
	if err != nil {
		t.Fatal(err)
	}
	if err := lp.AppendImage(img, layout.WithAnnotations(map[string]string{"org.opencontainers.image.ref.name": "1"})); err != nil {
		t.Fatal(err)
	}
	for _, ref := range []string{"docker-archive:" + archive, "oci:" + filepath.Join(dir, "oci") + ":1"} {
		t.Run(ref[:3], func(t *testing.T) {
			r := scanRef(t, ref)
			checkBookwormApp(t, r, layers)
		})
	}
}

func checkBookwormApp(t *testing.T, r *scan.Report, layers []v1.Layer) {
	t.Helper()
	if r.OS == nil || r.OS.Ecosystem != "Debian:12" {
		t.Fatalf("OS = %+v, want Debian 12", r.OS)
	}
	if len(r.Image.Layers) != 3 || r.Image.Layers[0] != diffID(t, layers[0]) {
		t.Errorf("layers %v", r.Image.Layers)
	}
	byName := map[string]scan.Package{}
	debs := 0
	for _, p := range r.Packages {
		byName[p.Name] = p
		if p.Type == "deb" {
			debs++
		}
	}
	if debs != 88 {
		t.Errorf("%d deb packages, want the 88 of bookworm minbase", debs)
	}
	z := byName["zlib1g"]
	if z.SourceName != "zlib" || z.SourceVersion != "1:1.2.13.dfsg-1" || z.Ecosystem != "Debian:12" || z.Layer != diffID(t, layers[0]) {
		t.Errorf("zlib1g = %+v", z)
	}
	if l, ok := byName["lodash"]; !ok || l.Version != "4.17.15" || l.Layer != diffID(t, layers[1]) || l.Ecosystem != "npm" {
		t.Errorf("lodash = %+v (found %v)", l, ok)
	}
	if _, ok := byName["minimist"]; ok {
		t.Error("minimist was deleted by a whiteout in the last layer but is reported")
	}

	var zlib *scan.Finding
	ids := map[string]bool{}
	for i, f := range r.Findings {
		ids[f.ID] = true
		if f.ID == "CVE-2023-45853" && r.Packages[f.Package].Name == "zlib1g" {
			zlib = &r.Findings[i]
		}
	}
	if zlib == nil {
		t.Fatal("no CVE-2023-45853 finding for zlib1g")
	}
	if zlib.Severity != vulndb.Critical || zlib.SeveritySource != "nvd@nist.gov" || zlib.Score != 9.8 || zlib.Status != vulndb.StatusUnfixed {
		t.Errorf("zlib finding = %+v; want CRITICAL 9.8 from NVD, unfixed", zlib)
	}
	for _, id := range []string{"GHSA-35jh-r3h4-6jhm", "GHSA-p6mc-m468-83gw", "CVE-2011-3374"} {
		if !ids[id] {
			t.Errorf("no finding %s", id)
		}
	}
	for _, id := range []string{"GHSA-vh95-rmgr-6w4m", "GHSA-xvch-5gv4-984h"} {
		if ids[id] {
			t.Errorf("finding %s for minimist, which a whiteout deleted", id)
		}
	}
	// Every finding is counted once by its severity.
	total := r.Summary.Critical + r.Summary.High + r.Summary.Medium + r.Summary.Low + r.Summary.Unknown
	if total != len(r.Findings) || r.Summary.Total != total || r.Summary.Critical < 2 {
		t.Errorf("summary %+v for %d findings", r.Summary, len(r.Findings))
	}
}

func TestScanLimits(t *testing.T) {
	img, _ := imagetest.BookwormApp(t)
	archive := filepath.Join(t.TempDir(), "app.tar")
	if err := tarball.WriteToFile(archive, name.MustParseReference("app:1").(name.Tag), img); err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	for _, lim := range []scan.Limits{
		{MaxFileBytes: 1 << 20, MaxLayerFiles: 1},
		{MaxFileBytes: 1 << 20, MaxImageFiles: 3},
		{MaxFileBytes: 1 << 20, MaxLayerBytes: 1000},
		{MaxFileBytes: 1 << 20, MaxImageBytes: 10000},
	} {
		opened, err := image.Open(ctx, "docker-archive:"+archive, image.Options{})
		if err != nil {
			t.Fatal(err)
		}
		_, err = scan.Catalog(ctx, opened.Image, scan.ImageInfo{Ref: archive}, lim)
		if !errors.Is(err, scan.ErrScan) || !errors.Is(err, scan.ErrLimit) && !bytes.Contains([]byte(err.Error()), []byte("over the scan limit")) {
			t.Errorf("limits %+v: err = %v; want a scan error over the limit", lim, err)
		}
	}
}

// TestRematchStoredInventory: an inventory kept by image digest matches a
// database again with no image at hand, to the same findings.
func TestRematchStoredInventory(t *testing.T) {
	img, _ := imagetest.BookwormApp(t)
	archive := filepath.Join(t.TempDir(), "app.tar")
	if err := tarball.WriteToFile(archive, name.MustParseReference("app:1").(name.Tag), img); err != nil {
		t.Fatal(err)
	}
	first := scanRef(t, "docker-archive:"+archive)
	ctx := context.Background()
	st := storetest.Open(t, t.TempDir())
	if err := scan.SaveInventory(ctx, st.Writer(), first); err != nil {
		t.Fatal(err)
	}
	if err := os.Remove(archive); err != nil {
		t.Fatal(err)
	}
	again, err := scan.LoadInventory(ctx, st, first.Image.ImageID())
	if err != nil {
		t.Fatal(err)
	}
	if len(again.Findings) != 0 || len(again.Packages) != len(first.Packages) {
		t.Fatalf("stored inventory: %d packages, %d findings", len(again.Packages), len(again.Findings))
	}
	if err := scan.Match(ctx, again, fixtureDB(t), scan.OrderNVD); err != nil {
		t.Fatal(err)
	}
	if again.Summary != first.Summary || len(again.Findings) != len(first.Findings) {
		t.Errorf("rematch summary %+v, first scan %+v", again.Summary, first.Summary)
	}
	if _, err := scan.LoadInventory(ctx, st, "sha256:nothing"); !errors.Is(err, scan.ErrNoInventory) {
		t.Errorf("LoadInventory(unknown) = %v, want ErrNoInventory", err)
	}
}

// TestScanRootFilesystem scans a root filesystem on disk as a one-layer
// image; a symlink out of the tree is kept as a link, not followed.
func TestScanRootFilesystem(t *testing.T) {
	root := t.TempDir()
	outside := filepath.Join(t.TempDir(), "os-release")
	files := map[string]string{"app/node_modules/lodash/package.json": `{"name": "lodash", "version": "4.17.15"}`}
	for name, fixture := range map[string]string{"etc/os-release": "os-release", "var/lib/dpkg/status": "dpkg-status"} {
		data, err := os.ReadFile(filepath.Join(fixtures, "debian", fixture))
		if err != nil {
			t.Fatal(err)
		}
		files[name] = string(data)
	}
	for name, body := range files {
		p := filepath.Join(root, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(outside, []byte("ID=evil\nVERSION_ID=1\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(outside, filepath.Join(root, "etc", "lsb-release")); err != nil {
		t.Fatal(err)
	}
	r := scanRef(t, "dir:"+root)
	if r.OS == nil || r.OS.Ecosystem != "Debian:12" {
		t.Errorf("OS = %+v", r.OS)
	}
	var lodash, debs int
	for _, p := range r.Packages {
		switch {
		case p.Name == "lodash":
			lodash++
		case p.Type == "deb":
			debs++
		}
	}
	if lodash != 1 || debs != 88 {
		t.Errorf("%d lodash, %d debs; want 1 and 88", lodash, debs)
	}
}

// TestNPMPackageCountsOnce: a package in node_modules and in the lockfile
// beside it is one package, not two.
func TestNPMPackageCountsOnce(t *testing.T) {
	lock := `{"name": "app", "lockfileVersion": 3, "requires": true, "packages": {
		"": {"name": "app", "dependencies": {"lodash": "4.17.15"}},
		"node_modules/lodash": {"version": "4.17.15", "resolved": "https://registry.npmjs.org/lodash/-/lodash-4.17.15.tgz"}}}`
	img := imagetest.Build(t, imagetest.Layer(t,
		imagetest.Entry{Name: "app/package-lock.json", Body: lock},
		imagetest.Entry{Name: "app/package.json", Body: `{"name": "app", "version": "1.0.0", "dependencies": {"lodash": "4.17.15"}}`},
		imagetest.Entry{Name: "app/node_modules/lodash/package.json", Body: `{"name": "lodash", "version": "4.17.15"}`},
	))
	r, err := scan.Catalog(context.Background(), img, scan.ImageInfo{Ref: "npm-twice"}, scan.DefaultLimits)
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, p := range r.Packages {
		if p.Name == "lodash" {
			n++
		}
	}
	if n != 1 {
		t.Errorf("lodash listed %d times: %+v", n, r.Packages)
	}
}

// TestGoBinaryStandardLibrary builds a real Go binary (standard library
// only, so no network) and scans it: its toolchain's advisories from Go's
// vulnerability database must be found, under the name "stdlib".
func TestGoBinaryStandardLibrary(t *testing.T) {
	dir := t.TempDir()
	src := "package main\n\nimport \"fmt\"\n\nfunc main() { fmt.Println(\"hello\") }\n"
	if err := os.WriteFile(filepath.Join(dir, "main.go"), []byte(src), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "go.mod"), []byte("module example.com/hello\n\ngo 1.22\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	bin := filepath.Join(dir, "hello")
	cmd := exec.Command("go", "build", "-o", bin, ".")
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "GOTOOLCHAIN=local", "GOPROXY=off", "GOFLAGS=-mod=mod", "CGO_ENABLED=0")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	data, err := os.ReadFile(bin)
	if err != nil {
		t.Fatal(err)
	}
	img := imagetest.Build(t, imagetest.Layer(t, imagetest.Entry{Name: "usr/local/bin/hello", Body: string(data), Mode: 0o755}))
	ctx := context.Background()
	r, err := scan.Catalog(ctx, img, scan.ImageInfo{Ref: "hello"}, scan.DefaultLimits)
	if err != nil {
		t.Fatal(err)
	}
	if err := scan.Match(ctx, r, fixtureDB(t), scan.OrderNVD); err != nil {
		t.Fatal(err)
	}
	var stdlib *scan.Package
	for i, p := range r.Packages {
		if p.Type == "go-stdlib" {
			stdlib = &r.Packages[i]
		}
	}
	goVersion := strings.TrimPrefix(runtime.Version(), "go")
	if stdlib == nil || stdlib.Name != "stdlib" || stdlib.Version != goVersion || stdlib.Path != "/usr/local/bin/hello" {
		t.Fatalf("stdlib package = %+v; want stdlib %s in /usr/local/bin/hello (packages %+v)", stdlib, goVersion, r.Packages)
	}
	// What the database says of this Go version, the scan must report.
	want, err := fixtureDB(t).Reader().Affected(ctx, "Go", "stdlib", goVersion)
	if err != nil {
		t.Fatal(err)
	}
	if len(want) == 0 {
		t.Fatalf("the fixture Go database has no advisory for stdlib %s: the test proves nothing", goVersion)
	}
	if len(r.Findings) != len(want) {
		t.Errorf("%d findings for stdlib %s, the database has %d", len(r.Findings), goVersion, len(want))
	}
}
