// Command compare prints every difference between scangate's JSON report
// of an image and another tool's output on the same image:
//
//	compare -osv OSV.json SCANGATE.json    osv-scanner's JSON (--all-packages): packages and findings
//	compare -sbom SBOM.cdx.json SCANGATE.json  a CycloneDX SBOM (trivy's): packages
//
// Packages are paired by kind (deb, golang, npm, pypi), name and version
// (Go versions without "v"; Debian packages by binary name; PyPI names as
// PEP 503 normalises them). scangate names the Go toolchain of a binary "go"
// where the others say "stdlib": they are paired, and the pairing is shown.
// Findings are paired per package when their ids or aliases share one id.
package main

import (
	"encoding/json"
	"flag"
	"fmt"
	"net/url"
	"os"
	"regexp"
	"sort"
	"strings"
)

type pkgKey struct{ kind, name, version string }

func (k pkgKey) String() string { return fmt.Sprintf("%-6s %s %s", k.kind, k.name, k.version) }

type finding struct {
	id  string
	ids map[string]bool // id and aliases
}

type side struct {
	name     string
	pkgs     map[pkgKey]bool
	findings map[pkgKey][]finding
}

func main() {
	osvFile := flag.String("osv", "", "osv-scanner JSON output (scan image --format json --all-packages)")
	sbomFile := flag.String("sbom", "", "CycloneDX JSON SBOM")
	flag.Parse()
	if flag.NArg() != 1 || (*osvFile == "") == (*sbomFile == "") {
		fmt.Fprintln(os.Stderr, "usage: compare (-osv FILE | -sbom FILE) SCANGATE.json")
		os.Exit(2)
	}
	sg, err := readScangate(flag.Arg(0))
	if err != nil {
		fail(err)
	}
	var other *side
	if *osvFile != "" {
		other, err = readOSV(*osvFile)
	} else {
		other, err = readSBOM(*sbomFile)
	}
	if err != nil {
		fail(err)
	}
	packages(sg, other)
	if *osvFile != "" {
		findings(sg, other)
	}
}

func fail(err error) {
	fmt.Fprintln(os.Stderr, "compare:", err)
	os.Exit(1)
}

func readJSON(file string, v any) error {
	data, err := os.ReadFile(file)
	if err != nil {
		return err
	}
	if err := json.Unmarshal(data, v); err != nil {
		return fmt.Errorf("%s: %w", file, err)
	}
	return nil
}

var pep503 = regexp.MustCompile(`[-_.]+`)

// key normalises a package: kind is the purl type.
func key(kind, name, version string) pkgKey {
	switch kind {
	case "golang":
		version = strings.TrimPrefix(strings.TrimPrefix(version, "go"), "v")
		if version == "(devel)" {
			version = "" // a binary's main module: trivy leaves the version out
		}
		if name == "go" {
			name = "stdlib"
		}
	case "pypi":
		name = pep503.ReplaceAllString(strings.ToLower(name), "-")
	}
	return pkgKey{kind, name, version}
}

var scangateKinds = map[string]string{
	"deb": "deb", "apk": "apk", "rpm": "rpm", "go-module": "golang", "go-stdlib": "golang",
	"npm": "npm", "python": "pypi", "java": "maven", "cargo": "cargo",
}

func readScangate(file string) (*side, error) {
	var r struct {
		Packages []struct{ Name, Version, Type string }
		Findings []struct {
			ID      string
			Aliases []string
			Package int
		}
	}
	if err := readJSON(file, &r); err != nil {
		return nil, err
	}
	s := &side{name: "scangate", pkgs: map[pkgKey]bool{}, findings: map[pkgKey][]finding{}}
	keys := make([]pkgKey, len(r.Packages))
	for i, p := range r.Packages {
		kind := scangateKinds[p.Type]
		if kind == "" {
			kind = p.Type
		}
		if kind == "golang" && p.Name == "go" {
			fmt.Printf("note: scangate lists the Go toolchain of a binary as package \"go\" %s (type %s); osv-scanner and trivy call it \"stdlib\", and so does the Go vulndb\n", p.Version, p.Type)
		}
		keys[i] = key(kind, p.Name, p.Version)
		s.pkgs[keys[i]] = true
	}
	for _, f := range r.Findings {
		if f.Package < 0 || f.Package >= len(keys) {
			return nil, fmt.Errorf("%s: finding %s: package %d out of range", file, f.ID, f.Package)
		}
		k := keys[f.Package]
		s.findings[k] = append(s.findings[k], newFinding(f.ID, f.Aliases))
	}
	return s, nil
}

func newFinding(id string, aliases []string) finding {
	f := finding{id: id, ids: map[string]bool{id: true}}
	for _, a := range aliases {
		f.ids[a] = true
	}
	// osv.dev's Debian records are DEBIAN-CVE-…: the CVE is the same id.
	if c, ok := strings.CutPrefix(id, "DEBIAN-"); ok {
		f.ids[c] = true
	}
	return f
}

var osvKinds = map[string]string{"Go": "golang", "npm": "npm", "PyPI": "pypi", "Maven": "maven", "crates.io": "cargo", "Alpine": "apk", "Debian": "deb", "Ubuntu": "deb"}

func readOSV(file string) (*side, error) {
	var r struct {
		Results []struct {
			Packages []struct {
				Package struct {
					Name          string
					OSPackageName string `json:"os_package_name"`
					Version       string
					Ecosystem     string
				}
				Vulnerabilities []struct {
					ID      string
					Aliases []string
				}
			}
		}
	}
	if err := readJSON(file, &r); err != nil {
		return nil, err
	}
	s := &side{name: "osv-scanner", pkgs: map[pkgKey]bool{}, findings: map[pkgKey][]finding{}}
	for _, res := range r.Results {
		for _, p := range res.Packages {
			eco, _, _ := strings.Cut(p.Package.Ecosystem, ":")
			kind := osvKinds[eco]
			if kind == "" {
				kind = strings.ToLower(eco)
			}
			name := p.Package.Name
			if p.Package.OSPackageName != "" {
				name = p.Package.OSPackageName
			}
			k := key(kind, name, p.Package.Version)
			s.pkgs[k] = true
			for _, v := range p.Vulnerabilities {
				s.findings[k] = append(s.findings[k], newFinding(v.ID, v.Aliases))
			}
		}
	}
	return s, nil
}

func readSBOM(file string) (*side, error) {
	var r struct {
		Components []struct {
			Type, Name, Version, PURL string
		}
	}
	if err := readJSON(file, &r); err != nil {
		return nil, err
	}
	s := &side{name: "trivy", pkgs: map[pkgKey]bool{}}
	for _, c := range r.Components {
		if c.PURL == "" {
			continue // the image, the OS, an application (a lockfile, a binary)
		}
		kind, name, version, err := parsePURL(c.PURL)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", file, err)
		}
		s.pkgs[key(kind, name, version)] = true
	}
	return s, nil
}

// parsePURL returns a purl's type, full name (namespace/name for Go and
// npm; the name alone for distributions) and version.
func parsePURL(p string) (kind, name, version string, err error) {
	rest, ok := strings.CutPrefix(p, "pkg:")
	if !ok {
		return "", "", "", fmt.Errorf("purl %q", p)
	}
	rest, _, _ = strings.Cut(rest, "#")
	rest, query, _ := strings.Cut(rest, "?")
	rest, version, _ = strings.Cut(rest, "@")
	kind, path, _ := strings.Cut(rest, "/")
	segs := strings.Split(path, "/")
	for i := range segs {
		if segs[i], err = url.PathUnescape(segs[i]); err != nil {
			return "", "", "", fmt.Errorf("purl %q: %w", p, err)
		}
	}
	if version, err = url.PathUnescape(version); err != nil {
		return "", "", "", fmt.Errorf("purl %q: %w", p, err)
	}
	switch kind {
	case "deb", "apk", "rpm":
		name = segs[len(segs)-1]
		// A distribution version's epoch is a qualifier in a purl.
		if q, err := url.ParseQuery(query); err == nil && q.Get("epoch") != "" && q.Get("epoch") != "0" {
			version = q.Get("epoch") + ":" + version
		}
	default:
		name = strings.Join(segs, "/")
	}
	return kind, name, version, nil
}

func sortedKeys(m map[pkgKey]bool) []pkgKey {
	out := make([]pkgKey, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].String() < out[j].String() })
	return out
}

func packages(sg, other *side) {
	var only1, only2 []pkgKey
	for _, k := range sortedKeys(sg.pkgs) {
		if !other.pkgs[k] {
			only1 = append(only1, k)
		}
	}
	for _, k := range sortedKeys(other.pkgs) {
		if !sg.pkgs[k] {
			only2 = append(only2, k)
		}
	}
	fmt.Printf("packages: scangate %d, %s %d (by kind: scangate %s; %s %s)\n", len(sg.pkgs), other.name, len(other.pkgs), byKind(sg.pkgs), other.name, byKind(other.pkgs))
	if len(only1)+len(only2) == 0 {
		fmt.Println("  the same packages")
	}
	for _, k := range only1 {
		fmt.Printf("  only scangate lists          %s\n", k)
	}
	for _, k := range only2 {
		fmt.Printf("  only %-23s %s\n", other.name+" lists", k)
	}
}

func byKind(m map[pkgKey]bool) string {
	n := map[string]int{}
	for k := range m {
		n[k.kind]++
	}
	kinds := make([]string, 0, len(n))
	for k := range n {
		kinds = append(kinds, k)
	}
	sort.Strings(kinds)
	var parts []string
	for _, k := range kinds {
		parts = append(parts, fmt.Sprintf("%s %d", k, n[k]))
	}
	return strings.Join(parts, ", ")
}

func findings(sg, other *side) {
	all := map[pkgKey]bool{}
	total1, total2 := 0, 0
	for k, fs := range sg.findings {
		all[k] = true
		total1 += len(fs)
	}
	for k, fs := range other.findings {
		all[k] = true
		total2 += len(fs)
	}
	fmt.Printf("findings: scangate %d, %s %d (package and advisory pairs)\n", total1, other.name, total2)
	same, diffs := 0, 0
	for _, k := range sortedKeys(all) {
		a, b := sg.findings[k], other.findings[k]
		for _, f := range a {
			if !containsMatch(b, f) {
				diffs++
				why := ""
				if !other.pkgs[k] {
					why = " (" + other.name + " does not list the package)"
				}
				fmt.Printf("  only scangate finds          %-16s in %s%s\n", f.id, k, why)
			} else {
				same++
			}
		}
		for _, f := range b {
			if !containsMatch(a, f) {
				diffs++
				why := ""
				if !sg.pkgs[k] {
					why = " (scangate does not list the package)"
				}
				fmt.Printf("  only %-23s %-16s in %s%s\n", other.name+" finds", f.id, k, why)
			}
		}
	}
	fmt.Printf("  %d findings in both, %d differences\n", same, diffs)
}

func containsMatch(fs []finding, f finding) bool {
	for _, g := range fs {
		for id := range f.ids {
			if g.ids[id] {
				return true
			}
		}
	}
	return false
}
