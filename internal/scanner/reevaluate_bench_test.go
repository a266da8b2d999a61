package scanner

import (
	"context"
	"crypto/sha256"
	"database/sql"
	"encoding/json"
	"fmt"
	"hash/fnv"
	"io"
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/scangate/scangate/internal/events"
	"github.com/scangate/scangate/internal/feed"
	"github.com/scangate/scangate/internal/imagetest"
	"github.com/scangate/scangate/internal/jobs"
	"github.com/scangate/scangate/internal/scan"
	"github.com/scangate/scangate/internal/store"
	"github.com/scangate/scangate/internal/vulndb"
)

// benchImages is how many stored images the re-evaluation benchmark keeps
// (the figure: 1,000 in under 10 s).
const benchImages = 1000

// The fixture feeds, from internal/scanner.
var fixtureFeeds = filepath.Join("..", "..", "testdata", "vulndata")

// BenchmarkReevaluate times Scanner.Reevaluate over 1,000 stored images
// with the inventory of the scanner issue's bench image (Debian bookworm's
// 88 packages, 73 npm packages, a Go binary's modules and standard library,
// two Python dists), varied per image, in a real SQLite store, after the
// vulnerability database changed:
//
//   - changed: the images were scanned without the GitHub advisories, which
//     are then imported: every image gains npm findings, so each gets a new
//     result, a SCAN_COMPLETE event and Finding CREATED events;
//   - unchanged: the Alpine feed is imported, which changes the database's
//     digest but no Debian image's findings: every image is matched again
//     and none changes;
//   - current: nothing was imported since the images were scanned, as when
//     the server starts (it queues a re-evaluation each time).
//
// Each run starts from a copy of the same database file. Run it with
//
//	go test -run '^$' -bench Reevaluate -benchtime 1x -count 5 ./internal/scanner/
func BenchmarkReevaluate(b *testing.B) {
	base := benchInventory(b)
	templates := map[string]string{} // by case: b.Run calls a case again for each b.N
	dir := b.TempDir()
	all := []string{"go-vulndb.zip", "pypa-advisory-database.zip", "debian", "nvd"}
	for _, sc := range []struct {
		name       string
		before     []string
		added      string
		wantChange bool
	}{
		{"changed", all, "ghsa", true},
		{"unchanged", append(append([]string{}, all...), "ghsa"), "alpine", false},
		{"current", append(append([]string{}, all...), "ghsa"), "", false},
	} {
		b.Run(sc.name, func(b *testing.B) {
			template, ok := templates[sc.name]
			if !ok {
				template = benchStore(b, filepath.Join(dir, sc.name+".db"), benchImages, base, sc.before, sc.added)
				templates[sc.name] = template
			}
			b.ResetTimer()
			var res Reevaluation
			var cpu time.Duration
			for i := 0; i < b.N; i++ {
				b.StopTimer()
				s, st := benchScanner(b, template, filepath.Join(dir, "run"))
				before := cpuTime(b)
				b.StartTimer()
				var err error
				if res, err = s.Reevaluate(context.Background()); err != nil {
					b.Fatal(err)
				}
				b.StopTimer()
				cpu += cpuTime(b) - before
				st.Close()
				b.StartTimer()
			}
			// The machine may be shared: the process's CPU time is the
			// figure other work running at the same time changes least.
			b.ReportMetric(cpu.Seconds()/float64(b.N), "cpu-s/op")
			if res.Images != benchImages || (res.Changed > 0) != sc.wantChange {
				b.Fatalf("re-evaluation %+v: want %d images, changes %v", res, benchImages, sc.wantChange)
			}
			b.ReportMetric(float64(res.Changed), "changed")
			b.ReportMetric(float64(res.Created), "created")
			b.ReportMetric(float64(res.Closed), "closed")
		})
	}
}

// benchInventory catalogs an image made of the bench image's package
// files (the real dpkg status of Debian bookworm minbase, the npm fixture
// app's node_modules as `npm ci` lays them out, the Python dist-infos) and
// adds the Go binary's modules as scangate reports them.
func benchInventory(b testing.TB) *scan.Report {
	b.Helper()
	var lock struct {
		Packages map[string]struct {
			Version string `json:"version"`
		} `json:"packages"`
	}
	data, err := os.ReadFile(filepath.Join(fixtureFeeds, "npm", "package-lock.json"))
	if err != nil {
		b.Fatal(err)
	}
	if err := json.Unmarshal(data, &lock); err != nil {
		b.Fatal(err)
	}
	var npm []imagetest.Entry
	for path, p := range lock.Packages {
		if path == "" {
			continue
		}
		name := path[len("node_modules/"):]
		npm = append(npm, imagetest.Entry{
			Name: "app/" + path + "/package.json",
			Body: fmt.Sprintf(`{"name": %q, "version": %q}`, name, p.Version),
		})
	}
	var python []imagetest.Entry
	for _, p := range [][2]string{{"requests", "2.25.0"}, {"urllib3", "1.26.4"}} {
		python = append(python, imagetest.Entry{
			Name: fmt.Sprintf("usr/lib/python3/dist-packages/%s-%s.dist-info/METADATA", p[0], p[1]),
			Body: fmt.Sprintf("Metadata-Version: 2.1\nName: %s\nVersion: %s\n", p[0], p[1]),
		})
	}
	img := imagetest.Build(b, imagetest.BookwormBase(b), imagetest.Layer(b, npm...), imagetest.Layer(b, python...))
	r, err := scan.Catalog(context.Background(), img, scan.ImageInfo{Ref: "bench"}, scan.DefaultLimits)
	if err != nil {
		b.Fatal(err)
	}
	for _, m := range [][3]string{
		{"example.com/vulnscan-demo-gobin", "(devel)", "go-module"},
		{"golang.org/x/net", "0.0.0-20210226172049-e18ecbb05110", "go-module"},
		{"golang.org/x/text", "0.3.5", "go-module"},
		{"stdlib", "1.26.8", "go-stdlib"},
	} {
		r.Packages = append(r.Packages, scan.Package{Name: m[0], Version: m[1], Type: m[2], Ecosystem: "Go",
			PURL: "pkg:golang/" + m[0] + "@" + m[1], Path: "/usr/local/bin/demo"})
	}
	if len(r.Packages) < 160 {
		b.Fatalf("%d packages in the bench inventory, want the bench image's 167", len(r.Packages))
	}
	return r
}

// variant is image i's inventory: base with about one npm package in ten
// left out, some newer versions, a Go toolchain of three, and a package of
// its own, so that images share most packages but not all.
func variant(base *scan.Report, i int) *scan.Report {
	r := *base
	r.Packages = nil
	stdlib := []string{"1.26.8", "1.22.4", "1.21.0"}[i%3]
	for _, p := range base.Packages {
		h := fnv.New32a()
		fmt.Fprintf(h, "%d %s", i, p.Name)
		switch {
		case p.Type == "npm" && h.Sum32()%10 == 0:
			continue
		case p.Type == "npm" && p.Name == "lodash" && i%4 == 0:
			p.Version = "4.17.21"
		case p.Type == "deb" && h.Sum32()%20 == 0:
			p.SourceVersion += "+deb12u1"
		case p.Type == "go-stdlib":
			p.Version = stdlib
		}
		r.Packages = append(r.Packages, p)
	}
	r.Packages = append(r.Packages, scan.Package{Name: fmt.Sprintf("service-%d", i), Version: "1.0.0", Type: "npm",
		Ecosystem: "npm", Path: "/app/package.json"})
	d := sha256.Sum256(fmt.Appendf(nil, "bench image %d", i))
	r.Image = scan.ImageInfo{
		Repository: fmt.Sprintf("team%02d/app", i%25),
		Tags:       []string{fmt.Sprint(i)},
		Digest:     fmt.Sprintf("sha256:%x", d),
		Platform:   "linux/amd64",
		Layers:     base.Image.Layers,
	}
	r.Image.Ref = "127.0.0.1:5000/" + r.Image.Repository + "@" + r.Image.Digest
	r.Image.ConfigDigest = r.Image.Digest
	return &r
}

// benchStore makes a database file holding images images scanned with
// the feeds before, then imports added (if not empty), and returns the file.
func benchStore(b testing.TB, path string, images int, base *scan.Report, before []string, added string) string {
	b.Helper()
	ctx := context.Background()
	st, err := store.Open(ctx, path)
	if err != nil {
		b.Fatal(err)
	}
	defer st.Close()
	if err := jobs.Migrate(ctx, st); err != nil {
		b.Fatal(err)
	}
	importFeeds(b, st, before...)
	m, err := scan.NewMatcher(ctx, vulndb.New(st), scan.OrderNVD)
	if err != nil {
		b.Fatal(err)
	}
	pushed := time.Now().UTC().Format(time.RFC3339)
	const batch = 100
	for first := 0; first < images; first += batch {
		err := st.InTx(ctx, func(tx *sql.Tx) error {
			for i := first; i < first+batch && i < images; i++ {
				r := variant(base, i)
				r.CreatedAt = time.Now().UTC()
				if err := m.Match(ctx, r); err != nil {
					return err
				}
				if err := scan.SaveInventory(ctx, tx, r); err != nil {
					return err
				}
				if err := writeScan(ctx, tx, r.Image.Repository, r.Image.Digest, "COMPLETE", "", r); err != nil {
					return err
				}
				if _, err := tx.ExecContext(ctx, `INSERT INTO images (repository, digest, media_type, pushed_at) VALUES ($1, $2, $3, $4)`,
					r.Image.Repository, r.Image.Digest, "application/vnd.oci.image.manifest.v1+json", pushed); err != nil {
					return err
				}
			}
			return nil
		})
		if err != nil {
			b.Fatal(err)
		}
	}
	if added != "" {
		importFeeds(b, st, added)
	}
	return path
}

func importFeeds(b testing.TB, st *store.Store, names ...string) {
	b.Helper()
	paths := make([]string, len(names))
	for i, n := range names {
		paths[i] = filepath.Join(fixtureFeeds, n)
	}
	loaded, err := feed.Load(context.Background(), paths, "", feed.Options{})
	if err != nil {
		b.Fatal(err)
	}
	if err := vulndb.New(st).Replace(context.Background(), loaded.Feeds, vulndb.ReplaceOptions{}); err != nil {
		b.Fatal(err)
	}
}

// benchScanner opens a copy of the template database in dir with a
// scanner over it, as the server makes one (an insert-only job client is
// enough: the re-evaluation inserts event routing jobs, which nothing works
// here).
func benchScanner(b testing.TB, template, dir string) (*Scanner, *store.Store) {
	b.Helper()
	ctx := context.Background()
	if err := os.RemoveAll(dir); err != nil {
		b.Fatal(err)
	}
	if err := os.MkdirAll(dir, 0o750); err != nil {
		b.Fatal(err)
	}
	path := filepath.Join(dir, store.FileName)
	copyFile(b, template, path)
	st, err := store.Open(ctx, path)
	if err != nil {
		b.Fatal(err)
	}
	client, err := jobs.New(st, nil, jobs.Config{})
	if err != nil {
		b.Fatal(err)
	}
	bus := events.NewBus(st, client, events.BusOptions{})
	return New(st, nil, bus, client, Options{Host: "127.0.0.1:5000"}), st
}

func copyFile(b testing.TB, from, to string) {
	b.Helper()
	in, err := os.Open(from)
	if err != nil {
		b.Fatal(err)
	}
	defer in.Close()
	out, err := os.Create(to)
	if err != nil {
		b.Fatal(err)
	}
	if _, err := io.Copy(out, in); err != nil {
		b.Fatal(err)
	}
	if err := out.Close(); err != nil {
		b.Fatal(err)
	}
}

// cpuTime is the CPU time this process has used, user and system.
func cpuTime(b testing.TB) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		b.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
