package feed

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/scangate/scangate/internal/vulndb"
	"go.yaml.in/yaml/v3"
)

// OSV reads Open Source Vulnerability records (https://ossf.github.io/osv-schema/),
// one per file, in JSON as osv.dev and the Go vulnerability database publish
// them, or in YAML as PyPA's advisory-database does.
type OSV struct{}

// Name returns "osv".
func (OSV) Name() string { return "osv" }

// Match reports whether head starts a JSON object, or a YAML mapping in a
// .yaml or .yml file, whose top level has "id" and one of "modified",
// "affected" or "schema_version", and none of the keys of GitHub's GraphQL
// advisories ("Advisory", "Package") or of NVD's CVE records
// ("sourceIdentifier", "vulnStatus"; CVE 5 records also have "affected").
func (OSV) Match(name string, head []byte) bool {
	keys, _ := osvTopKeys(name, head)
	if !keys["id"] || keys["Advisory"] || keys["Package"] || keys["sourceIdentifier"] || keys["vulnStatus"] {
		return false
	}
	return keys["modified"] || keys["affected"] || keys["schema_version"]
}

// osvRecord is the part of an OSV record scangate keeps. Dropped: credits,
// related, schema_version, affected[].severity, ecosystem_specific (the Go
// database's imported symbols) and database_specific other than severity.
type osvRecord struct {
	ID         string   `json:"id" yaml:"id"`
	Aliases    []string `json:"aliases" yaml:"aliases"`
	Upstream   []string `json:"upstream" yaml:"upstream"`
	Summary    string   `json:"summary" yaml:"summary"`
	Details    string   `json:"details" yaml:"details"`
	Published  string   `json:"published" yaml:"published"`
	Modified   string   `json:"modified" yaml:"modified"`
	Withdrawn  string   `json:"withdrawn" yaml:"withdrawn"`
	References []struct {
		URL string `json:"url" yaml:"url"`
	} `json:"references" yaml:"references"`
	Affected []struct {
		Package struct {
			Ecosystem string `json:"ecosystem" yaml:"ecosystem"`
			Name      string `json:"name" yaml:"name"`
			PURL      string `json:"purl" yaml:"purl"`
		} `json:"package" yaml:"package"`
		Ranges []struct {
			Type   string     `json:"type" yaml:"type"`
			Events []osvEvent `json:"events" yaml:"events"`
		} `json:"ranges" yaml:"ranges"`
		Versions []string `json:"versions" yaml:"versions"`
	} `json:"affected" yaml:"affected"`
	Severity []struct {
		Type  string `json:"type" yaml:"type"`
		Score string `json:"score" yaml:"score"`
	} `json:"severity" yaml:"severity"`
	// DatabaseSpecific is free-form; only a string "severity" is read.
	DatabaseSpecific any `json:"database_specific" yaml:"database_specific"`
}

// osvEvent is an OSV range event; vulndb.Event has no YAML names.
type osvEvent struct {
	Introduced   string `json:"introduced" yaml:"introduced"`
	Fixed        string `json:"fixed" yaml:"fixed"`
	LastAffected string `json:"last_affected" yaml:"last_affected"`
	Limit        string `json:"limit" yaml:"limit"`
}

// osvCVSSTypes maps OSV's CVSS severity types to the vector versions they allow.
var osvCVSSTypes = map[string][]vulndb.SeverityType{
	"CVSS_V2": {vulndb.CVSSv2},
	"CVSS_V3": {vulndb.CVSSv30, vulndb.CVSSv31},
	"CVSS_V4": {vulndb.CVSSv40},
}

// Parse decodes one OSV record, as YAML if name ends in .yaml or .yml and as
// JSON otherwise.
func (OSV) Parse(name string, data []byte) (Result, error) {
	var rec osvRecord
	if err := osvDecode(name, data, &rec); err != nil {
		return Result{}, fmt.Errorf("osv %s: %w", name, err)
	}
	var res Result
	id := strings.TrimSpace(rec.ID)
	if id == "" {
		res.Skipped = append(res.Skipped, Skip{File: name, Reason: "record has no id"})
		return res, nil
	}
	skip := func(format string, args ...any) {
		res.Skipped = append(res.Skipped, Skip{File: name, Record: id, Reason: fmt.Sprintf(format, args...)})
	}
	adv := vulndb.Advisory{
		ID:      id,
		Aliases: osvAliases(id, rec.Aliases, rec.Upstream),
		Summary: rec.Summary,
		Details: rec.Details,
	}
	var err error
	if adv.Published, adv.Modified, adv.Withdrawn, err = osvTimes(rec.Published, rec.Modified, rec.Withdrawn); err != nil {
		skip("%v", err)
		return res, nil
	}
	for _, r := range rec.References {
		if r.URL != "" {
			adv.References = append(adv.References, r.URL)
		}
	}
	for _, a := range rec.Affected {
		eco, pkg := a.Package.Ecosystem, a.Package.Name
		if eco == "" || pkg == "" {
			continue // GIT-only entries name a repository, not a package
		}
		aff := vulndb.Affected{Ecosystem: eco, Package: vulndb.NormalizePackage(eco, pkg), PURL: a.Package.PURL}
		for _, v := range a.Versions {
			if v != "" {
				aff.Versions = append(aff.Versions, v)
			}
		}
		for _, r := range a.Ranges {
			t := vulndb.RangeType(r.Type)
			if t != vulndb.RangeEcosystem && t != vulndb.RangeSemver && t != vulndb.RangeGit {
				continue
			}
			rng := vulndb.Range{Type: t}
			for _, e := range r.Events {
				ev := vulndb.Event(e)
				switch n := osvEventFields(ev); {
				case n > 1:
					skip("%s range event %s sets more than one of introduced, fixed, last_affected, limit", t, osvClip(fmt.Sprintf("%+v", e)))
					return res, nil
				case n == 1:
					rng.Events = append(rng.Events, ev)
				}
			}
			if len(rng.Events) > 0 {
				aff.Ranges = append(aff.Ranges, rng)
			}
		}
		adv.Affected = append(adv.Affected, aff)
	}
	adv.Feed = osvFeed(adv.Affected)
	if adv.Feed == "osv:Ubuntu" {
		ubuntuPriorities(name, data, &adv) // ubuntu.go
	}
	source := "osv"
	if strings.HasPrefix(id, "GHSA-") {
		source = "ghsa"
	}
	for _, s := range rec.Severity {
		want, ok := osvCVSSTypes[s.Type]
		if !ok {
			continue // Ubuntu's words and future types
		}
		sev, err := vulndb.CVSS(s.Score)
		if err != nil {
			skip("dropped %s severity: %v", s.Type, err)
			continue
		}
		if !slices.Contains(want, sev.Type) {
			skip("dropped %s severity: vector %q is %s", s.Type, sev.Vector, sev.Type)
			continue
		}
		sev.Source = source
		adv.Severities = append(adv.Severities, sev)
	}
	if ds, ok := rec.DatabaseSpecific.(map[string]any); ok {
		if word, ok := ds["severity"].(string); ok {
			if sev, ok := ghsaRating(word); ok {
				adv.Severities = append(adv.Severities, sev)
			}
		}
	}
	res.Advisories = append(res.Advisories, adv)
	return res, nil
}

// osvFeed names a record's feed after the ecosystem, without its release,
// of the first affected package whose versions scangate can order (the
// others are dropped at import), or else of the first one: "osv:Debian".
func osvFeed(affected []vulndb.Affected) string {
	feed := "osv"
	for i, af := range affected {
		base, _, _ := strings.Cut(af.Ecosystem, ":")
		if base == "" {
			continue
		}
		if vulndb.KnownEcosystem(base) {
			return "osv:" + base
		}
		if i == 0 {
			feed = "osv:" + base
		}
	}
	return feed
}

// osvEventFields counts the fields an event sets; OSV allows one.
func osvEventFields(e vulndb.Event) int {
	n := 0
	for _, s := range []string{e.Introduced, e.Fixed, e.LastAffected, e.Limit} {
		if s != "" {
			n++
		}
	}
	return n
}

// osvClip shortens s for a message.
func osvClip(s string) string {
	if len(s) > 64 {
		return s[:64] + "..."
	}
	return s
}

// osvAliases joins the alias lists without blanks, repeats or id itself.
func osvAliases(id string, lists ...[]string) []string {
	var out []string
	seen := map[string]bool{id: true}
	for _, l := range lists {
		for _, a := range l {
			a = strings.TrimSpace(a)
			if a != "" && !seen[a] {
				seen[a] = true
				out = append(out, a)
			}
		}
	}
	return out
}

// osvTimes parses the published, modified and withdrawn times, each RFC 3339
// or empty.
func osvTimes(published, modified, withdrawn string) (p, m, w time.Time, err error) {
	parse := func(field, s string) time.Time {
		if s == "" || err != nil {
			return time.Time{}
		}
		t, perr := time.Parse(time.RFC3339, s)
		if perr != nil {
			err = fmt.Errorf("%s time %q is not RFC 3339", field, osvClip(s))
		}
		return t
	}
	return parse("published", published), parse("modified", modified), parse("withdrawn", withdrawn), err
}

// osvIsYAML reports whether a file name is a YAML file's.
func osvIsYAML(name string) bool {
	n := strings.ToLower(name)
	return strings.HasSuffix(n, ".yaml") || strings.HasSuffix(n, ".yml")
}

// osvMaxYAMLNodes bounds the nodes a YAML document may expand to through
// aliases, so that an alias bomb fails fast instead of exhausting memory.
const osvMaxYAMLNodes = 1 << 20

// osvDecode decodes one JSON object, or one YAML mapping if name is a YAML
// file's, into v.
func osvDecode(name string, data []byte, v any) error {
	data = bytes.TrimPrefix(data, []byte("\xef\xbb\xbf"))
	if !osvIsYAML(name) {
		trimmed := bytes.TrimLeft(data, " \t\r\n")
		if len(trimmed) == 0 || trimmed[0] != '{' {
			return errors.New("not a JSON object")
		}
		return json.Unmarshal(data, v)
	}
	var doc yaml.Node
	if err := yaml.Unmarshal(data, &doc); err != nil {
		return err
	}
	if doc.Kind != yaml.DocumentNode || len(doc.Content) != 1 {
		return errors.New("empty YAML document")
	}
	root := doc.Content[0]
	if root.Kind != yaml.MappingNode {
		return fmt.Errorf("YAML top level is a %s, not a mapping", osvKind(root))
	}
	if _, err := osvYAMLSize(root, map[*yaml.Node]int{}); err != nil {
		return err
	}
	return root.Decode(v)
}

// osvKind names a YAML node's kind for a message.
func osvKind(n *yaml.Node) string {
	switch n.Kind {
	case yaml.SequenceNode:
		return "list"
	case yaml.ScalarNode:
		return "scalar"
	case yaml.AliasNode:
		return "alias"
	}
	return "node"
}

// osvYAMLSize counts the nodes n expands to, following aliases, and fails
// past osvMaxYAMLNodes or on an alias that contains itself.
func osvYAMLSize(n *yaml.Node, memo map[*yaml.Node]int) (int, error) {
	if n == nil {
		return 0, nil
	}
	if size, ok := memo[n]; ok {
		if size < 0 {
			return 0, errors.New("YAML alias contains itself")
		}
		return size, nil
	}
	memo[n] = -1
	size, err := osvYAMLSize(n.Alias, memo)
	if err != nil {
		return 0, err
	}
	for _, c := range n.Content {
		s, err := osvYAMLSize(c, memo)
		if err != nil {
			return 0, err
		}
		if size += s; size >= osvMaxYAMLNodes {
			return 0, fmt.Errorf("YAML document expands past %d nodes through aliases", osvMaxYAMLNodes)
		}
	}
	size++
	memo[n] = size
	return size, nil
}

// osvTopKeys returns the top-level keys in head, the start of a JSON object
// or of a YAML mapping in a YAML file; complete reports whether head held
// the whole JSON object. A JSON "id" counts only if its value is a string.
func osvTopKeys(name string, head []byte) (keys map[string]bool, complete bool) {
	keys = map[string]bool{}
	head = bytes.TrimPrefix(head, []byte("\xef\xbb\xbf"))
	trimmed := bytes.TrimLeft(head, " \t\r\n")
	if len(trimmed) > 0 && trimmed[0] == '{' {
		dec := json.NewDecoder(bytes.NewReader(trimmed))
		if _, err := dec.Token(); err != nil {
			return keys, false
		}
		for dec.More() {
			tok, err := dec.Token()
			if err != nil {
				return keys, false
			}
			key, _ := tok.(string)
			keys[key] = key != "id" // a cut-off value still names its key
			var val json.RawMessage
			if err := dec.Decode(&val); err != nil {
				return keys, false
			}
			keys[key] = key != "id" || val[0] == '"'
		}
		_, err := dec.Token()
		return keys, err == nil
	}
	if !osvIsYAML(name) {
		return keys, false
	}
	// Block-style YAML: a top-level key starts a line and ends at a colon.
	sc := bufio.NewScanner(bytes.NewReader(head))
	for sc.Scan() {
		line := sc.Text()
		if line == "" || strings.ContainsRune(" \t#-%", rune(line[0])) {
			continue
		}
		key, _, ok := strings.Cut(line, ":")
		if !ok {
			continue
		}
		keys[strings.Trim(strings.TrimSpace(key), `"'`)] = true
	}
	return keys, false
}
