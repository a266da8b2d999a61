package scan

import (
	"bytes"
	"context"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"testing/fstest"

	"github.com/google/osv-scalibr/extractor/filesystem"
	"github.com/google/osv-scalibr/inventory"
	"github.com/google/osv-scalibr/plugin"
)

// panicky is an extractor that panics, as a parser bug would.
type panicky struct{}

func (panicky) Name() string                         { return "test/panicky" }
func (panicky) Version() int                         { return 0 }
func (panicky) Requirements() *plugin.Capabilities   { return &plugin.Capabilities{} }
func (panicky) FileRequired(filesystem.FileAPI) bool { return true }
func (panicky) Extract(context.Context, *filesystem.ScanInput) (inventory.Inventory, error) {
	var m map[string]int
	m["boom"]++
	return inventory.Inventory{}, nil
}

// TestPanicFailsExtraction: a parser that panics fails its file's
// extraction (and so the scan) instead of the process.
func TestPanicFailsExtraction(t *testing.T) {
	in := &filesystem.ScanInput{Path: "app/yarn.lock", Reader: strings.NewReader("x")}
	for _, e := range []filesystem.Extractor{&manifest{Extractor: panicky{}}, guarded{panicky{}}} {
		_, err := e.Extract(context.Background(), in)
		if err == nil || !strings.Contains(err.Error(), "app/yarn.lock") || !strings.Contains(err.Error(), "test/panicky") {
			t.Errorf("%T: err = %v; want an error naming the file and the extractor", e, err)
		}
	}
}

// manifestNames are file names each manifest extractor reads.
var manifestNames = []string{
	"app/requirements.txt", "app/Pipfile.lock", "app/poetry.lock", "app/uv.lock", "app/yarn.lock",
	"app/pnpm-lock.yaml", "app/Gemfile.lock", "gems/specifications/x-1.0.gemspec", "app/composer.lock",
	"app/Cargo.lock", "app/go.mod", "app/app.deps.json", "app/packages.lock.json", "app/gradle.lockfile",
}

// FuzzManifests feeds every lockfile and manifest extractor, as the scan
// configures it, arbitrary contents under each name it reads: whatever the
// input, Extract returns (no panic, no runaway recursion), every package
// it reports has a version, and the same input gives the same packages
// (what a layer cache keyed by content relies on).
func FuzzManifests(f *testing.F) {
	_ = filepath.WalkDir(filepath.Join("testdata", "lockfiles"), func(p string, d fs.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			if data, err := os.ReadFile(p); err == nil && len(data) < 64<<10 {
				for i := range manifestNames {
					f.Add(uint8(i), data)
				}
			}
		}
		return nil
	})
	f.Add(uint8(9), []byte("x = "+strings.Repeat("[", 200)))
	f.Add(uint8(9), []byte("x = '''[[[''' \n y = \"\\\"[[\" # [[[\n"))
	f.Add(uint8(0), []byte("-r requirements/../../../etc/passwd\nflask==1 \\\n"))
	f.Add(uint8(10), []byte("module m\n\ngo 1.16\n\nrequire a.b/c v1.0.0\nreplace a.b/c => ../c\n"))

	plugins, err := Extractors()
	if err != nil {
		f.Fatal(err)
	}
	var manifests []*manifest
	for _, p := range plugins {
		if m, ok := p.(*manifest); ok {
			manifests = append(manifests, m)
		}
	}
	f.Fuzz(func(t *testing.T, which uint8, data []byte) {
		name := manifestNames[int(which)%len(manifestNames)]
		fsys := fstest.MapFS{
			name: {Data: data, Mode: 0o644},
			filepath.Join(filepath.Dir(name), "go.sum"): {Data: data, Mode: 0o644},
			"app/requirements/base.txt":                 {Data: data, Mode: 0o644},
		}
		info, err := fs.Stat(fsys, name)
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range manifests {
			if !m.FileRequired(headerAPI{path: name, info: info}) {
				continue
			}
			extract := func() []string {
				inv, err := m.Extract(context.Background(), &filesystem.ScanInput{FS: fsys, Path: name, Info: info, Reader: bytes.NewReader(data)})
				if err != nil {
					return nil
				}
				var out []string
				for _, p := range inv.Packages {
					if strings.TrimSpace(p.Version) == "" {
						t.Errorf("%s: package %q without a version", m.Name(), p.Name)
					}
					out = append(out, p.Name+"@"+p.Version)
				}
				slices.Sort(out) // some extractors list from a map
				return out
			}
			first, second := extract(), extract()
			if strings.Join(first, "\n") != strings.Join(second, "\n") {
				t.Errorf("%s: two extractions of one input differ:\n%q\n%q", m.Name(), first, second)
			}
		}
	})
}

// TestCheckTOML: brackets in strings and comments do not count; arrays and
// inline tables do, however they are spread over lines.
func TestCheckTOML(t *testing.T) {
	deep := strings.Repeat("[", maxTOMLDepth+1)
	for _, c := range []struct {
		doc string
		ok  bool
	}{
		{"a = \"" + deep + "\"\n", true},
		{"a = '" + deep + "'\n", true},
		{"a = \"\"\"\n" + deep + "\n\"\"\"\n", true},
		{"a = '''\n" + deep + "\n'''\n", true},
		{"a = \"\\\"" + deep + "\"\n", true}, // an escaped quote does not end the string
		{"# " + deep + "\na = 1\n", true},
		{"[[package]]\n[[package]]\nx = [[1, 2], [3]]\n", true},
		{"a = " + deep + strings.Repeat("]", maxTOMLDepth+1) + "\n", false},
		{"a = " + strings.Repeat("[\n", maxTOMLDepth+1) + "\n", false},
		{"a = " + strings.Repeat("{b = ", maxTOMLDepth+1) + "1" + strings.Repeat("}", maxTOMLDepth+1) + "\n", false},
		{"a = \"" + deep + "\nb = 1\n", false}, // a string left open at the end of its line
	} {
		if err := checkTOML([]byte(c.doc)); (err == nil) != c.ok {
			t.Errorf("checkTOML(%.40q) = %v, want ok %v", c.doc, err, c.ok)
		}
	}
}
