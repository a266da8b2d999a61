package feed

import (
	"archive/zip"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/scangate/scangate/internal/vulndb"
)

// vulndataRoot is the repository's one copy of real upstream feed data; its
// NOTICE.md names the source, commit and licence of every file. The tests
// read upstream data from there only: it is always present, so no test
// skips for want of it.
var vulndataRoot = filepath.Join("..", "..", "testdata", "vulndata")

// vulndata returns the path of a file or folder of testdata/vulndata, given
// slash-separated ("nvd/CVE-2023-45853.json"). It is the one place the feed
// tests spell where that data lives.
func vulndata(rel string) string {
	return filepath.Join(vulndataRoot, filepath.FromSlash(rel))
}

// Vulndata lets the external tests (package feed_test) use the same helper.
var Vulndata = vulndata

// Files of testdata/vulndata/formats that several tests name: format
// samples kept apart from the folders the import tests and the demo load
// whole (see NOTICE.md).
const (
	wolfiSample    = "formats/alpine/wolfi-secdb-sample/security.json"
	trackerSample  = "formats/debian/tracker-json-sample/debian.json"
	nvdFullPage    = "formats/nvd/api-2.0-sample/full-page.json"
	nvdSingleEntry = "formats/nvd/api-2.0-sample/single-entry.json"
	alpineV310Main = "alpine/v3.10-main.yaml" // alpine-secdb v3.10/main.yaml
)

// vulndataFile reads a file of testdata/vulndata.
func vulndataFile(t testing.TB, rel string) []byte {
	t.Helper()
	data, err := os.ReadFile(vulndata(rel))
	if err != nil {
		t.Fatal(err)
	}
	return data
}

// testdataFile reads a file of this package's own testdata (osv/: chosen
// records used as examples and fuzz seeds).
func testdataFile(t testing.TB, path string) []byte {
	t.Helper()
	data, err := os.ReadFile(filepath.Join("testdata", path))
	if err != nil {
		t.Fatal(err)
	}
	return data
}

// vulndataWalk calls fn for every regular file under the given folders of
// testdata/vulndata, in lexical order, failing the test on any error and if
// a folder holds no file.
func vulndataWalk(t *testing.T, fn func(path string, d fs.DirEntry), rels ...string) {
	t.Helper()
	for _, rel := range rels {
		n := 0
		err := filepath.WalkDir(vulndata(rel), func(path string, d fs.DirEntry, err error) error {
			if err != nil || d.IsDir() {
				return err
			}
			n++
			fn(path, d)
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		if n == 0 {
			t.Fatalf("no file in %s", vulndata(rel))
		}
	}
}

// vulndataZip calls fn for every file entry of a zip of testdata/vulndata,
// with its name inside the zip and its content.
func vulndataZip(t *testing.T, rel string, fn func(name string, data []byte)) {
	t.Helper()
	zr, err := zip.OpenReader(vulndata(rel))
	if err != nil {
		t.Fatal(err)
	}
	defer zr.Close()
	for _, f := range zr.File {
		if strings.HasSuffix(f.Name, "/") {
			continue // a folder
		}
		r, err := f.Open()
		if err != nil {
			t.Fatalf("%s: %s: %v", rel, f.Name, err)
		}
		data, err := io.ReadAll(r)
		r.Close()
		if err != nil {
			t.Fatalf("%s: %s: %v", rel, f.Name, err)
		}
		fn(f.Name, data)
	}
}

// badInput is a malformed or hostile file, and whether Parse must refuse it
// whole (otherwise it may only skip records).
type badInput struct {
	name, data string
	wantErr    bool
}

// checkBadInput parses each case as the file name: refusals must name the
// file, and skip messages must stay short whatever the input's size. It
// returns each case's result for format-specific checks.
func checkBadInput(t *testing.T, f Format, name string, tests []badInput) []Result {
	t.Helper()
	out := make([]Result, len(tests))
	for i, tt := range tests {
		res, err := f.Parse(name, []byte(tt.data))
		out[i] = res
		if (err != nil) != tt.wantErr {
			t.Errorf("%s: err = %v, want error %v", tt.name, err, tt.wantErr)
		}
		if err != nil && !strings.HasPrefix(err.Error(), name+": ") {
			t.Errorf("%s: error %.200q does not name the file", tt.name, err)
		}
		for _, s := range res.Skipped {
			if len(s.Record)+len(s.Reason) > 1000 {
				t.Errorf("%s: skip message of %d bytes", tt.name, len(s.Record)+len(s.Reason))
			}
		}
	}
	return out
}

// checkParsed is what every fuzzer asks of a parse that succeeded: each
// advisory has an ID and a feed and passes vulndb.Clean.
func checkParsed(t *testing.T, res Result) {
	t.Helper()
	for _, a := range res.Advisories {
		if a.ID == "" || a.Feed == "" {
			t.Fatalf("advisory without ID or Feed: %+v", a)
		}
		if _, err := vulndb.Clean(&a); err != nil {
			t.Fatalf("advisory %q: %v", a.ID, err)
		}
	}
}
