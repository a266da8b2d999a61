package feed_test

import (
	"archive/zip"
	"bytes"
	"compress/flate"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"hash/crc32"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/scangate/scangate/internal/feed"
	"github.com/scangate/scangate/internal/vulndb"
)

// The loader tests build their fixtures in t.TempDir(): OSV records as
// osv.dev and the Go vulnerability database publish them (id first), in
// folders and zips, next to the READMEs and licences real checkouts hold.

// osvTestRecord is the part of an OSV record these tests write, in the
// field order upstream files use, so that "id" is within the bytes that
// format detection looks at.
type osvTestRecord struct {
	ID       string            `json:"id"`
	Modified string            `json:"modified"`
	Summary  string            `json:"summary,omitempty"`
	Affected []osvTestAffected `json:"affected,omitempty"`
}

type osvTestAffected struct {
	Package struct {
		Ecosystem string `json:"ecosystem"`
		Name      string `json:"name"`
	} `json:"package"`
	Ranges []osvTestRange `json:"ranges"`
}

type osvTestRange struct {
	Type   string              `json:"type"`
	Events []map[string]string `json:"events"`
}

// aff is one affected package with a range from introduced to fixed.
func aff(ecosystem, name, introduced, fixed string) osvTestAffected {
	var a osvTestAffected
	a.Package.Ecosystem, a.Package.Name = ecosystem, name
	a.Ranges = []osvTestRange{{Type: "SEMVER", Events: []map[string]string{{"introduced": introduced}, {"fixed": fixed}}}}
	return a
}

// osvDoc is an OSV JSON record; with no affected packages given it has one
// Go module.
func osvDoc(id, modified, summary string, affected ...osvTestAffected) string {
	if len(affected) == 0 {
		affected = []osvTestAffected{aff("Go", "example.com/"+strings.ToLower(id), "0", "1.2.3")}
	}
	b, err := json.MarshalIndent(osvTestRecord{ID: id, Modified: modified, Summary: summary, Affected: affected}, "", "  ")
	if err != nil {
		panic(err)
	}
	return string(b)
}

const (
	jan = "2024-01-01T00:00:00Z"
	jun = "2024-06-01T00:00:00Z"
)

// writeTree writes files, by slash-separated path under dir, and returns dir.
func writeTree(t testing.TB, dir string, files map[string]string) string {
	t.Helper()
	for name, data := range files {
		p := filepath.Join(dir, filepath.FromSlash(name))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(data), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

type zipEntry struct{ name, data string }

// zipOf is a zip archive of the entries, deflated as osv.dev's all.zip is;
// a name ending in "/" is a directory entry.
func zipOf(t testing.TB, entries ...zipEntry) []byte {
	t.Helper()
	var buf bytes.Buffer
	w := zip.NewWriter(&buf)
	for _, e := range entries {
		method := zip.Deflate
		if strings.HasSuffix(e.name, "/") {
			method = zip.Store
		}
		fw, err := w.CreateHeader(&zip.FileHeader{Name: e.name, Method: method})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := fw.Write([]byte(e.data)); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// storedZipOf is a zip of the entries stored uncompressed with no CRC, which
// archive/zip does not check: a fuzzer's byte flips in an entry then reach
// the parsers instead of failing the checksum.
func storedZipOf(t testing.TB, entries ...zipEntry) []byte {
	t.Helper()
	var buf bytes.Buffer
	w := zip.NewWriter(&buf)
	for _, e := range entries {
		fw, err := w.CreateRaw(&zip.FileHeader{Name: e.name, Method: zip.Store, CompressedSize64: uint64(len(e.data)), UncompressedSize64: uint64(len(e.data))})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := fw.Write([]byte(e.data)); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func writeZip(t testing.TB, path string, entries ...zipEntry) string {
	t.Helper()
	if err := os.WriteFile(path, zipOf(t, entries...), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

// bombZip is a zip with one entry of size zeros, deflated, whose headers
// declare declared bytes uncompressed.
func bombZip(t testing.TB, size int, declared uint64) []byte {
	t.Helper()
	zeros := make([]byte, size)
	var comp bytes.Buffer
	fw, err := flate.NewWriter(&comp, flate.BestCompression)
	if err != nil {
		t.Fatal(err)
	}
	fw.Write(zeros)
	fw.Close()
	var buf bytes.Buffer
	w := zip.NewWriter(&buf)
	raw, err := w.CreateRaw(&zip.FileHeader{
		Name:               "GO-2024-0001.json",
		Method:             zip.Deflate,
		CRC32:              crc32.ChecksumIEEE(zeros),
		CompressedSize64:   uint64(comp.Len()),
		UncompressedSize64: declared,
	})
	if err != nil {
		t.Fatal(err)
	}
	raw.Write(comp.Bytes())
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func load(t testing.TB, paths []string, source string, opts feed.Options) *feed.Loaded {
	t.Helper()
	got, err := feed.Load(context.Background(), paths, source, opts)
	if err != nil {
		t.Fatalf("Load(%q): %v", paths, err)
	}
	if got == nil {
		t.Fatalf("Load(%q) returned nil and no error", paths)
	}
	return got
}

// checkLoadErr checks that Load failed, returned nothing, and said each of
// the parts (a file's name, the limit hit).
func checkLoadErr(t testing.TB, got *feed.Loaded, err error, parts ...string) {
	t.Helper()
	if err == nil {
		t.Fatalf("Load succeeded with %d feeds, want an error naming %q", len(got.Feeds), parts)
	}
	t.Logf("error: %v", err)
	if got != nil {
		t.Errorf("Load returned %d feeds along with error %v; want nothing", len(got.Feeds), err)
	}
	for _, p := range parts {
		if !strings.Contains(err.Error(), p) {
			t.Errorf("error %q does not say %q", err, p)
		}
	}
}

// feedIDs lists each feed's advisory IDs by feed name.
func feedIDs(l *feed.Loaded) map[string][]string {
	out := map[string][]string{}
	for _, f := range l.Feeds {
		out[f.Name] = []string{}
		for _, a := range f.Advisories {
			out[f.Name] = append(out[f.Name], a.ID)
		}
	}
	return out
}

func findFeed(t testing.TB, l *feed.Loaded, name string) *vulndb.Feed {
	t.Helper()
	for i := range l.Feeds {
		if l.Feeds[i].Name == name {
			return &l.Feeds[i]
		}
	}
	t.Fatalf("no feed %q in %v", name, feedIDs(l))
	return nil
}

func TestLoadFolder(t *testing.T) {
	root := t.TempDir()
	dir := writeTree(t, filepath.Join(root, "vulndb"), map[string]string{
		"README.md":                      "# Go vulnerability database\n",
		"LICENSE":                        "Creative Commons Attribution 4.0\n",
		"data/osv/GO-2024-0001.json":     osvDoc("GO-2024-0001", jan, ""),
		"data/osv/GO-2024-0002.json":     osvDoc("GO-2024-0002", jan, ""),
		"data/GO-2024-0003.json":         osvDoc("GO-2024-0003", jan, ""),
		".git/objects/GO-2024-0666.json": osvDoc("GO-2024-0666", jan, "in .git"),
		"data/.cache/GO-2024-0667.json":  osvDoc("GO-2024-0667", jan, "in a hidden folder"),
	})
	outside := writeTree(t, filepath.Join(root, "outside"), map[string]string{
		"GO-2024-0777.json": osvDoc("GO-2024-0777", jan, "behind a symlink"),
	})
	for _, link := range []struct{ target, name string }{
		{filepath.Join(outside, "GO-2024-0777.json"), "data/GO-2024-0777.json"},
		{outside, "data/linked"},
	} {
		if err := os.Symlink(link.target, filepath.Join(dir, filepath.FromSlash(link.name))); err != nil {
			t.Skipf("no symlinks here: %v", err)
		}
	}

	got := load(t, []string{dir}, "", feed.Options{})
	want := map[string][]string{"osv:Go": {"GO-2024-0001", "GO-2024-0002", "GO-2024-0003"}}
	if ids := feedIDs(got); !reflect.DeepEqual(ids, want) {
		t.Errorf("feeds = %v, want %v (hidden folders and symlinks must not be read)", ids, want)
	}
	if got.Files != 3 || got.Ignored != 2 {
		t.Errorf("Files, Ignored = %d, %d; want 3 records and 2 ignored (README.md, LICENSE)", got.Files, got.Ignored)
	}
	if len(got.Skipped) != 0 {
		t.Errorf("Skipped = %+v, want none", got.Skipped)
	}
	f := findFeed(t, got, "osv:Go")
	if f.Format != "osv" || f.Skipped != 0 {
		t.Errorf("feed osv:Go: Format %q, Skipped %d; want osv, 0", f.Format, f.Skipped)
	}

	// A folder named explicitly is read even if its own name starts with a dot.
	hidden := writeTree(t, filepath.Join(root, ".vulns"), map[string]string{"GO-2024-0004.json": osvDoc("GO-2024-0004", jan, "")})
	if ids := feedIDs(load(t, []string{hidden}, "", feed.Options{})); !reflect.DeepEqual(ids, map[string][]string{"osv:Go": {"GO-2024-0004"}}) {
		t.Errorf("explicit hidden folder: feeds = %v", ids)
	}
}

// truncatedOSV is an OSV record cut off mid-way, as a failed download leaves it.
const truncatedOSV = `{"id": "GO-1", "modified": "2024-01-01T00:00:00Z", "affected": [`

func TestLoadErrors(t *testing.T) {
	dir := t.TempDir()
	notes := writeTree(t, filepath.Join(dir, "notes"), map[string]string{"notes.txt": "not a feed\n"})
	bad := writeTree(t, filepath.Join(dir, "bad"), map[string]string{
		"GO-1.json": truncatedOSV,
		"README.md": "# data\n",
	})
	good := writeTree(t, filepath.Join(dir, "good"), map[string]string{"GO-2024-0001.json": osvDoc("GO-2024-0001", jan, "")})
	valid := zipOf(t, zipEntry{"GO-2024-0001.json", osvDoc("GO-2024-0001", jan, "")}, zipEntry{"GO-2024-0002.json", osvDoc("GO-2024-0002", jan, "")})
	truncZip := filepath.Join(dir, "truncated.zip")
	if err := os.WriteFile(truncZip, valid[:len(valid)/2], 0o644); err != nil {
		t.Fatal(err)
	}
	// A zip whose directory is intact but whose first entry's data is not.
	corrupt := bytes.Clone(valid)
	for i := 40; i < 80; i++ {
		corrupt[i] ^= 0xff
	}
	corruptZip := filepath.Join(dir, "corrupt.zip")
	if err := os.WriteFile(corruptZip, corrupt, 0o644); err != nil {
		t.Fatal(err)
	}
	emptyFile := filepath.Join(dir, "empty.json")
	writeTree(t, dir, map[string]string{"empty.json": ""})

	for _, tc := range []struct {
		name  string
		paths []string
		opts  feed.Options
		want  []string // what the message must say
	}{
		{"explicit unrecognised file", []string{filepath.Join(notes, "notes.txt")}, feed.Options{}, []string{filepath.Join(notes, "notes.txt"), "not a feed file"}},
		{"explicit empty file", []string{emptyFile}, feed.Options{}, []string{emptyFile}},
		{"explicit truncated OSV", []string{filepath.Join(bad, "GO-1.json")}, feed.Options{}, []string{filepath.Join(bad, "GO-1.json")}},
		{"truncated OSV in a folder", []string{bad}, feed.Options{}, []string{filepath.Join(bad, "GO-1.json")}},
		{"truncated OSV after a good folder", []string{good, bad}, feed.Options{}, []string{filepath.Join(bad, "GO-1.json")}},
		{"missing path", []string{good, filepath.Join(dir, "nope")}, feed.Options{}, []string{filepath.Join(dir, "nope")}},
		{"truncated zip", []string{truncZip}, feed.Options{}, []string{truncZip}},
		{"corrupt zip entry", []string{corruptZip}, feed.Options{}, []string{corruptZip + ":GO-2024-0001.json"}},
		{"unknown format", []string{good}, feed.Options{Format: "cvrf"}, []string{`"cvrf"`, "osv, ghsa, debian, alpine, nvd"}},
		{"forced format on a file of another", []string{filepath.Join(notes, "notes.txt")}, feed.Options{Format: "osv"}, []string{filepath.Join(notes, "notes.txt")}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := feed.Load(context.Background(), tc.paths, "", tc.opts)
			checkLoadErr(t, got, err, tc.want...)
		})
	}

	t.Run("cancelled", func(t *testing.T) {
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		got, err := feed.Load(ctx, []string{good}, "", feed.Options{})
		checkLoadErr(t, got, err)
		if !errors.Is(err, context.Canceled) {
			t.Errorf("error %v is not context.Canceled", err)
		}
	})
}

// TestLoadFirstError checks that of several broken files the error names
// the first in walk order, whichever parser fails first. The first file is
// the slowest to fail, so a loader that reports errors in the order parsers
// finish names another.
func TestLoadFirstError(t *testing.T) {
	files := map[string]string{
		// Malformed only at its very end, after a megabyte of details.
		"a-00.json": `{"id": "GO-0", "modified": "2024-01-01T00:00:00Z", "details": "` + strings.Repeat("x", 1<<20) + `", "affected": [`,
	}
	for i := 1; i < 40; i++ {
		files[fmt.Sprintf("a-%02d.json", i)] = truncatedOSV
	}
	dir := writeTree(t, t.TempDir(), files)
	first := filepath.Join(dir, "a-00.json")
	for range 10 {
		got, err := feed.Load(context.Background(), []string{dir}, "", feed.Options{})
		checkLoadErr(t, got, err)
		if !strings.Contains(err.Error(), first+":") && !strings.HasSuffix(err.Error(), first) {
			t.Fatalf("error %q does not name %s, the first broken file in walk order", err, first)
		}
	}
}

func TestLoadZip(t *testing.T) {
	dir := t.TempDir()
	rec := func(id string) zipEntry { return zipEntry{id + ".json", osvDoc(id, jan, "")} }

	t.Run("all.zip", func(t *testing.T) {
		// osv.dev's all.zip is flat; the Go database's tree has folders and notices.
		path := writeZip(t, filepath.Join(dir, "all.zip"),
			rec("GO-2024-0002"), rec("GO-2024-0001"),
			zipEntry{"data/", ""}, zipEntry{"data/osv/", ""},
			zipEntry{"data/osv/GO-2024-0003.json", osvDoc("GO-2024-0003", jan, "")},
			zipEntry{"data/LICENSE", "Creative Commons\n"},
			zipEntry{"data/NOTICES", "CVE records\n"},
			zipEntry{"data/osv/PYSEC-2024-1.json", osvDoc("PYSEC-2024-1", jan, "", aff("PyPI", "Requests", "0", "2.0"))},
		)
		got := load(t, []string{path}, "", feed.Options{})
		want := map[string][]string{
			"osv:Go":   {"GO-2024-0001", "GO-2024-0002", "GO-2024-0003"},
			"osv:PyPI": {"PYSEC-2024-1"},
		}
		if ids := feedIDs(got); !reflect.DeepEqual(ids, want) {
			t.Errorf("feeds = %v, want %v", ids, want)
		}
		if got.Files != 4 || got.Ignored != 2 || len(got.Skipped) != 0 {
			t.Errorf("Files %d, Ignored %d, Skipped %v; want 4, 2, none", got.Files, got.Ignored, got.Skipped)
		}
		if pkg := findFeed(t, got, "osv:PyPI").Advisories[0].Affected[0].Package; pkg != "requests" {
			t.Errorf("PyPI package %q, want the normalised name requests", pkg)
		}
	})

	t.Run("zip in a folder", func(t *testing.T) {
		sub := filepath.Join(dir, "tree")
		writeTree(t, sub, map[string]string{"GO-2024-0010.json": osvDoc("GO-2024-0010", jan, "")})
		writeZip(t, filepath.Join(sub, "more.ZIP"), rec("GO-2024-0011"))
		got := load(t, []string{sub}, "", feed.Options{})
		if ids := feedIDs(got); !reflect.DeepEqual(ids["osv:Go"], []string{"GO-2024-0010", "GO-2024-0011"}) {
			t.Errorf("feeds = %v, want the folder's record and the zip's", ids)
		}
	})

	t.Run("empty zip", func(t *testing.T) {
		got := load(t, []string{writeZip(t, filepath.Join(dir, "empty.zip"))}, "", feed.Options{})
		if len(got.Feeds) != 0 || got.Files != 0 || got.Ignored != 0 {
			t.Errorf("empty zip: %+v", got)
		}
	})
}

func TestLoadLimits(t *testing.T) {
	dir := t.TempDir()
	rec := func(id string) zipEntry { return zipEntry{id + ".json", osvDoc(id, jan, "")} }
	recs := func(n int) []zipEntry {
		var out []zipEntry
		for i := range n {
			out = append(out, rec(fmt.Sprintf("GO-2024-%04d", i)))
		}
		return out
	}
	size := int64(len(rec("GO-2024-0000").data)) // every record here has this size
	write := func(name string, data []byte) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, data, 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	honestBomb := write("honest-bomb.zip", bombZip(t, 10<<20, 10<<20))
	lyingBomb := write("lying-bomb.zip", bombZip(t, 10<<20, 100))
	records5 := writeZip(t, filepath.Join(dir, "five.zip"), recs(5)...)
	folder5 := writeTree(t, filepath.Join(dir, "five"), map[string]string{
		"GO-2024-0000.json": rec("GO-2024-0000").data, "GO-2024-0001.json": rec("GO-2024-0001").data,
		"GO-2024-0002.json": rec("GO-2024-0002").data, "GO-2024-0003.json": rec("GO-2024-0003").data,
		"README.md": strings.Repeat("r", int(size)),
	})
	big := write("GO-2024-9999.json", []byte(osvDoc("GO-2024-9999", jan, strings.Repeat("big ", 1<<10))))

	lim := func(file, total int64, files int) feed.Options {
		return feed.Options{Limits: feed.Limits{MaxFileBytes: file, MaxTotalBytes: total, MaxFiles: files}}
	}
	for _, tc := range []struct {
		name  string
		path  string
		opts  feed.Options
		names string // the file the error must name; "" means Load succeeds
		isErr error  // what the error must wrap
	}{
		{"entry declared over MaxFileBytes", honestBomb, lim(1<<20, 1<<30, 10), honestBomb + ":GO-2024-0001.json", feed.ErrLimit},
		// archive/zip itself stops an entry at its declared size, so a lying
		// header fails as a malformed zip before the loader's own limit.
		{"entry inflating past its declared size", lyingBomb, lim(1<<20, 1<<30, 10), lyingBomb + ":GO-2024-0001.json", zip.ErrFormat},
		{"file over MaxFileBytes", big, lim(1<<10, 1<<30, 10), big, feed.ErrLimit},
		{"entries within MaxFiles", records5, lim(1<<20, 1<<30, 5), "", nil},
		{"entries over MaxFiles", records5, lim(1<<20, 1<<30, 4), records5 + ":GO-2024-0004.json", feed.ErrLimit},
		{"folder within MaxFiles", folder5, lim(1<<20, 1<<30, 5), "", nil},
		{"folder over MaxFiles, READMEs count", folder5, lim(1<<20, 1<<30, 4), folder5, feed.ErrLimit},
		{"entries exactly MaxTotalBytes", records5, lim(1<<20, 5*size, 10), "", nil},
		{"entries over MaxTotalBytes", records5, lim(1<<20, 5*size-1, 10), records5 + ":GO-2024-0004.json", feed.ErrLimit},
		{"folder over MaxTotalBytes, READMEs count", folder5, lim(1<<20, 5*size-1, 10), folder5, feed.ErrLimit},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := feed.Load(context.Background(), []string{tc.path}, "", tc.opts)
			if tc.names == "" {
				if err != nil {
					t.Fatalf("Load: %v", err)
				}
				if n := len(feedIDs(got)["osv:Go"]); n == 0 {
					t.Errorf("no records loaded")
				}
				return
			}
			checkLoadErr(t, got, err, tc.names)
			if !errors.Is(err, tc.isErr) {
				t.Errorf("error %q does not wrap %v", err, tc.isErr)
			}
		})
	}
}

func TestLoadDuplicates(t *testing.T) {
	for _, tc := range []struct {
		name          string
		first, second string // modified times, in walk order
		keptSummary   string
		droppedFile   string
	}{
		{"later file newer", jan, jun, "from b", "a.json"},
		{"earlier file newer", jun, jan, "from a", "b.json"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := writeTree(t, t.TempDir(), map[string]string{
				"a.json": osvDoc("GO-2024-0001", tc.first, "from a"),
				"b.json": osvDoc("GO-2024-0001", tc.second, "from b"),
				"c.json": osvDoc("GO-2024-0002", jan, "other"),
			})
			got := load(t, []string{dir}, "", feed.Options{})
			f := findFeed(t, got, "osv:Go")
			if len(f.Advisories) != 2 {
				t.Fatalf("advisories %v, want GO-2024-0001 once and GO-2024-0002", feedIDs(got))
			}
			if a := f.Advisories[0]; a.ID != "GO-2024-0001" || a.Summary != tc.keptSummary || !a.Modified.Equal(mustTime(t, jun)) {
				t.Errorf("kept %s modified %s %q, want the record modified %s %q", a.ID, a.Modified, a.Summary, jun, tc.keptSummary)
			}
			if f.Skipped != 1 || len(got.Skipped) != 1 {
				t.Fatalf("feed Skipped %d, Loaded.Skipped %+v; want one skip", f.Skipped, got.Skipped)
			}
			s := got.Skipped[0]
			if s.Record != "GO-2024-0001" || !strings.Contains(s.Reason, "duplicate") {
				t.Errorf("skip %+v, want GO-2024-0001 as a duplicate", s)
			}
			// The skip names the file whose record was left out.
			if want := filepath.Join(dir, tc.droppedFile); s.File != want {
				t.Errorf("skip names file %s, but the record left out came from %s (skip: %+v)", s.File, want, s)
			}
		})
	}
}

// TestLoadMergesOneAdvisoryInSeveralFiles: vuln-list stores a GitHub
// advisory once per affected package, so records with one id and one
// modified time are parts of one advisory, not duplicates.
func TestLoadMergesOneAdvisoryInSeveralFiles(t *testing.T) {
	dir := writeTree(t, t.TempDir(), map[string]string{
		"a.json": osvDoc("GHSA-xxxx-yyyy-zzzz", jan, "s", aff("npm", "left-pad", "0", "1.3.0")),
		"b.json": osvDoc("GHSA-xxxx-yyyy-zzzz", jan, "s", aff("npm", "right-pad", "0", "2.0.0")),
		"c.json": osvDoc("GHSA-xxxx-yyyy-zzzz", jan, "s", aff("npm", "right-pad", "0", "2.0.0")), // a copy
	})
	got := load(t, []string{dir}, "", feed.Options{})
	f := findFeed(t, got, "osv:npm")
	if len(f.Advisories) != 1 || len(got.Skipped) != 0 {
		t.Fatalf("advisories %v, skipped %+v; want one advisory and no skip", feedIDs(got), got.Skipped)
	}
	var pkgs []string
	for _, af := range f.Advisories[0].Affected {
		pkgs = append(pkgs, af.Package)
	}
	if strings.Join(pkgs, ",") != "left-pad,right-pad" {
		t.Errorf("merged advisory affects %v, want left-pad and right-pad once each", pkgs)
	}
}

func mustTime(t testing.TB, s string) time.Time {
	t.Helper()
	tm, err := time.Parse(time.RFC3339, s)
	if err != nil {
		t.Fatal(err)
	}
	return tm
}

func TestLoadDroppedAffected(t *testing.T) {
	long := "1.0.0-" + strings.Repeat("a", 10_000)
	for _, tc := range []struct {
		name     string
		affected []osvTestAffected
		dropped  string // in the skip's reason
		kept     string // the affected ecosystem left
	}{
		{"unknown ecosystem after Go", []osvTestAffected{aff("Go", "example.com/m", "0", "1.2.3"), aff("NotAnEcosystem", "thing", "0", "1.0")}, "NotAnEcosystem", "Go"},
		{"unknown ecosystem before Go", []osvTestAffected{aff("NotAnEcosystem", "thing", "0", "1.0"), aff("Go", "example.com/m", "0", "1.2.3")}, "NotAnEcosystem", "Go"},
		{"absurd fixed version", []osvTestAffected{aff("Go", "example.com/m", "0", "1.2.3"), aff("Go", "example.com/n", "0", long)}, "example.com/n", "Go"},
		{"absurd introduced version", []osvTestAffected{aff("Go", "example.com/n", long, "1.2.3"), aff("Go", "example.com/m", "0", "1.2.3")}, "example.com/n", "Go"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := writeTree(t, t.TempDir(), map[string]string{
				"GO-2024-0001.json": osvDoc("GO-2024-0001", jan, "", tc.affected...),
			})
			got := load(t, []string{dir}, "", feed.Options{})
			var adv *vulndb.Advisory
			for i := range got.Feeds {
				for j := range got.Feeds[i].Advisories {
					adv = &got.Feeds[i].Advisories[j]
				}
			}
			if adv == nil {
				t.Fatalf("record not loaded: %v, skipped %+v", feedIDs(got), got.Skipped)
			}
			if len(adv.Affected) != 1 || adv.Affected[0].Ecosystem != tc.kept || adv.Affected[0].Package != "example.com/m" {
				t.Errorf("affected = %+v, want only Go example.com/m", adv.Affected)
			}
			if len(got.Skipped) != 1 {
				t.Fatalf("skipped = %+v, want one", got.Skipped)
			}
			s := got.Skipped[0]
			if s.Record != "GO-2024-0001" || s.File != filepath.Join(dir, "GO-2024-0001.json") || !strings.Contains(s.Reason, tc.dropped) {
				t.Errorf("skip = %+v, want GO-2024-0001 in its file, saying %q", s, tc.dropped)
			}
			if len(s.Reason) > 1024 {
				t.Errorf("skip reason is %d bytes long; a user reads it", len(s.Reason))
			}
			// The record is a Go advisory whichever entry the feed lists first.
			if len(got.Feeds) != 1 || got.Feeds[0].Name != "osv:Go" {
				t.Errorf("feeds = %v, want the record in osv:Go", feedIDs(got))
			}
		})
	}
}

func TestLoadFormat(t *testing.T) {
	// An OSV record whose id comes after the 4 KiB that detection reads:
	// detection cannot claim it, --format osv can.
	lateID := `{"details": "` + strings.Repeat("d", 5000) + `", "id": "GO-2024-0001", "modified": "2024-01-01T00:00:00Z", ` +
		`"affected": [{"package": {"ecosystem": "Go", "name": "example.com/m"}, "ranges": [{"type": "SEMVER", "events": [{"introduced": "0"}, {"fixed": "1.0.0"}]}]}]}`
	dir := writeTree(t, t.TempDir(), map[string]string{"GO-2024-0001.json": lateID})
	path := filepath.Join(dir, "GO-2024-0001.json")

	got, err := feed.Load(context.Background(), []string{path}, "", feed.Options{})
	checkLoadErr(t, got, err, path)

	got = load(t, []string{path}, "", feed.Options{Format: "osv"})
	if ids := feedIDs(got); !reflect.DeepEqual(ids, map[string][]string{"osv:Go": {"GO-2024-0001"}}) {
		t.Errorf("--format osv: feeds = %v", ids)
	}

	for _, name := range []string{"OSV", "json", "yaml", " osv"} {
		got, err := feed.Load(context.Background(), []string{path}, "", feed.Options{Format: name})
		checkLoadErr(t, got, err, fmt.Sprintf("%q", name), "osv, ghsa, debian, alpine, nvd")
	}
	for _, f := range feed.Formats {
		if feed.FormatByName(f.Name()) != f {
			t.Errorf("FormatByName(%q) is not the registered format", f.Name())
		}
	}
}

// TestLoadDeterministic loads the same tree, with duplicates, skips and
// several feeds, repeatedly and expects the same result each time.
func TestLoadDeterministic(t *testing.T) {
	files := map[string]string{"README.md": "readme"}
	for i := range 300 {
		id := fmt.Sprintf("GO-2024-%04d", i%250) // 50 duplicates
		modified := jan
		if i%3 == 0 {
			modified = jun
		}
		affected := []osvTestAffected{aff("Go", fmt.Sprintf("example.com/m%d", i), "0", "1.2.3")}
		if i%7 == 0 {
			affected = append(affected, aff("NotAnEcosystem", "x", "0", "1"))
		}
		if i%11 == 0 {
			id = fmt.Sprintf("PYSEC-2024-%d", i)
			affected = []osvTestAffected{aff("PyPI", fmt.Sprintf("pkg%d", i), "0", "1.0")}
		}
		files[fmt.Sprintf("d%d/rec-%03d.json", i%5, i)] = osvDoc(id, modified, fmt.Sprint("file ", i), affected...)
	}
	dir := writeTree(t, t.TempDir(), files)
	first := load(t, []string{dir}, "", feed.Options{})
	if len(first.Feeds) != 2 || len(first.Skipped) == 0 {
		t.Fatalf("fixture gave feeds %d, skipped %d; want 2 feeds and skips", len(first.Feeds), len(first.Skipped))
	}
	for range 5 {
		again := load(t, []string{dir}, "", feed.Options{})
		if !reflect.DeepEqual(first, again) {
			t.Fatalf("second load differs from the first:\nfirst  %v\nsecond %v", feedIDs(first), feedIDs(again))
		}
	}
}

func TestLoadSource(t *testing.T) {
	root := t.TempDir()
	goDir := writeTree(t, filepath.Join(root, "go"), map[string]string{"GO-2024-0001.json": osvDoc("GO-2024-0001", jan, "")})
	pyDir := writeTree(t, filepath.Join(root, "py"), map[string]string{
		"PYSEC-2024-1.json": osvDoc("PYSEC-2024-1", jan, "", aff("PyPI", "requests", "0", "2.0")),
	})
	goFile := filepath.Join(root, "GO-2024-0002.json")
	writeTree(t, root, map[string]string{"GO-2024-0002.json": osvDoc("GO-2024-0002", jan, "")})
	goZip := writeZip(t, filepath.Join(root, "go.zip"), zipEntry{"GO-2024-0003.json", osvDoc("GO-2024-0003", jan, "")})

	for _, tc := range []struct {
		name   string
		paths  []string
		source string
		want   map[string]string // feed → Source
	}{
		{"one folder", []string{goDir}, "", map[string]string{"osv:Go": goDir}},
		{"one file", []string{goFile}, "", map[string]string{"osv:Go": goFile}},
		{"one zip", []string{goZip}, "", map[string]string{"osv:Go": goZip}},
		{"each feed its own path", []string{goDir, pyDir}, "", map[string]string{"osv:Go": goDir, "osv:PyPI": pyDir}},
		{"one feed from two paths", []string{goDir, pyDir, goZip}, "", map[string]string{"osv:Go": goDir + " " + goZip, "osv:PyPI": pyDir}},
		{"given source", []string{goDir, pyDir}, "https://osv.dev/all.zip", map[string]string{"osv:Go": "https://osv.dev/all.zip", "osv:PyPI": "https://osv.dev/all.zip"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := load(t, tc.paths, tc.source, feed.Options{})
			sources := map[string]string{}
			for _, f := range got.Feeds {
				sources[f.Name] = f.Source
			}
			if !reflect.DeepEqual(sources, tc.want) {
				t.Errorf("sources = %v, want %v", sources, tc.want)
			}
		})
	}
}

// TestLoadUpstreamZips loads the real Go and PyPA databases as zipped
// checkouts.
func TestLoadUpstreamZips(t *testing.T) {
	if testing.Short() {
		t.Skip("reads the real databases")
	}
	for _, tc := range []struct {
		zip     string
		feed    string
		records int
		ignored int
	}{
		{"go-vulndb.zip", "osv:Go", 4789, 2},                // data/LICENSE, data/NOTICES
		{"pypa-advisory-database.zip", "osv:PyPI", 2661, 2}, // LICENSE, vulns/.id-allocator
	} {
		t.Run(tc.zip, func(t *testing.T) {
			path := feed.Vulndata(tc.zip)
			got := load(t, []string{path}, "", feed.Options{})
			for i, s := range got.Skipped {
				if i == 20 {
					t.Errorf("... and %d more skips", len(got.Skipped)-20)
					break
				}
				t.Errorf("skipped %s: %s: %s", s.File, s.Record, s.Reason)
			}
			if len(got.Feeds) != 1 {
				var names []string
				for _, f := range got.Feeds {
					names = append(names, fmt.Sprintf("%s (%d)", f.Name, len(f.Advisories)))
				}
				t.Fatalf("feeds %v, want only %s", names, tc.feed)
			}
			f := got.Feeds[0]
			if f.Name != tc.feed || len(f.Advisories) != tc.records || f.Skipped != 0 || f.Format != "osv" || f.Source != path {
				t.Errorf("feed %s: %d records, %d skipped, format %s, source %s; want %s: %d, 0, osv, %s",
					f.Name, len(f.Advisories), f.Skipped, f.Format, f.Source, tc.feed, tc.records, path)
			}
			if got.Files != tc.records || got.Ignored != tc.ignored {
				t.Errorf("Files %d, Ignored %d; want %d, %d", got.Files, got.Ignored, tc.records, tc.ignored)
			}
			for i := 1; i < len(f.Advisories); i++ {
				if f.Advisories[i-1].ID >= f.Advisories[i].ID {
					t.Fatalf("advisories out of order or repeated: %s then %s", f.Advisories[i-1].ID, f.Advisories[i].ID)
				}
			}
		})
	}
}

// FuzzLoadZip feeds arbitrary bytes to Load as a .zip file, with small
// limits: Load must not panic, and must return either a result or an error.
func FuzzLoadZip(f *testing.F) {
	f.Add(zipOf(f, zipEntry{"GO-2024-0001.json", osvDoc("GO-2024-0001", jan, "")}))
	f.Add(zipOf(f))
	f.Add(zipOf(f, zipEntry{"d/", ""}, zipEntry{"d/PYSEC-1.yaml", "id: PYSEC-1\nmodified: 2024-01-01T00:00:00Z\naffected:\n- package: {ecosystem: PyPI, name: x}\n  versions: ['1.0']\n"},
		zipEntry{"LICENSE", "licence"}, zipEntry{"GO-2024-0001.json", osvDoc("GO-2024-0001", jan, "")}, zipEntry{"GO-2024-0001b.json", osvDoc("GO-2024-0001", jun, "")}))
	f.Add(storedZipOf(f, zipEntry{"GO-2024-0001.json", osvDoc("GO-2024-0001", jan, "", aff("Go", "example.com/m", "0", "1.2.3"), aff("npm", "left-pad", "1.0.0", "1.3.0"))},
		zipEntry{"GO-2024-0001-dup.json", osvDoc("GO-2024-0001", jun, "")},
		zipEntry{"PYSEC-1.yaml", "id: PYSEC-1\nmodified: 2024-01-01T00:00:00Z\naffected:\n- package: {ecosystem: PyPI, name: Foo_Bar}\n  ranges:\n  - type: ECOSYSTEM\n    events: [{introduced: '0'}, {fixed: '1.0'}]\n"}))
	f.Add(bombZip(f, 1<<16, 100))
	f.Add([]byte("PK\x03\x04 random bytes \x00\xff\x13"))
	f.Add([]byte{})
	opts := feed.Options{Limits: feed.Limits{MaxFileBytes: 32 << 10, MaxTotalBytes: 128 << 10, MaxFiles: 32}}
	f.Fuzz(func(t *testing.T, data []byte) {
		path := filepath.Join(t.TempDir(), "all.zip")
		if err := os.WriteFile(path, data, 0o644); err != nil {
			t.Fatal(err)
		}
		got, err := feed.Load(context.Background(), []string{path}, "", opts)
		if err != nil {
			if got != nil {
				t.Fatalf("Load returned %d feeds along with error %v", len(got.Feeds), err)
			}
			if !strings.Contains(err.Error(), path) {
				t.Fatalf("error %q does not name %s", err, path)
			}
			return
		}
		if got == nil {
			t.Fatal("Load returned nil and no error")
		}
		if got.Files+got.Ignored > opts.Limits.MaxFiles {
			t.Fatalf("read %d files, over MaxFiles %d", got.Files+got.Ignored, opts.Limits.MaxFiles)
		}
		skipped := 0
		for _, fd := range got.Feeds {
			skipped += fd.Skipped
			for i := 1; i < len(fd.Advisories); i++ {
				if fd.Advisories[i-1].ID >= fd.Advisories[i].ID {
					t.Fatalf("feed %s: advisories out of order or repeated: %s then %s", fd.Name, fd.Advisories[i-1].ID, fd.Advisories[i].ID)
				}
			}
		}
		if skipped > len(got.Skipped) {
			t.Fatalf("feeds count %d skips, Loaded.Skipped lists %d", skipped, len(got.Skipped))
		}
	})
}
