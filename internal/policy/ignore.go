package policy

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/scangate/scangate/internal/lazyregexp"
	"github.com/scangate/scangate/internal/scan"
)

// Limits on an ignore file. Real files hold tens of entries; the limits keep
// a hostile or mistaken file from costing much memory or time.
const (
	MaxIgnoreFileSize = 1 << 20 // bytes
	MaxIgnoreEntries  = 10_000
	maxIgnoreField    = 1024 // bytes, for every field but reason
	maxIgnoreReason   = 4096 // bytes
)

// An Ignore is one entry of an ignore file: it suppresses the findings of
// one vulnerability, optionally only in some packages or images, optionally
// until a time. Every condition given must hold for the entry to match.
type Ignore struct {
	// ID is the vulnerability, matched without case against a finding's
	// ID and each of its aliases, so that "CVE-2023-45853" also covers the
	// Debian and OSV records that alias it.
	ID string
	// Package, if set, is a package name matched exactly against the
	// finding's package name or its source package name ("zlib1g" or
	// "zlib").
	Package string
	// PURL, if set, is a package URL the finding's package URL must match:
	// type, namespace and name equal, and any version, subpath or qualifier
	// it gives equal too ("pkg:deb/debian/zlib1g" covers every version of
	// zlib1g; "pkg:deb/debian/zlib1g@1:1.2.13.dfsg-1" only that one). A
	// finding whose package has no package URL never matches.
	PURL string
	// Image, if set, is a pattern for the scanned image, matched against its
	// reference, repository, repository:tag, repository@digest and digests;
	// '*' matches any run of characters ('/' and ':' included) and '?' any
	// one: "registry.example.com/app", "registry.example.com/app:1.*",
	// "registry.example.com/team/*".
	Image string
	// Reason says why the finding may be ignored; it is kept with the
	// finding's suppression.
	Reason string
	// Expires, if not zero, is when the entry stops applying. A date in the
	// file ("2026-12-31") means midnight UTC at the start of that day, as in
	// Trivy's ignore file.
	Expires time.Time
	// Line is the entry's line in the file it came from, or 0.
	Line int
}

// Expired reports whether the entry no longer applies at now.
func (ig *Ignore) Expired(now time.Time) bool {
	return !ig.Expires.IsZero() && !now.Before(ig.Expires)
}

// describe names the entry in a message: "ignore entry for CVE-X (package
// zlib1g, line 3)".
func (ig *Ignore) describe() string {
	var scope []string
	if ig.Package != "" {
		scope = append(scope, "package "+ig.Package)
	}
	if ig.PURL != "" {
		scope = append(scope, ig.PURL)
	}
	if ig.Image != "" {
		scope = append(scope, "image "+ig.Image)
	}
	if ig.Line > 0 {
		scope = append(scope, fmt.Sprintf("line %d", ig.Line))
	}
	s := "ignore entry for " + ig.ID
	if ig.ID == "" {
		s = "ignore entry without an id"
	}
	if len(scope) > 0 {
		s += " (" + strings.Join(scope, ", ") + ")"
	}
	return s
}

// ignoreIDRe matches a vulnerability ID: CVE-2023-45853, GHSA-jq35-85cj-fj4p,
// DSA-5000-1, openSUSE-SU-2020:0051-1, PYSEC-2021-1.
var ignoreIDRe = lazyregexp.New(`^[A-Za-z0-9][A-Za-z0-9._:/+-]*$`)

// ParseIgnoreFile parses an ignore file: a YAML list of entries with the
// fields id (required), package, purl, image, reason and expires, each a
// string, as Ignore describes them:
//
//   - id: CVE-2023-45853
//     package: zlib1g
//     image: registry.example.com/app:*
//     reason: minizip is not built; zlib1g does not ship it
//     expires: 2026-12-31
//
// Decoding is strict: an unknown or repeated field (a typo such as "expire:"
// must not silently mean "never expires"), a field that is not a string, an
// empty field, an entry without id, an unparsable expiry or package URL, and
// YAML aliases (which could expand a small file into a huge one) are errors
// naming the entry. An empty file has no entries. Files larger than
// MaxIgnoreFileSize or with more than MaxIgnoreEntries entries are refused.
// On error no entries are returned.
func ParseIgnoreFile(data []byte) ([]Ignore, error) {
	if len(data) > MaxIgnoreFileSize {
		return nil, fmt.Errorf("ignore file: %d bytes is more than %d", len(data), MaxIgnoreFileSize)
	}
	root, err := decodeSingleYAML(data)
	if err != nil || root == nil {
		return nil, err
	}
	switch {
	case root.Kind == yaml.AliasNode:
		return nil, fmt.Errorf("ignore file: line %d: YAML aliases are not allowed", root.Line)
	case root.Kind == yaml.ScalarNode && root.Tag == "!!null":
		return nil, nil
	case root.Kind != yaml.SequenceNode:
		return nil, fmt.Errorf("ignore file: line %d: want a list of entries (- id: CVE-…), found %s", root.Line, kindName(root))
	case len(root.Content) > MaxIgnoreEntries:
		return nil, fmt.Errorf("ignore file: %d entries is more than %d", len(root.Content), MaxIgnoreEntries)
	}
	out := make([]Ignore, 0, len(root.Content))
	for i, n := range root.Content {
		ig, err := decodeIgnore(n)
		if err != nil {
			return nil, fmt.Errorf("ignore file: entry %d (line %d): %w", i+1, n.Line, err)
		}
		out = append(out, ig)
	}
	return out, nil
}

// decodeSingleYAML parses data as at most one YAML document and returns its
// root node, or nil for an empty document. Parsing into a node does not
// expand aliases.
func decodeSingleYAML(data []byte) (*yaml.Node, error) {
	dec := yaml.NewDecoder(bytes.NewReader(data))
	var doc yaml.Node
	if err := dec.Decode(&doc); errors.Is(err, io.EOF) {
		return nil, nil
	} else if err != nil {
		return nil, fmt.Errorf("ignore file: %w", err)
	}
	var next yaml.Node
	switch err := dec.Decode(&next); {
	case err == nil:
		return nil, errors.New("ignore file: more than one YAML document")
	case !errors.Is(err, io.EOF):
		return nil, fmt.Errorf("ignore file: %w", err)
	}
	if doc.Kind != yaml.DocumentNode || len(doc.Content) != 1 {
		return nil, nil
	}
	return doc.Content[0], nil
}

// decodeIgnore decodes one entry, a mapping of string fields.
func decodeIgnore(n *yaml.Node) (Ignore, error) {
	if n.Kind == yaml.AliasNode {
		return Ignore{}, errors.New("YAML aliases are not allowed")
	}
	if n.Kind != yaml.MappingNode {
		return Ignore{}, fmt.Errorf("want a mapping with id:, found %s", kindName(n))
	}
	ig := Ignore{Line: n.Line}
	seen := map[string]bool{}
	for i := 0; i+1 < len(n.Content); i += 2 {
		key, val := n.Content[i], n.Content[i+1]
		name, v, err := ignoreField(key, val)
		if err != nil {
			return Ignore{}, err
		}
		if seen[name] {
			return Ignore{}, fmt.Errorf("line %d: field %q given twice", key.Line, name)
		}
		seen[name] = true
		if err := ig.set(name, v); err != nil {
			return Ignore{}, fmt.Errorf("line %d: %s: %w", val.Line, name, err)
		}
	}
	if ig.ID == "" {
		return Ignore{}, errors.New("no id")
	}
	return ig, nil
}

// ignoreField checks one key and value of an entry and returns them as
// strings.
func ignoreField(key, val *yaml.Node) (string, string, error) {
	if key.Kind == yaml.AliasNode || val.Kind == yaml.AliasNode {
		return "", "", fmt.Errorf("line %d: YAML aliases are not allowed", key.Line)
	}
	if key.Kind != yaml.ScalarNode {
		return "", "", fmt.Errorf("line %d: field name is %s, not a string", key.Line, kindName(key))
	}
	name := key.Value
	switch name {
	case "id", "package", "purl", "image", "reason", "expires":
	default:
		return "", "", fmt.Errorf("line %d: unknown field %q (fields are id, package, purl, image, reason, expires)", key.Line, clip(name))
	}
	if val.Kind != yaml.ScalarNode {
		return "", "", fmt.Errorf("line %d: %s is %s, not a string", val.Line, name, kindName(val))
	}
	v := strings.TrimSpace(val.Value)
	if v == "" {
		return "", "", fmt.Errorf("line %d: %s is empty", val.Line, name)
	}
	limit := maxIgnoreField
	if name == "reason" {
		limit = maxIgnoreReason
	}
	if len(v) > limit {
		return "", "", fmt.Errorf("line %d: %s of %d bytes is longer than %d", val.Line, name, len(v), limit)
	}
	return name, v, nil
}

// set validates and stores one field.
func (ig *Ignore) set(name, v string) error {
	switch name {
	case "id":
		if !ignoreIDRe.MatchString(v) {
			return fmt.Errorf("%q is not a vulnerability ID", clip(v))
		}
		ig.ID = v
	case "package":
		if strings.ContainsAny(v, " \t\r\n") {
			return fmt.Errorf("%q is not a package name", clip(v))
		}
		ig.Package = v
	case "purl":
		if _, err := parsePURL(v); err != nil {
			return err
		}
		ig.PURL = v
	case "image":
		if strings.ContainsAny(v, " \t\r\n") {
			return fmt.Errorf("%q is not an image pattern", clip(v))
		}
		ig.Image = v
	case "reason":
		ig.Reason = v
	case "expires":
		t, err := ParseExpiry(v)
		if err != nil {
			return err
		}
		ig.Expires = t
	}
	return nil
}

// ParseExpiry reads an expiry as ignore files, pipeline exceptions,
// overrides and the CLI write it: a date (midnight UTC at its start) or an
// RFC 3339 time.
func ParseExpiry(v string) (time.Time, error) {
	if t, err := time.Parse(time.DateOnly, v); err == nil {
		return t, nil
	}
	t, err := time.Parse(time.RFC3339, v)
	if err != nil {
		return time.Time{}, fmt.Errorf("%q is not a date (2026-12-31) or an RFC 3339 time (2026-12-31T12:00:00Z)", clip(v))
	}
	return t, nil
}

// formatExpiry writes an expiry as the file most likely gave it: a date for
// midnight UTC, RFC 3339 otherwise.
func formatExpiry(t time.Time) string {
	if u := t.UTC(); u.Hour() == 0 && u.Minute() == 0 && u.Second() == 0 && u.Nanosecond() == 0 {
		return u.Format(time.DateOnly)
	}
	return t.Format(time.RFC3339)
}

func kindName(n *yaml.Node) string {
	switch n.Kind {
	case yaml.MappingNode:
		return "a mapping"
	case yaml.SequenceNode:
		return "a list"
	case yaml.AliasNode:
		return "an alias"
	case yaml.ScalarNode:
		return "a scalar"
	}
	return "a document"
}

// ignoreMatcher is an Ignore prepared for matching: its package URL parsed.
type ignoreMatcher struct {
	*Ignore
	purl    purl
	badPURL error // the entry matches nothing
}

func newIgnoreMatcher(ig *Ignore) ignoreMatcher {
	m := ignoreMatcher{Ignore: ig}
	if ig.PURL != "" {
		m.purl, m.badPURL = parsePURL(ig.PURL)
	}
	return m
}

// matches reports whether the entry covers finding f of package pkg (nil if
// the finding's package index is out of range) in an image with the given
// names. Expiry is the caller's to check.
func (m *ignoreMatcher) matches(f *scan.Finding, pkg *scan.Package, pkgPURL *purl, image []string) bool {
	if m.badPURL != nil || !idMatches(m.ID, f) {
		return false
	}
	if m.Package != "" && (pkg == nil || (pkg.Name != m.Package && pkg.SourceName != m.Package)) {
		return false
	}
	if m.PURL != "" && (pkgPURL == nil || !m.purl.matches(*pkgPURL)) {
		return false
	}
	if m.Image != "" && !anyGlobMatch(m.Image, image) {
		return false
	}
	return true
}

// idMatches reports whether id names finding f: its ID or one of its
// aliases, without case.
func idMatches(id string, f *scan.Finding) bool {
	if strings.EqualFold(id, f.ID) {
		return true
	}
	for _, a := range f.Aliases {
		if strings.EqualFold(id, a) {
			return true
		}
	}
	return false
}
