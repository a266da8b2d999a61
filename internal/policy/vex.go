package policy

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/scangate/scangate/internal/scan"
)

// Limits on a VEX document. A vendor's document for a whole distribution
// can hold thousands of statements; the limits keep a hostile one from
// costing much memory or time.
const (
	MaxVEXSize       = 8 << 20 // bytes
	MaxVEXStatements = 20_000
	maxVEXProducts   = 100_000 // products and subcomponents, in all statements
	maxVEXAliases    = 256     // per vulnerability
	maxVEXName       = 256     // bytes, for a vulnerability name or alias
	maxVEXText       = 300     // bytes of an impact statement kept in a reason
)

// VEXStatus is an OpenVEX status label.
type VEXStatus string

// The OpenVEX status labels. NotAffected and Fixed suppress the findings a
// statement matches; Affected and UnderInvestigation do not.
const (
	VEXNotAffected        VEXStatus = "not_affected"
	VEXAffected           VEXStatus = "affected"
	VEXFixed              VEXStatus = "fixed"
	VEXUnderInvestigation VEXStatus = "under_investigation"
)

// Suppresses reports whether a statement of this status makes the findings
// it matches not count.
func (s VEXStatus) Suppresses() bool { return s == VEXNotAffected || s == VEXFixed }

func (s VEXStatus) valid() bool {
	switch s {
	case VEXNotAffected, VEXAffected, VEXFixed, VEXUnderInvestigation:
		return true
	}
	return false
}

// validJustification reports whether j is one of the VEX status
// justification labels.
func validJustification(j string) bool {
	switch j {
	case "component_not_present", "vulnerable_code_not_present",
		"vulnerable_code_not_in_execute_path",
		"vulnerable_code_cannot_be_controlled_by_adversary",
		"inline_mitigations_already_exist":
		return true
	}
	return false
}

// A VEXStatement is one OpenVEX statement, with what it inherits from its
// document filled in.
type VEXStatement struct {
	// Vulnerability is the vulnerability's name and Aliases its other
	// names; a finding matches if its ID or one of its aliases equals any of
	// them, without case.
	Vulnerability string
	Aliases       []string
	// Products are what the statement is about. With none, it is about
	// whatever is scanned: every finding of the vulnerability matches.
	Products []VEXProduct
	Status   VEXStatus
	// Justification is the not_affected label and ImpactStatement the
	// author's own words.
	Justification   string
	ImpactStatement string
	// Timestamp is the statement's, or else its document's. Of the
	// statements that match a finding the latest decides; among equal
	// timestamps, the last in order.
	Timestamp time.Time
	// Author and Document are the document's author and @id.
	Author   string
	Document string
}

// A VEXComponent identifies a product or subcomponent by its @id (a package
// URL, an image reference or digest, or another IRI) and its purl
// identifier.
type VEXComponent struct {
	ID   string
	PURL string
}

// A VEXProduct is a product of a statement. Without subcomponents it
// matches a finding if it names the finding's package by package URL (see
// Ignore.PURL for how package URLs match) or names the scanned image. With
// subcomponents, it must name the image (an OCI package URL, an image
// reference as the report has it, or a digest) and a subcomponent the
// finding's package.
type VEXProduct struct {
	VEXComponent
	Subcomponents []VEXComponent
}

// The OpenVEX document as JSON. Fields scangate does not use are still
// listed, so that decoding can refuse unknown ones: a typo such as "product"
// for "products" would otherwise widen a statement to every product.
type (
	vexDoc struct {
		Context     string          `json:"@context"`
		ID          string          `json:"@id"`
		Author      string          `json:"author"`
		Role        string          `json:"role"`
		Timestamp   string          `json:"timestamp"`
		LastUpdated string          `json:"last_updated"`
		Version     json.RawMessage `json:"version"`
		Tooling     string          `json:"tooling"`
		Statements  []vexStatement  `json:"statements"`
	}
	vexStatement struct {
		ID                       string          `json:"@id"`
		Version                  json.RawMessage `json:"version"`
		Vulnerability            vexVuln         `json:"vulnerability"`
		Timestamp                string          `json:"timestamp"`
		LastUpdated              string          `json:"last_updated"`
		Products                 []vexProduct    `json:"products"`
		Status                   string          `json:"status"`
		Supplier                 string          `json:"supplier"`
		StatusNotes              string          `json:"status_notes"`
		Justification            string          `json:"justification"`
		ImpactStatement          string          `json:"impact_statement"`
		ActionStatement          string          `json:"action_statement"`
		ActionStatementTimestamp string          `json:"action_statement_timestamp"`
	}
	vexVuln struct {
		ID          string   `json:"@id"`
		Name        string   `json:"name"`
		Description string   `json:"description"`
		Aliases     []string `json:"aliases"`
	}
	vexComponent struct {
		ID          string            `json:"@id"`
		Identifiers map[string]string `json:"identifiers"`
		Hashes      map[string]string `json:"hashes"`
	}
	vexProduct struct {
		vexComponent
		Subcomponents []vexComponent `json:"subcomponents"`
	}
)

// UnmarshalJSON reads a vulnerability as an object or, as OpenVEX v0.0.1
// wrote it, a bare name.
func (v *vexVuln) UnmarshalJSON(data []byte) error {
	if bytes.HasPrefix(data, []byte(`"`)) {
		*v = vexVuln{}
		return json.Unmarshal(data, &v.Name)
	}
	type plain vexVuln
	return strictJSON(data, (*plain)(v))
}

// UnmarshalJSON reads a component as an object or, as OpenVEX v0.0.1 wrote
// it, a bare @id.
func (c *vexComponent) UnmarshalJSON(data []byte) error {
	if bytes.HasPrefix(data, []byte(`"`)) {
		*c = vexComponent{}
		return json.Unmarshal(data, &c.ID)
	}
	type plain vexComponent
	return strictJSON(data, (*plain)(c))
}

// UnmarshalJSON reads a product as an object or a bare @id. It is needed
// because the embedded vexComponent's method would otherwise decode the
// whole product.
func (p *vexProduct) UnmarshalJSON(data []byte) error {
	*p = vexProduct{}
	if bytes.HasPrefix(data, []byte(`"`)) {
		return json.Unmarshal(data, &p.ID)
	}
	var raw struct {
		ID            string            `json:"@id"`
		Identifiers   map[string]string `json:"identifiers"`
		Hashes        map[string]string `json:"hashes"`
		Subcomponents []vexComponent    `json:"subcomponents"`
	}
	if err := strictJSON(data, &raw); err != nil {
		return err
	}
	p.vexComponent = vexComponent{ID: raw.ID, Identifiers: raw.Identifiers, Hashes: raw.Hashes}
	p.Subcomponents = raw.Subcomponents
	return nil
}

// strictJSON decodes one JSON value, refusing unknown fields and trailing
// data.
func strictJSON(data []byte, v any) error {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return err
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return errors.New("data after the JSON document")
	}
	return nil
}

// ParseVEX parses an OpenVEX document (https://github.com/openvex/spec,
// v0.2.0, also reading v0.0.1's bare-string vulnerabilities and products)
// and returns its statements in order. Decoding is strict: unknown fields
// are errors, as are a @context outside https://openvex.dev/ns, a statement
// without a vulnerability name, an unknown status or justification, a
// not_affected statement with neither justification nor impact_statement, a
// product that identifies nothing, an unparsable package URL and a timestamp
// that is not RFC 3339. Documents larger than MaxVEXSize or with more than
// MaxVEXStatements statements are refused. On error no statements are
// returned.
func ParseVEX(data []byte) ([]VEXStatement, error) {
	if len(data) > MaxVEXSize {
		return nil, fmt.Errorf("vex: %d bytes is more than %d", len(data), MaxVEXSize)
	}
	var doc vexDoc
	if err := strictJSON(data, &doc); err != nil {
		return nil, fmt.Errorf("vex: %w", err)
	}
	if !strings.HasPrefix(doc.Context, "https://openvex.dev/ns") {
		return nil, fmt.Errorf("vex: @context %q is not OpenVEX's (https://openvex.dev/ns/v0.2.0)", clip(doc.Context))
	}
	if len(doc.Statements) > MaxVEXStatements {
		return nil, fmt.Errorf("vex: %d statements is more than %d", len(doc.Statements), MaxVEXStatements)
	}
	docTime, err := parseVEXTime(doc.Timestamp)
	if err != nil {
		return nil, fmt.Errorf("vex: timestamp: %w", err)
	}
	out := make([]VEXStatement, 0, len(doc.Statements))
	components := 0
	for i := range doc.Statements {
		st, err := doc.statement(i, docTime)
		if err != nil {
			return nil, fmt.Errorf("vex: statement %d: %w", i+1, err)
		}
		for _, p := range st.Products {
			components += 1 + len(p.Subcomponents)
		}
		if components > maxVEXProducts {
			return nil, fmt.Errorf("vex: more than %d products and subcomponents", maxVEXProducts)
		}
		out = append(out, st)
	}
	return out, nil
}

// statement validates statement i and fills in what it inherits.
func (doc *vexDoc) statement(i int, docTime time.Time) (VEXStatement, error) {
	raw := &doc.Statements[i]
	st := VEXStatement{
		Status:          VEXStatus(raw.Status),
		Justification:   raw.Justification,
		ImpactStatement: strings.TrimSpace(raw.ImpactStatement),
		Timestamp:       docTime,
		Author:          doc.Author,
		Document:        doc.ID,
	}
	if err := st.setVulnerability(raw.Vulnerability); err != nil {
		return VEXStatement{}, err
	}
	switch {
	case !st.Status.valid():
		return VEXStatement{}, fmt.Errorf("status %q is not one of not_affected, affected, fixed, under_investigation", clip(raw.Status))
	case st.Justification != "" && !validJustification(st.Justification):
		return VEXStatement{}, fmt.Errorf("justification %q is not a VEX justification label", clip(st.Justification))
	case st.Status == VEXNotAffected && st.Justification == "" && st.ImpactStatement == "":
		return VEXStatement{}, errors.New("not_affected needs a justification or an impact_statement")
	}
	if raw.Timestamp != "" {
		t, err := parseVEXTime(raw.Timestamp)
		if err != nil {
			return VEXStatement{}, fmt.Errorf("timestamp: %w", err)
		}
		st.Timestamp = t
	}
	for j := range raw.Products {
		p, err := raw.Products[j].product()
		if err != nil {
			return VEXStatement{}, fmt.Errorf("product %d: %w", j+1, err)
		}
		st.Products = append(st.Products, p)
	}
	return st, nil
}

// setVulnerability checks and stores the vulnerability's name and aliases.
func (st *VEXStatement) setVulnerability(v vexVuln) error {
	st.Vulnerability = strings.TrimSpace(v.Name)
	if st.Vulnerability == "" {
		return errors.New("vulnerability has no name")
	}
	if len(v.Aliases) > maxVEXAliases {
		return fmt.Errorf("vulnerability %s: %d aliases is more than %d", clip(st.Vulnerability), len(v.Aliases), maxVEXAliases)
	}
	for _, name := range append([]string{st.Vulnerability}, v.Aliases...) {
		if len(name) > maxVEXName || strings.ContainsAny(name, " \t\r\n") {
			return fmt.Errorf("vulnerability name %q is not an ID", clip(name))
		}
	}
	for _, a := range v.Aliases {
		if a != "" {
			st.Aliases = append(st.Aliases, a)
		}
	}
	return nil
}

// product converts and checks one product.
func (p *vexProduct) product() (VEXProduct, error) {
	c, err := p.vexComponent.component()
	if err != nil {
		return VEXProduct{}, err
	}
	out := VEXProduct{VEXComponent: c}
	for k := range p.Subcomponents {
		sc, err := p.Subcomponents[k].component()
		if err != nil {
			return VEXProduct{}, fmt.Errorf("subcomponent %d: %w", k+1, err)
		}
		out.Subcomponents = append(out.Subcomponents, sc)
	}
	return out, nil
}

// component converts and checks one component: it must have an @id or a
// purl identifier, and package URLs must parse.
func (c *vexComponent) component() (VEXComponent, error) {
	out := VEXComponent{ID: strings.TrimSpace(c.ID), PURL: strings.TrimSpace(c.Identifiers["purl"])}
	if out.ID == "" && out.PURL == "" {
		return VEXComponent{}, errors.New("no @id or purl identifier")
	}
	if len(out.ID) > maxPURLLen {
		return VEXComponent{}, fmt.Errorf("@id of %d bytes is longer than %d", len(out.ID), maxPURLLen)
	}
	if isPURL(out.ID) {
		if _, err := parsePURL(out.ID); err != nil {
			return VEXComponent{}, fmt.Errorf("@id: %w", err)
		}
	}
	if out.PURL != "" {
		if _, err := parsePURL(out.PURL); err != nil {
			return VEXComponent{}, fmt.Errorf("purl identifier: %w", err)
		}
	}
	return out, nil
}

func isPURL(s string) bool { return len(s) >= 4 && strings.EqualFold(s[:4], "pkg:") }

// parseVEXTime parses an RFC 3339 timestamp; empty is the zero time.
func parseVEXTime(s string) (time.Time, error) {
	if s == "" {
		return time.Time{}, nil
	}
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		return time.Time{}, fmt.Errorf("%q is not an RFC 3339 time", clip(s))
	}
	return t, nil
}

// reason describes the statement for a finding's suppression:
// "not_affected: vulnerable_code_not_present; <impact> (VEX by <author>)".
func (st *VEXStatement) reason() string {
	r := string(st.Status)
	if st.Justification != "" {
		r += ": " + st.Justification
	}
	if st.ImpactStatement != "" {
		r += "; " + clipText(st.ImpactStatement, maxVEXText)
	}
	if st.Author != "" {
		r += " (VEX by " + st.Author + ")"
	}
	return r
}

// clipText shortens s to at most n bytes, at a character boundary.
func clipText(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8Start(s[n]) {
		n--
	}
	return s[:n] + "…"
}

// vexComponentMatcher is a VEXComponent with its package URL parsed.
type vexComponentMatcher struct {
	id    string
	purls []purl
}

func newVEXComponentMatcher(c VEXComponent) vexComponentMatcher {
	m := vexComponentMatcher{id: c.ID}
	for _, s := range []string{c.ID, c.PURL} {
		if isPURL(s) {
			if p, err := parsePURL(s); err == nil {
				m.purls = append(m.purls, p)
			}
		}
	}
	return m
}

// namesPackage reports whether the component names the package with
// package URL pkg.
func (m *vexComponentMatcher) namesPackage(pkg *purl) bool {
	if pkg == nil {
		return false
	}
	for _, p := range m.purls {
		if p.matches(*pkg) {
			return true
		}
	}
	return false
}

// namesImage reports whether the component names the scanned image: by an
// OCI package URL, or by an @id equal to one of the image's names.
func (m *vexComponentMatcher) namesImage(im scan.ImageInfo, names []string) bool {
	for _, p := range m.purls {
		if ociMatches(p, im) {
			return true
		}
	}
	if m.id == "" || isPURL(m.id) {
		return false
	}
	for _, n := range names {
		if m.id == n {
			return true
		}
	}
	return false
}

// vexMatcher is a VEXStatement prepared for matching.
type vexMatcher struct {
	st       *VEXStatement
	order    int
	products []vexProductMatcher
}

type vexProductMatcher struct {
	product vexComponentMatcher
	subs    []vexComponentMatcher
}

func newVEXMatcher(st *VEXStatement, order int) vexMatcher {
	m := vexMatcher{st: st, order: order}
	for _, p := range st.Products {
		pm := vexProductMatcher{product: newVEXComponentMatcher(p.VEXComponent)}
		for _, sc := range p.Subcomponents {
			pm.subs = append(pm.subs, newVEXComponentMatcher(sc))
		}
		m.products = append(m.products, pm)
	}
	return m
}

// names returns the vulnerability's names, for indexing.
func (st *VEXStatement) names() []string {
	return append([]string{st.Vulnerability}, st.Aliases...)
}

// coversProduct reports whether the statement's products take in a finding
// of the package with package URL pkg (nil if unknown) in the image.
func (m *vexMatcher) coversProduct(pkg *purl, im scan.ImageInfo, names []string) bool {
	if len(m.products) == 0 {
		return true
	}
	for i := range m.products {
		p := &m.products[i]
		if len(p.subs) == 0 {
			if p.product.namesPackage(pkg) || p.product.namesImage(im, names) {
				return true
			}
			continue
		}
		if !p.product.namesImage(im, names) {
			continue
		}
		for j := range p.subs {
			if p.subs[j].namesPackage(pkg) {
				return true
			}
		}
	}
	return false
}

// later reports whether m was made after o: a later timestamp, or the same
// one and later in order.
func (m *vexMatcher) later(o *vexMatcher) bool {
	if !m.st.Timestamp.Equal(o.st.Timestamp) {
		return m.st.Timestamp.After(o.st.Timestamp)
	}
	return m.order > o.order
}
