package report

import (
	"encoding/json"
	"fmt"
	"io"
	"net/url"
	"slices"
	"strconv"
	"strings"

	"github.com/scangate/scangate/internal/scan"
	"github.com/scangate/scangate/internal/vulndb"
)

// sarifSchemaURI is the OASIS SARIF 2.1.0 (errata 01) schema, which the
// log's $schema names.
const sarifSchemaURI = "https://docs.oasis-open.org/sarif/sarif/v2.1.0/errata01/os/schemas/sarif-schema-2.1.0.json"

// The subset of SARIF 2.1.0 scangate writes. Field order follows the
// specification's examples.
type sarifLog struct {
	Schema  string     `json:"$schema"`
	Version string     `json:"version"`
	Runs    []sarifRun `json:"runs"`
}

type sarifRun struct {
	Tool       sarifTool      `json:"tool"`
	Results    []sarifResult  `json:"results"`
	ColumnKind string         `json:"columnKind"`
	Properties map[string]any `json:"properties,omitempty"`
}

type sarifTool struct {
	Driver sarifDriver `json:"driver"`
}

type sarifDriver struct {
	Name           string      `json:"name"`
	FullName       string      `json:"fullName"`
	Version        string      `json:"version"`
	InformationURI string      `json:"informationUri"`
	Rules          []sarifRule `json:"rules"`
}

type sarifRule struct {
	ID                   string              `json:"id"`
	ShortDescription     sarifText           `json:"shortDescription"`
	FullDescription      sarifText           `json:"fullDescription"`
	DefaultConfiguration sarifRuleConfig     `json:"defaultConfiguration"`
	HelpURI              string              `json:"helpUri,omitempty"`
	Help                 sarifMultiformat    `json:"help"`
	Properties           sarifRuleProperties `json:"properties"`
}

type sarifText struct {
	Text string `json:"text"`
}

type sarifMultiformat struct {
	Text     string `json:"text"`
	Markdown string `json:"markdown,omitempty"`
}

type sarifRuleConfig struct {
	Level string `json:"level"`
}

type sarifRuleProperties struct {
	// SecuritySeverity is read by GitHub code scanning to rank alerts: a
	// CVSS-like score as a string ("9.8").
	SecuritySeverity string   `json:"security-severity,omitempty"`
	Precision        string   `json:"precision"`
	Tags             []string `json:"tags"`
}

type sarifResult struct {
	RuleID       string             `json:"ruleId"`
	RuleIndex    int                `json:"ruleIndex"`
	Level        string             `json:"level"`
	Message      sarifText          `json:"message"`
	Locations    []sarifLocation    `json:"locations"`
	Suppressions []sarifSuppression `json:"suppressions,omitempty"`
	Properties   map[string]any     `json:"properties,omitempty"`
}

type sarifLocation struct {
	PhysicalLocation sarifPhysicalLocation `json:"physicalLocation"`
	Message          *sarifText            `json:"message,omitempty"`
}

type sarifPhysicalLocation struct {
	ArtifactLocation sarifArtifactLocation `json:"artifactLocation"`
	Region           sarifRegion           `json:"region"`
}

type sarifArtifactLocation struct {
	URI string `json:"uri"`
}

// sarifRegion points at the start of the file: packages have no line, but
// GitHub code scanning drops results without a region.
type sarifRegion struct {
	StartLine   int `json:"startLine"`
	StartColumn int `json:"startColumn"`
	EndLine     int `json:"endLine"`
	EndColumn   int `json:"endColumn"`
}

type sarifSuppression struct {
	Kind          string `json:"kind"`
	Status        string `json:"status"`
	Justification string `json:"justification,omitempty"`
}

// writeSARIF writes one SARIF run: a rule per advisory ID, a result per
// finding. Suppressed findings are included with a suppression, SARIF's way
// of saying a result was reviewed and does not count.
func writeSARIF(w io.Writer, r *scan.Report, opts Options) error {
	order := sortedFindings(r)

	// Rules, one per advisory ID, sorted by ID; each takes its ratings
	// from the most severe finding of that ID.
	ruleOf := map[string]int{}
	var ids []string
	worst := map[string]*scan.Finding{}
	for _, i := range order {
		f := &r.Findings[i]
		if prev, ok := worst[f.ID]; !ok || moreSevere(f, prev) {
			worst[f.ID] = f
		}
		if _, ok := ruleOf[f.ID]; !ok {
			ruleOf[f.ID] = -1
			ids = append(ids, f.ID)
		}
	}
	slices.Sort(ids)
	rules := make([]sarifRule, len(ids))
	for i, id := range ids {
		ruleOf[id] = i
		rules[i] = sarifRuleFor(worst[id])
	}

	results := make([]sarifResult, 0, len(order))
	for _, i := range order {
		f := &r.Findings[i]
		p := &r.Packages[f.Package]
		sev := scan.Bucket(f.Severity)
		res := sarifResult{
			RuleID:    f.ID,
			RuleIndex: ruleOf[f.ID],
			Level:     sarifLevel(sev),
			Message: sarifText{Text: fmt.Sprintf("Package %s %s is affected by %s (%s); %s",
				p.Name, p.Version, f.ID, sev, fixedText(f))},
			Locations: []sarifLocation{{
				PhysicalLocation: sarifPhysicalLocation{
					ArtifactLocation: sarifArtifactLocation{URI: sarifURI(p.Path)},
					Region:           sarifRegion{StartLine: 1, StartColumn: 1, EndLine: 1, EndColumn: 1},
				},
				Message: &sarifText{Text: fmt.Sprintf("%s: %s@%s", r.Image.Ref, p.Name, p.Version)},
			}},
			Properties: sarifResultProperties(f, p),
		}
		if s := f.Suppressed; s != nil {
			just := s.Kind
			if s.Reason != "" {
				just += ": " + s.Reason
			}
			res.Suppressions = []sarifSuppression{{Kind: "external", Status: "accepted", Justification: just}}
		}
		results = append(results, res)
	}

	props := map[string]any{
		"imageRef":     r.Image.Ref,
		"configDigest": r.Image.ConfigDigest,
	}
	if r.Image.Digest != "" {
		props["imageDigest"] = r.Image.Digest
	}
	if r.Image.Repository != "" {
		props["repository"] = r.Image.Repository
	}
	if len(r.Image.Tags) > 0 {
		props["tags"] = r.Image.Tags
	}
	if r.OS != nil && r.OS.ID != "" {
		props["os"] = strings.TrimSpace(r.OS.ID + " " + r.OS.VersionID)
	}
	if r.VulnDB.Digest != "" {
		props["vulnDBDigest"] = r.VulnDB.Digest
	}

	log := sarifLog{
		Schema:  sarifSchemaURI,
		Version: "2.1.0",
		Runs: []sarifRun{{
			Tool: sarifTool{Driver: sarifDriver{
				Name:           toolName,
				FullName:       "scangate container vulnerability scanner",
				Version:        toolVersion(opts),
				InformationURI: toolInfoURI,
				Rules:          rules,
			}},
			Results:    results,
			ColumnKind: "utf16CodeUnits",
			Properties: props,
		}},
	}
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	enc.SetEscapeHTML(false)
	return enc.Encode(log)
}

// sarifRuleFor describes an advisory from its most severe finding.
func sarifRuleFor(f *scan.Finding) sarifRule {
	sev := scan.Bucket(f.Severity)
	short := f.Title
	if short == "" {
		short = f.ID
	}
	help := advisoryURL(f)
	text := fmt.Sprintf("Vulnerability %s\nSeverity: %s", f.ID, sev)
	md := fmt.Sprintf("**Vulnerability %s**\n\n| Severity | Fixed versions |\n| --- | --- |\n| %s | %s |", f.ID, sev, mdCell(fixedVersions(f)))
	if f.Title != "" {
		text += "\n" + f.Title
		md += "\n\n" + mdCell(f.Title)
	}
	if help != "" {
		text += "\n" + help
		md += "\n\n[" + f.ID + "](" + help + ")"
	}
	props := sarifRuleProperties{
		Precision: "very-high",
		Tags:      []string{"vulnerability", "security", sev},
	}
	if score := securitySeverity(f); score != "" {
		props.SecuritySeverity = score
	}
	return sarifRule{
		ID:                   f.ID,
		ShortDescription:     sarifText{Text: short},
		FullDescription:      sarifText{Text: short},
		DefaultConfiguration: sarifRuleConfig{Level: sarifLevel(sev)},
		HelpURI:              help,
		Help:                 sarifMultiformat{Text: text, Markdown: md},
		Properties:           props,
	}
}

// securitySeverity returns the score GitHub code scanning ranks an alert
// by (critical ≥ 9.0, high ≥ 7.0, medium ≥ 4.0, low > 0): the CVSS base
// score behind the finding's rating, else a score in the middle of the
// rating's band. Other sources' scores are left out on purpose: a CVE NVD
// scores 9.8 that Debian rates low counts as low, and the alert should say
// so. UNKNOWN ratings have no score.
func securitySeverity(f *scan.Finding) string {
	score := f.Score
	if score == 0 {
		switch scan.Bucket(f.Severity) {
		case vulndb.Critical:
			score = 9.5
		case vulndb.High:
			score = 8.0
		case vulndb.Medium:
			score = 5.5
		case vulndb.Low:
			score = 2.0
		default:
			return ""
		}
	}
	return strconv.FormatFloat(score, 'f', 1, 64)
}

// moreSevere reports whether a rates above b: by rating, then by score.
func moreSevere(a, b *scan.Finding) bool {
	if ra, rb := scan.SeverityRank(a.Severity), scan.SeverityRank(b.Severity); ra != rb {
		return ra < rb
	}
	return a.Score > b.Score
}

// sarifLevel maps a rating to a SARIF level.
func sarifLevel(sev string) string {
	switch sev {
	case vulndb.Critical, vulndb.High:
		return "error"
	case vulndb.Medium:
		return "warning"
	}
	return "note"
}

// sarifURI turns a path in the image into a relative URI reference.
func sarifURI(path string) string {
	path = strings.TrimLeft(path, "/")
	if path == "" {
		return "."
	}
	return (&url.URL{Path: path}).EscapedPath()
}

// sarifResultProperties carries what SARIF has no field for.
func sarifResultProperties(f *scan.Finding, p *scan.Package) map[string]any {
	props := map[string]any{
		"packageName":      p.Name,
		"installedVersion": p.Version,
		"packageType":      p.Type,
		"severity":         scan.Bucket(f.Severity),
		"feed":             f.Feed,
	}
	if p.PURL != "" {
		props["purl"] = p.PURL
	}
	if len(f.Fixed) > 0 {
		props["fixedVersions"] = f.Fixed
	}
	if f.Status != "" {
		props["status"] = string(f.Status)
	}
	if len(f.Aliases) > 0 {
		props["aliases"] = f.Aliases
	}
	return props
}

// mdCell escapes text for a Markdown table cell.
func mdCell(s string) string {
	return strings.NewReplacer("|", `\|`, "\n", " ", "\r", " ").Replace(s)
}

func isCVSS(t vulndb.SeverityType) bool {
	switch t {
	case vulndb.CVSSv2, vulndb.CVSSv30, vulndb.CVSSv31, vulndb.CVSSv40:
		return true
	}
	return false
}

// fixedVersions lists the versions that fix f, or says there is none.
func fixedVersions(f *scan.Finding) string {
	if !f.Fixable() {
		return "none yet"
	}
	return strings.Join(f.Fixed, ", ")
}
