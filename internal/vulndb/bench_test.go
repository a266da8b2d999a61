package vulndb_test

import (
	"context"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/scangate/scangate/internal/feed"
	"github.com/scangate/scangate/internal/store"
	"github.com/scangate/scangate/internal/vulndb"
)

// BenchmarkImport measures the import figure: all of Go vulndb and
// PyPA's advisory database (7,450 records), read from their zips, parsed,
// checked and stored in a new SQLite file.
func BenchmarkImport(b *testing.B) {
	ctx := context.Background()
	paths := []string{filepath.Join(fixtures, "go-vulndb.zip"), filepath.Join(fixtures, "pypa-advisory-database.zip")}
	var size int64
	for b.Loop() {
		dir := b.TempDir()
		st, err := store.Open(ctx, filepath.Join(dir, store.FileName))
		if err != nil {
			b.Fatal(err)
		}
		loaded, err := feed.Load(ctx, paths, "", feed.Options{})
		if err != nil {
			b.Fatal(err)
		}
		n := 0
		for _, f := range loaded.Feeds {
			n += len(f.Advisories)
		}
		if n != 7450 {
			b.Fatalf("imported %d records, want 7450", n)
		}
		if err := vulndb.New(st).Replace(ctx, loaded.Feeds, vulndb.ReplaceOptions{}); err != nil {
			b.Fatal(err)
		}
		st.Close()
		size = fileSize(b, filepath.Join(dir, store.FileName)) + fileSize(b, filepath.Join(dir, store.FileName+"-wal"))
	}
	b.ReportMetric(float64(size)/(1<<20), "MiB-db")
}

func fileSize(b *testing.B, path string) int64 {
	fi, err := os.Stat(path)
	if err != nil {
		return 0
	}
	return fi.Size()
}

// query is one Affected call as a scan would make it.
type query struct{ eco, pkg, version string }

// benchQueries takes every (ecosystem, package) of the fixture feeds with a
// version from its own ranges, so that each call compares real versions.
func benchQueries(b *testing.B) []query {
	loaded, err := feed.Load(context.Background(), []string{
		filepath.Join(fixtures, "go-vulndb.zip"), filepath.Join(fixtures, "pypa-advisory-database.zip"),
		filepath.Join(fixtures, "debian"), filepath.Join(fixtures, "alpine"), filepath.Join(fixtures, "ghsa"),
	}, "", feed.Options{})
	if err != nil {
		b.Fatal(err)
	}
	seen := map[string]bool{}
	var qs []query
	for _, f := range loaded.Feeds {
		for _, a := range f.Advisories {
			for _, af := range a.Affected {
				key := af.Ecosystem + "/" + af.Package
				if seen[key] {
					continue
				}
				seen[key] = true
				qs = append(qs, query{af.Ecosystem, af.Package, someVersion(af)})
			}
		}
	}
	return qs
}

func someVersion(af vulndb.Affected) string {
	if af.Fixed != "" {
		return af.Fixed
	}
	for _, r := range af.Ranges {
		if r.Type == vulndb.RangeGit {
			continue
		}
		for _, e := range r.Events {
			if e.Fixed != "" {
				return e.Fixed
			}
			if e.Introduced != "" && e.Introduced != "0" {
				return e.Introduced
			}
		}
	}
	if len(af.Versions) > 0 {
		return af.Versions[0]
	}
	return "1.0.0"
}

// BenchmarkAffectedWarm is a scan's steady state: every package's
// advisories already read once by this Reader.
func BenchmarkAffectedWarm(b *testing.B) {
	db := fixtureDatabase(b)
	qs := benchQueries(b)
	r := db.Reader()
	ctx := context.Background()
	for _, q := range qs {
		if _, err := r.Affected(ctx, q.eco, q.pkg, q.version); err != nil {
			b.Fatalf("%v: %v", q, err)
		}
	}
	i := 0
	took := make([]time.Duration, 0, len(qs))
	for b.Loop() {
		q := qs[i%len(qs)]
		i++
		start := time.Now()
		if _, err := r.Affected(ctx, q.eco, q.pkg, q.version); err != nil {
			b.Fatal(err)
		}
		if len(took) < cap(took) {
			took = append(took, time.Since(start))
		}
	}
	reportPercentiles(b, took)
}

// reportPercentiles adds the median and 95th percentile of per-call times:
// a few packages (Go's stdlib, with hundreds of advisories) dominate the
// mean, while the issue asks for the median.
func reportPercentiles(b *testing.B, took []time.Duration) {
	if len(took) == 0 {
		return
	}
	slices.Sort(took)
	b.ReportMetric(float64(took[len(took)/2].Nanoseconds()), "p50-ns")
	b.ReportMetric(float64(took[len(took)*95/100].Nanoseconds()), "p95-ns")
}

// BenchmarkAffectedCold reads every package from SQLite: a scan's first
// query for a package.
func BenchmarkAffectedCold(b *testing.B) {
	db := fixtureDatabase(b)
	qs := benchQueries(b)
	ctx := context.Background()
	i := 0
	took := make([]time.Duration, 0, len(qs))
	for b.Loop() {
		q := qs[i%len(qs)]
		i++
		start := time.Now()
		if _, err := db.Reader().Affected(ctx, q.eco, q.pkg, q.version); err != nil {
			b.Fatal(err)
		}
		if len(took) < cap(took) {
			took = append(took, time.Since(start))
		}
	}
	reportPercentiles(b, took)
}
