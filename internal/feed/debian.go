package feed

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"sort"
	"strconv"
	"strings"

	"github.com/scangate/scangate/internal/lazyregexp"
	"github.com/scangate/scangate/internal/vulndb"
)

// DebianTracker reads the Debian Security Tracker's JSON export
// (https://security-tracker.debian.org/tracker/data/json): an object from
// source package to CVE or TEMP id to the record, whose releases say, per
// Debian codename, whether the package is fixed and from which version.
// Each id becomes one advisory with one affected entry per (release, source
// package); the feed is "debian".
type DebianTracker struct{}

// Name returns "debian".
func (DebianTracker) Name() string { return "debian" }

// debianIDRe matches the ids the tracker keys records by.
var debianIDRe = lazyregexp.New(`^(CVE-\d{4}-\d{4,}|TEMP-\d{7}-[0-9A-F]{6})$`)

// debianReleases maps Debian codenames to the release number OSV uses in the
// ecosystem name. sid and experimental have none and are left out.
var debianReleases = map[string]string{
	"buzz": "1.1", "rex": "1.2", "bo": "1.3", "hamm": "2.0", "slink": "2.1",
	"potato": "2.2", "woody": "3.0", "sarge": "3.1", "etch": "4", "lenny": "5",
	"squeeze": "6", "wheezy": "7", "jessie": "8", "stretch": "9", "buster": "10",
	"bullseye": "11", "bookworm": "12", "trixie": "13", "forky": "14", "duke": "15",
}

// Match reports whether head starts a JSON object whose first value is an
// object keyed by tracker ids, whose first record has "releases" (or is cut
// off by the end of head before its keys are all seen).
func (DebianTracker) Match(name string, head []byte) bool {
	d := json.NewDecoder(bytes.NewReader(bytes.TrimPrefix(head, []byte("\xef\xbb\xbf"))))
	prefix := []func(json.Token) bool{
		debianIsDelim('{'),
		func(t json.Token) bool { _, ok := t.(string); return ok },
		debianIsDelim('{'),
		func(t json.Token) bool { s, ok := t.(string); return ok && debianIDRe.MatchString(s) },
		debianIsDelim('{'),
	}
	for _, ok := range prefix {
		if t, err := d.Token(); err != nil || !ok(t) {
			return false
		}
	}
	for depth := 1; depth > 0; {
		t, err := d.Token()
		if err != nil {
			return true // head ends inside the first record
		}
		switch t {
		case json.Delim('{'), json.Delim('['):
			depth++
		case json.Delim('}'), json.Delim(']'):
			depth--
		case "releases":
			return depth == 1
		}
	}
	return false
}

func debianIsDelim(want json.Delim) func(json.Token) bool {
	return func(t json.Token) bool { return t == want }
}

// debianRecord is one id under one source package.
type debianRecord struct {
	Description string          `json:"description"`
	Releases    json.RawMessage `json:"releases"`
}

// debianRelease is a record's verdict for one release.
type debianRelease struct {
	Status       string `json:"status"`
	FixedVersion string `json:"fixed_version"`
	Urgency      string `json:"urgency"`
	NoDSA        string `json:"nodsa"`
	NoDSAReason  string `json:"nodsa_reason"`
}

// debianParse is the state of one Parse: advisories in order of first
// appearance, and the counts summarised as one Skip each.
type debianParse struct {
	name       string
	res        Result
	index      map[string]int
	unknown    map[string]int // codename → releases left out
	noReleases int
}

// Parse decodes a tracker JSON file one source package at a time, so the
// whole file is never held decoded twice. Releases without a Debian release
// number (sid, experimental) and records that name no release are counted in
// one Skip per file rather than one per record.
func (DebianTracker) Parse(name string, data []byte) (Result, error) {
	p := &debianParse{name: name, index: map[string]int{}, unknown: map[string]int{}}
	d := json.NewDecoder(bytes.NewReader(bytes.TrimPrefix(data, []byte("\xef\xbb\xbf"))))
	if t, err := d.Token(); err != nil || t != json.Delim('{') {
		return Result{}, fmt.Errorf("%s: not a Debian tracker JSON object: %v", name, debianTokenOrErr(t, err))
	}
	for d.More() {
		t, err := d.Token()
		if err != nil {
			return Result{}, fmt.Errorf("%s: %w", name, err)
		}
		if err := p.pkg(d, t.(string)); err != nil {
			return Result{}, fmt.Errorf("%s: package %q: %w", name, clipMsg(t.(string)), err)
		}
	}
	if _, err := d.Token(); err != nil {
		return Result{}, fmt.Errorf("%s: %w", name, err)
	}
	if _, err := d.Token(); err != io.EOF {
		return Result{}, fmt.Errorf("%s: data after the tracker object", name)
	}
	p.finish()
	return p.res, nil
}

func debianTokenOrErr(t json.Token, err error) any {
	if err != nil {
		return err
	}
	return fmt.Sprintf("starts with %v", t)
}

// pkg reads the records of one source package from d. A package that is
// not an object is an error; a record of the wrong shape is skipped.
func (p *debianParse) pkg(d *json.Decoder, pkg string) error {
	t, err := d.Token()
	if err != nil {
		return err
	}
	switch {
	case t == json.Delim('[') && !d.More(): // how the tracker writes an empty object
		_, err := d.Token()
		return err
	case t != json.Delim('{'):
		return errors.New("not an object")
	}
	for d.More() {
		t, err := d.Token()
		if err != nil {
			return err
		}
		var rec debianRecord
		var typeErr *json.UnmarshalTypeError
		if err := d.Decode(&rec); errors.As(err, &typeErr) {
			p.skip(pkg, t.(string), "%v", err)
			continue
		} else if err != nil {
			return err
		}
		p.record(pkg, t.(string), rec)
	}
	_, err = d.Token()
	return err
}

func (p *debianParse) skip(pkg, id, format string, args ...any) {
	p.res.Skipped = append(p.res.Skipped, Skip{File: p.name, Record: clipMsg(id) + " (" + clipMsg(pkg) + ")", Reason: fmt.Sprintf(format, args...)})
}

// record adds one id of one source package.
func (p *debianParse) record(pkg, id string, rec debianRecord) {
	if !debianIDRe.MatchString(id) {
		p.skip(pkg, id, "not a CVE or TEMP id")
		return
	}
	if r := bytes.TrimSpace(rec.Releases); len(r) == 0 || r[0] != '{' {
		var list []json.RawMessage
		if len(r) == 0 || string(r) == "null" || json.Unmarshal(r, &list) == nil && len(list) == 0 {
			p.noReleases++
		} else {
			p.skip(pkg, id, "releases is not an object")
		}
		return
	}
	var releases map[string]debianRelease
	if err := json.Unmarshal(rec.Releases, &releases); err != nil {
		p.skip(pkg, id, "releases: %v", err)
		return
	}
	var affected []vulndb.Affected
	for codename, r := range releases {
		num, ok := debianReleases[codename]
		if !ok {
			p.unknown[codename]++
			continue
		}
		af, err := debianAffected(pkg, num, r)
		if err != nil {
			p.skip(pkg, id, "%s: %v", codename, err)
			continue
		}
		affected = append(affected, af)
	}
	if len(affected) == 0 {
		return
	}
	sort.Slice(affected, func(i, j int) bool { return debianNum(affected[i].Ecosystem) < debianNum(affected[j].Ecosystem) })
	i, ok := p.index[id]
	if !ok {
		i = len(p.res.Advisories)
		p.index[id] = i
		p.res.Advisories = append(p.res.Advisories, vulndb.Advisory{
			ID:         id,
			Summary:    rec.Description,
			References: []string{"https://security-tracker.debian.org/tracker/" + id},
			Feed:       "debian",
		})
	}
	a := &p.res.Advisories[i]
	if a.Summary == "" {
		a.Summary = rec.Description
	}
	a.Affected = append(a.Affected, affected...)
}

// debianNum orders "Debian:N" ecosystems by release.
func debianNum(eco string) float64 {
	n, _ := strconv.ParseFloat(strings.TrimPrefix(eco, "Debian:"), 64)
	return n
}

// debianAffected turns one release's verdict into an Affected.
func debianAffected(pkg, num string, r debianRelease) (vulndb.Affected, error) {
	eco := "Debian:" + num
	af := vulndb.Affected{Ecosystem: eco, Package: pkg, Urgency: r.Urgency}
	if r.NoDSA != "" || r.NoDSAReason != "" {
		reason := r.NoDSAReason
		if reason == "" {
			reason = "no-dsa"
		}
		af.Note = strings.TrimSuffix(reason+": "+r.NoDSA, ": ")
	}
	switch r.Status {
	case "resolved":
		switch r.FixedVersion {
		case "":
			return af, errors.New("resolved without a fixed_version")
		case "0":
			af.Status = vulndb.StatusNotAffected
		default:
			if _, err := vulndb.ParseVersion(eco, r.FixedVersion); err != nil {
				return af, err
			}
			af.Status, af.Fixed = vulndb.StatusFixed, r.FixedVersion
		}
	case "open":
		switch {
		case r.Urgency == "end-of-life":
			af.Status = vulndb.StatusEndOfLife
		case r.NoDSAReason == "ignored":
			af.Status = vulndb.StatusWillNotFix
		default:
			af.Status = vulndb.StatusUnfixed
		}
	case "undetermined":
		af.Status = vulndb.StatusUnfixed
		af.Note = strings.TrimSuffix("undetermined; "+af.Note, "; ")
	default:
		return af, fmt.Errorf("unknown status %q", clipMsg(r.Status))
	}
	return af, nil
}

// finish sets each advisory's Debian severity where its releases agree, and
// adds the per-file summaries.
func (p *debianParse) finish() {
	for i := range p.res.Advisories {
		a := &p.res.Advisories[i]
		rating := ""
		for _, af := range a.Affected {
			if af.Urgency == "end-of-life" { // a support status, not a rating
				continue
			}
			r := vulndb.UrgencyRating(af.Urgency)
			if rating != "" && r != rating {
				rating = "-"
				break
			}
			rating = r
		}
		switch rating {
		case "-":
			continue
		case "":
			rating = vulndb.Unknown
		}
		a.Severities = []vulndb.Severity{{Source: "debian", Type: vulndb.VendorRating, Rating: rating}}
	}
	if len(p.unknown) > 0 {
		var names []string
		for c, n := range p.unknown {
			names = append(names, fmt.Sprintf("%s (%d)", clipMsg(c), n))
		}
		sort.Strings(names)
		if len(names) > 10 {
			names = append(names[:10], fmt.Sprintf("and %d more", len(names)-10))
		}
		p.res.Skipped = append(p.res.Skipped, Skip{File: p.name, Reason: "releases without a Debian release number left out: " + strings.Join(names, ", ")})
	}
	if p.noReleases > 0 {
		p.res.Skipped = append(p.res.Skipped, Skip{File: p.name, Reason: fmt.Sprintf("%d records name no release", p.noReleases)})
	}
}

// clipMsg shortens s for a message.
func clipMsg(s string) string {
	const max = 80
	if len(s) <= max {
		return s
	}
	return s[:max] + "..."
}
