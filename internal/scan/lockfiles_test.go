package scan_test

import (
	"bufio"
	"fmt"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/scangate/scangate/internal/imagetest"
	"github.com/scangate/scangate/internal/scan"
)

// lockfiles is the folder of real lockfiles and manifests from other
// projects' fixtures (see its NOTICE).
var lockfiles = filepath.Join("testdata", "lockfiles")

// lockfileImage is an image holding every fixture lockfile under /srv (as
// /srv/<source>/<name>/<file>), Go's demo module under /srv/go-demo, and
// gem specifications where RubyGems installs them: a bundle's and
// Debian's. A gem's own source gemspec beside them is not read.
func lockfileImage(t *testing.T) v1.Image {
	t.Helper()
	var entries []imagetest.Entry
	err := filepath.WalkDir(lockfiles, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() || d.Name() == "NOTICE" || strings.HasSuffix(p, ".txt") && filepath.Dir(p) == lockfiles {
			return err
		}
		rel, err := filepath.Rel(lockfiles, p)
		if err != nil {
			return err
		}
		name := path.Join("srv", filepath.ToSlash(rel))
		switch filepath.Ext(p) {
		case ".gemspec":
			name = "usr/local/bundle/specifications/" + d.Name()
			if strings.Contains(p, "debian") {
				name = "usr/share/rubygems-integration/all/specifications/" + d.Name()
			}
		}
		entries = append(entries, imagetest.Entry{Name: name, Body: readFile(t, p)})
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{"go.mod", "go.sum"} {
		entries = append(entries, imagetest.Entry{Name: "srv/go-demo/" + f, Body: imagetest.ReadFixture(t, "go-demo", f)})
	}
	// A gem's source gemspec (the same rack, as a gem's folder holds it):
	// not an installed specification, so not read.
	entries = append(entries, imagetest.Entry{
		Name: "usr/local/bundle/gems/rack-2.2.22/rack.gemspec",
		Body: readFile(t, filepath.Join(lockfiles, "debian", "ruby-rack", "rack-2.2.22.gemspec")),
	})
	return imagetest.Build(t, imagetest.Layer(t, entries...))
}

// lockfileFeeds are the advisory feeds the cross-checks match against:
// the repository's fixture feeds for Go, PyPI and npm, and real GitHub
// advisories for Maven, RubyGems, NuGet, Packagist, crates.io and npm.
func lockfileFeeds() []string {
	var out []string
	for _, f := range []string{"go-vulndb.zip", "pypa-advisory-database.zip", "ghsa"} {
		out = append(out, filepath.Join(imagetest.Fixtures, f))
	}
	for _, eco := range []string{"maven", "rubygems", "nuget", "packagist", "crates.io", "npm"} {
		out = append(out, filepath.Join(feedFixtures, eco))
	}
	return out
}

// TestLockfilesCrossCheck scans an image of real lockfiles and manifests
// with `scangate scan` and compares every finding with the expected list
// (testdata/lockfiles/expected-findings.txt: advisory, package@version,
// file), and with what peer scanners report on the same files
// (peer-findings.txt). Where scangate and a peer differ, peer-findings.txt
// says which is right and why.
func TestLockfilesCrossCheck(t *testing.T) {
	r := scanArchive(t, importFeeds(t, lockfileFeeds()...), lockfileImage(t))

	// Every file yields its packages, each once.
	perFile := map[string]int{}
	seen := map[string]bool{}
	for _, p := range r.Packages {
		if strings.HasPrefix(p.Path, "/srv/") || strings.Contains(p.Path, "/specifications/") || strings.HasSuffix(p.Path, ".gemspec") {
			perFile[p.Path]++
		}
		key := p.Path + " " + p.Type + " " + strings.ToLower(p.Name) + "@" + p.Version
		if seen[key] {
			t.Errorf("%s listed twice", key)
		}
		seen[key] = true
		if p.Version == "" {
			t.Errorf("%s in %s has no version", p.Name, p.Path)
		}
	}
	for file, n := range map[string]int{
		"/srv/trivy/pip/requirements.txt":                                        7,  // MarkupSafe>2.0.0 is a range, not a pin
		"/srv/osv-scanner/python/requirements.txt":                               13, // "Flask==0.12.2" and "flask==0.12.2" are one package
		"/srv/trivy/pipenv/Pipfile.lock":                                         1,
		"/srv/trivy/poetry/poetry.lock":                                          3,
		"/srv/trivy/uv/uv.lock":                                                  3,
		"/srv/trivy/yarn/yarn.lock":                                              3,
		"/srv/osv-scanner/yarn/yarn.lock":                                        1,
		"/srv/trivy/pnpm/pnpm-lock.yaml":                                         2,
		"/srv/osv-scalibr/pnpm/pnpm-lock.yaml":                                   14,
		"/srv/osv-scalibr/ruby/Gemfile.lock":                                     46,
		"/usr/local/bundle/specifications/rss-0.2.9.gemspec":                     1,
		"/usr/share/rubygems-integration/all/specifications/rack-2.2.22.gemspec": 1,
		"/srv/trivy/composer/composer.lock":                                      2,
		"/srv/osv-scanner/php/composer.lock":                                     1,
		"/srv/trivy/cargo/Cargo.lock":                                            10,
		"/srv/trivy/trivy-ci-test/Cargo.lock":                                    74,
		"/srv/go-demo/go.mod":                                                    2, // the go line names no toolchain that built anything
		"/srv/trivy/nuget/packages.lock.json":                                    2,
		"/srv/trivy/dotnet/datacollector.deps.json":                              2,
		"/srv/trivy/gradle/gradle.lockfile":                                      1,
		"/srv/osv-scalibr/gradle/gradle.lockfile":                                5,
	} {
		if perFile[file] != n {
			t.Errorf("%s: %d packages, want %d", file, perFile[file], n)
		}
		delete(perFile, file)
	}
	for file, n := range perFile {
		t.Errorf("%s: %d packages from a file no fixture expects", file, n)
	}

	// The findings, exactly.
	got := map[string]bool{}
	for _, f := range r.Findings {
		p := r.Packages[f.Package]
		got[fmt.Sprintf("%s\t%s@%s\t%s", f.ID, p.Name, p.Version, p.Path)] = true
	}
	want := map[string]bool{}
	for _, line := range readLines(t, filepath.Join(lockfiles, "expected-findings.txt")) {
		want[line] = true
	}
	// Go's, from the repository's own cross-check of the demo module; the
	// go line of a go.mod names no toolchain that built anything, so
	// stdlib's are not expected.
	for _, line := range readLines(t, filepath.Join(imagetest.Fixtures, "go-demo", "expected-findings.naive.txt")) {
		f := strings.Fields(line)
		if len(f) >= 2 && !strings.HasPrefix(f[1], "stdlib@") {
			want[f[0]+"\t"+f[1]+"\t/srv/go-demo/go.mod"] = true
		}
	}
	for _, k := range sortedKeys(want) {
		if !got[k] {
			t.Errorf("missing finding %s", k)
		}
	}
	for _, k := range sortedKeys(got) {
		if !want[k] {
			t.Errorf("unexpected finding %s", k)
		}
	}

	// The peers: see peer-findings.txt for the verdicts.
	covered := map[string]bool{} // file and package the peers answered for
	accounted := map[string]bool{}
	for _, line := range readLines(t, filepath.Join(lockfiles, "peer-findings.txt")) {
		f := strings.Split(line, "\t")
		if len(f) < 5 || f[4] != "agree" && len(f) < 6 {
			t.Fatalf("peer-findings.txt: odd line %q (absent and scangate-only lines say why)", line)
		}
		peer, file, pkg, id, verdict := f[0], f[1], f[2], f[3], f[4]
		covered[file+" "+pkg] = true
		var match *scan.Finding
		for i, fd := range r.Findings {
			p := r.Packages[fd.Package]
			if p.Path == file && p.Name+"@"+p.Version == pkg && (fd.ID == id || slices.Contains(fd.Aliases, id)) {
				match = &r.Findings[i]
			}
		}
		switch verdict {
		case "agree", "scangate-only":
			if match == nil {
				t.Errorf("%s: %s for %s in %s, which scangate does not report", verdict, id, pkg, file)
				continue
			}
			accounted[file+" "+pkg+" "+match.ID] = true
		case "absent":
			if match != nil {
				t.Errorf("%s for %s in %s: peer-findings.txt says the fixture feeds lack it (%s), yet scangate reports it", id, pkg, file, f[5])
			}
		default:
			t.Fatalf("peer-findings.txt: %s: verdict %q", peer, verdict)
		}
	}
	for _, fd := range r.Findings {
		p := r.Packages[fd.Package]
		if k := p.Path + " " + p.Name + "@" + p.Version; covered[k] && !accounted[k+" "+fd.ID] {
			t.Errorf("%s on %s: a peer answered for this package, but peer-findings.txt does not say whether it agrees", fd.ID, k)
		}
	}
}

// readLines returns the lines of a file that are neither blank nor
// comments.
func readLines(t *testing.T, p string) []string {
	t.Helper()
	f, err := os.Open(p)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var out []string
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if line := strings.TrimRight(sc.Text(), " \t"); line != "" && !strings.HasPrefix(line, "#") {
			out = append(out, line)
		}
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

func sortedKeys(m map[string]bool) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}
