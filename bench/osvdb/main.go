// Command osvdb lays OSV records out as osv-scanner's offline databases:
// OUT/<ecosystem>/all.zip, one <id>.json per record, for
// `osv-scanner --offline` with OSV_SCANNER_LOCAL_DB_CACHE_DIRECTORY=<dir>
// (OUT being <dir>/osv-scanner).
//
// It reads zips of OSV records in JSON (the Go vulndb) or YAML (PyPA's
// advisory database): those records are copied as they are, YAML turned
// into JSON. A record goes in the database of each ecosystem it names (the
// part before ":", as osv.dev's exports do).
//
// The repository has no OSV data for npm or Debian, and offline
// osv-scanner refuses to scan an image with packages of an ecosystem it
// has no database for. -ghsa and -debian convert the fixtures scangate
// imports for them, so that both scanners match the same advisories:
//
//   - -ghsa DIR: GitHub advisories as aquasecurity/vuln-list stores them
//     (GraphQL shape) become OSV records with id GHSA-…, CVE aliases, and
//     SEMVER ranges from each VulnerableVersionRange (">= a, < b", "< b",
//     "<= b", "= b");
//
//   - -debian FILE: the Debian Security Tracker's JSON becomes DEBIAN-CVE-…
//     records of "Debian:<N>" (release from -debian-releases), one per source
//     package and CVE, as osv.dev's Debian converter makes them: open is
//     introduced 0; resolved is fixed at fixed_version; not-affected (and
//     a fixed version of 0) is left out.
//
//     go run ./bench/osvdb -out DIR/osv-scanner -ghsa testdata/vulndata/ghsa \
//     -debian testdata/vulndata/debian/tracker-json-bookworm-minbase.json \
//     testdata/vulndata/go-vulndb.zip testdata/vulndata/pypa-advisory-database.zip
package main

import (
	"archive/zip"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path"
	"path/filepath"
	"sort"
	"strings"

	"go.yaml.in/yaml/v3"
)

func main() {
	out := flag.String("out", "", "folder to write <ecosystem>/all.zip in")
	ghsa := flag.String("ghsa", "", "folder of GitHub advisories (vuln-list's GraphQL shape) to convert")
	debian := flag.String("debian", "", "Debian Security Tracker JSON to convert")
	releases := flag.String("debian-releases", "bookworm:12", "Debian releases to convert, codename:number, comma-separated")
	flag.Parse()
	if *out == "" {
		fmt.Fprintln(os.Stderr, "usage: osvdb -out DIR [-ghsa DIR] [-debian FILE] ZIP...")
		os.Exit(2)
	}
	if err := run(*out, flag.Args(), *ghsa, *debian, *releases); err != nil {
		fmt.Fprintln(os.Stderr, "osvdb:", err)
		os.Exit(1)
	}
}

type record struct {
	id   string
	data []byte
}

func run(out string, zips []string, ghsa, debian, releases string) error {
	byEco := map[string][]record{}
	for _, z := range zips {
		if err := readZip(z, byEco); err != nil {
			return fmt.Errorf("%s: %w", z, err)
		}
	}
	if ghsa != "" {
		if err := convertGHSA(ghsa, byEco); err != nil {
			return fmt.Errorf("%s: %w", ghsa, err)
		}
	}
	if debian != "" {
		if err := convertDebian(debian, releases, byEco); err != nil {
			return fmt.Errorf("%s: %w", debian, err)
		}
	}
	ecos := make([]string, 0, len(byEco))
	for e := range byEco {
		ecos = append(ecos, e)
	}
	sort.Strings(ecos)
	for _, e := range ecos {
		if err := writeZip(filepath.Join(out, e, "all.zip"), byEco[e]); err != nil {
			return err
		}
		fmt.Printf("osv-scanner offline database %s: %d records\n", filepath.Join(out, e, "all.zip"), len(byEco[e]))
	}
	return nil
}

func readZip(file string, byEco map[string][]record) error {
	zr, err := zip.OpenReader(file)
	if err != nil {
		return err
	}
	defer zr.Close()
	for _, f := range zr.File {
		ext := path.Ext(f.Name)
		if f.FileInfo().IsDir() || (ext != ".json" && ext != ".yaml" && ext != ".yml") {
			continue
		}
		rc, err := f.Open()
		if err != nil {
			return err
		}
		raw, err := io.ReadAll(rc)
		rc.Close()
		if err != nil {
			return fmt.Errorf("%s: %w", f.Name, err)
		}
		var v map[string]any
		if ext == ".json" {
			err = json.Unmarshal(raw, &v)
		} else {
			err = yaml.Unmarshal(raw, &v)
		}
		if err != nil {
			return fmt.Errorf("%s: %w", f.Name, err)
		}
		id, _ := v["id"].(string)
		if id == "" {
			continue // not an OSV record (an index, a licence in JSON)
		}
		data := raw
		if ext != ".json" {
			if data, err = json.Marshal(v); err != nil {
				return fmt.Errorf("%s: %w", f.Name, err)
			}
		}
		for _, e := range ecosystems(v) {
			byEco[e] = append(byEco[e], record{id, data})
		}
	}
	return nil
}

// ecosystems lists the ecosystems a record's affected packages name,
// without a release suffix ("Debian:12" is "Debian").
func ecosystems(v map[string]any) []string {
	seen := map[string]bool{}
	var out []string
	aff, _ := v["affected"].([]any)
	for _, a := range aff {
		am, _ := a.(map[string]any)
		pkg, _ := am["package"].(map[string]any)
		e, _ := pkg["ecosystem"].(string)
		e, _, _ = strings.Cut(e, ":")
		if e != "" && !seen[e] {
			seen[e] = true
			out = append(out, e)
		}
	}
	return out
}

func writeZip(file string, recs []record) error {
	if err := os.MkdirAll(filepath.Dir(file), 0o755); err != nil {
		return err
	}
	f, err := os.Create(file + ".tmp")
	if err != nil {
		return err
	}
	zw := zip.NewWriter(f)
	for _, r := range recs {
		w, err := zw.Create(r.id + ".json")
		if err == nil {
			_, err = w.Write(r.data)
		}
		if err != nil {
			f.Close()
			return err
		}
	}
	if err := errors.Join(zw.Close(), f.Close()); err != nil {
		return err
	}
	return os.Rename(file+".tmp", file)
}

// add stores a converted record under each of its ecosystems.
func add(byEco map[string][]record, v map[string]any) error {
	data, err := json.Marshal(v)
	if err != nil {
		return err
	}
	for _, e := range ecosystems(v) {
		byEco[e] = append(byEco[e], record{v["id"].(string), data})
	}
	return nil
}

// ghsaEcosystems maps GitHub's ecosystem names to OSV's.
var ghsaEcosystems = map[string]string{
	"NPM": "npm", "PIP": "PyPI", "GO": "Go", "MAVEN": "Maven", "RUBYGEMS": "RubyGems",
	"NUGET": "NuGet", "COMPOSER": "Packagist", "RUST": "crates.io", "PUB": "Pub",
}

type ghsaRecord struct {
	UpdatedAt string
	Package   struct{ Ecosystem, Name string }
	Advisory  struct {
		GhsaID      string `json:"GhsaId"`
		Summary     string
		Description string
		PublishedAt string
		WithdrawnAt string
		Identifiers []struct{ Type, Value string }
	}
	Versions []struct {
		FirstPatchedVersion    struct{ Identifier string }
		VulnerableVersionRange string
	}
}

func convertGHSA(dir string, byEco map[string][]record) error {
	return filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() || filepath.Ext(p) != ".json" {
			return err
		}
		raw, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		var g ghsaRecord
		if err := json.Unmarshal(raw, &g); err != nil {
			return fmt.Errorf("%s: %w", p, err)
		}
		eco := ghsaEcosystems[strings.ToUpper(g.Package.Ecosystem)]
		if g.Advisory.GhsaID == "" || eco == "" || g.Advisory.WithdrawnAt != "" {
			return nil
		}
		var aliases []string
		for _, id := range g.Advisory.Identifiers {
			if id.Type == "CVE" {
				aliases = append(aliases, id.Value)
			}
		}
		var ranges []any
		for _, v := range g.Versions {
			events, err := ghsaEvents(v.VulnerableVersionRange, v.FirstPatchedVersion.Identifier)
			if err != nil {
				return fmt.Errorf("%s: %w", p, err)
			}
			ranges = append(ranges, map[string]any{"type": "SEMVER", "events": events})
		}
		return add(byEco, map[string]any{
			"schema_version": "1.6.0",
			"id":             g.Advisory.GhsaID,
			"modified":       g.UpdatedAt,
			"published":      g.Advisory.PublishedAt,
			"aliases":        aliases,
			"summary":        g.Advisory.Summary,
			"details":        g.Advisory.Description,
			"affected": []any{map[string]any{
				"package": map[string]any{"ecosystem": eco, "name": g.Package.Name},
				"ranges":  ranges,
			}},
		})
	})
}

// ghsaEvents turns a GitHub range (">= 1.0.0, < 1.2.3") into OSV events.
func ghsaEvents(rng, patched string) ([]any, error) {
	introduced := "0"
	var end []any
	for _, part := range strings.Split(rng, ",") {
		part = strings.TrimSpace(part)
		op, v, ok := strings.Cut(part, " ")
		if !ok {
			return nil, fmt.Errorf("range %q", rng)
		}
		v = strings.TrimSpace(v)
		switch op {
		case ">=":
			introduced = v
		case "<":
			end = append(end, map[string]any{"fixed": v})
		case "<=":
			end = append(end, map[string]any{"last_affected": v})
		case "=":
			introduced = v
			end = append(end, map[string]any{"last_affected": v})
		default:
			return nil, fmt.Errorf("range %q: operator %q", rng, op)
		}
	}
	if len(end) == 0 && patched != "" {
		end = append(end, map[string]any{"fixed": patched})
	}
	return append([]any{map[string]any{"introduced": introduced}}, end...), nil
}

type trackerRelease struct {
	Status       string `json:"status"`
	FixedVersion string `json:"fixed_version"`
	Urgency      string `json:"urgency"`
}

func convertDebian(file, releases string, byEco map[string][]record) error {
	raw, err := os.ReadFile(file)
	if err != nil {
		return err
	}
	var tracker map[string]map[string]struct {
		Description string                    `json:"description"`
		Releases    map[string]trackerRelease `json:"releases"`
	}
	if err := json.Unmarshal(raw, &tracker); err != nil {
		return err
	}
	for _, rel := range strings.Split(releases, ",") {
		codename, number, ok := strings.Cut(rel, ":")
		if !ok {
			return fmt.Errorf("-debian-releases %q: want codename:number", rel)
		}
		srcs := make([]string, 0, len(tracker))
		for s := range tracker {
			srcs = append(srcs, s)
		}
		sort.Strings(srcs)
		for _, src := range srcs {
			cves := make([]string, 0, len(tracker[src]))
			for cve := range tracker[src] {
				cves = append(cves, cve)
			}
			sort.Strings(cves)
			for _, cve := range cves {
				e := tracker[src][cve]
				if !strings.HasPrefix(cve, "CVE-") {
					continue
				}
				r, ok := e.Releases[codename]
				if !ok || r.Status == "not-affected" || r.FixedVersion == "0" {
					continue
				}
				events := []any{map[string]any{"introduced": "0"}}
				if r.Status == "resolved" && r.FixedVersion != "" {
					events = append(events, map[string]any{"fixed": r.FixedVersion})
				}
				if err := add(byEco, map[string]any{
					"schema_version": "1.6.0",
					"id":             "DEBIAN-" + cve,
					"modified":       "2026-11-27T00:00:00Z",
					"upstream":       []string{cve},
					"aliases":        []string{cve},
					"details":        e.Description,
					"affected": []any{map[string]any{
						"package":            map[string]any{"ecosystem": "Debian:" + number, "name": src},
						"ranges":             []any{map[string]any{"type": "ECOSYSTEM", "events": events}},
						"ecosystem_specific": map[string]any{"urgency": r.Urgency},
					}},
				}); err != nil {
					return err
				}
			}
		}
	}
	return nil
}
