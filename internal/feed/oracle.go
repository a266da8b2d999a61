package feed

import (
	"bytes"
	"compress/bzip2"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/scangate/scangate/internal/lazyregexp"
	"github.com/scangate/scangate/internal/vulndb"
)

// OracleOVAL reads Oracle Linux's security advisories (ELSA) as Oracle
// publishes them: one OVAL 5 document, linux.oracle.com/security/oval/
// com.oracle.elsa-all.xml.bz2 (bzip2ed or not), with one <definition> per
// ELSA. Oracle states nothing in the OVAL tests themselves that the
// definitions' criteria comments do not say, so scangate reads the
// comments, as Trivy's and Grype's importers do: "Oracle Linux 8 is
// installed" names the release, "Oracle Linux arch is x86_64" the
// architecture of the branch below it, "Module nodejs:18 is enabled" the
// module stream, and "openssl is earlier than 1:1.1.1k-7.el8_6" a fixed
// binary package. Each ELSA becomes one advisory whose aliases are its CVEs,
// with one fixed entry per binary package and release ("Oracle Linux:8"):
//
//   - the highest fix where one branch lists several for a package (an OR
//     of "earlier than" tests is affected below the highest);
//   - per architecture ("Oracle Linux:8:aarch64") where the architectures'
//     fixes differ (vulndb's oracleArch says how a machine reads them);
//   - per flavour: a Ksplice userspace build and a FIPS build are fixed on
//     their own lines and only match builds of their flavour
//     (vulndb.Flavour);
//   - a module stream's packages under "module:stream/name"
//     ("nodejs:18/nodejs"), as for Red Hat, so that one stream's builds are
//     never compared with another's or with the non-modular package.
//
// ELSA lists fixes only: Oracle publishes nothing on unfixed or not-affected
// packages. Oracle's severity (LOW, MODERATE, IMPORTANT, CRITICAL) is each
// entry's urgency. The feed is "oracle".
type OracleOVAL struct{}

// Name returns "oracle".
func (OracleOVAL) Name() string { return "oracle" }

// Limits of one OVAL document. Oracle's whole feed decompresses to well
// under 1 GiB and holds about 9,000 definitions.
const (
	oracleMaxXML         = 4 << 30
	oracleMaxDefinitions = 200_000
	oracleMaxDepth       = 32
)

// bzip2Magic starts a bzip2 stream.
var bzip2Magic = []byte("BZh")

// Match reports whether head starts an Oracle OVAL document. A bzip2 stream
// cannot be peeked at from its first bytes (its first block is whole or
// nothing), so a compressed file is recognised by Oracle's name for it,
// com.oracle.elsa-*.xml.bz2.
func (OracleOVAL) Match(name string, head []byte) bool {
	if bytes.HasPrefix(head, bzip2Magic) {
		n := strings.ToLower(name)
		return strings.HasSuffix(n, ".xml.bz2") && strings.Contains(n, "elsa")
	}
	t := bytes.TrimLeft(head, " \t\r\n")
	if !bytes.HasPrefix(t, []byte("<?xml")) && !bytes.HasPrefix(t, []byte("<oval_definitions")) {
		return false
	}
	return bytes.Contains(t, []byte("<oval_definitions")) &&
		(bytes.Contains(t, []byte("com.oracle.elsa")) || bytes.Contains(t, []byte("Oracle Errata System")))
}

type ovalDefinition struct {
	ID       string `xml:"id,attr"`
	Metadata struct {
		Title      string   `xml:"title"`
		Platforms  []string `xml:"affected>platform"`
		References []struct {
			Source string `xml:"source,attr"`
			RefID  string `xml:"ref_id,attr"`
			RefURL string `xml:"ref_url,attr"`
		} `xml:"reference"`
		Description string `xml:"description"`
		Advisory    struct {
			Severity string `xml:"severity"`
			Issued   struct {
				Date string `xml:"date,attr"`
			} `xml:"issued"`
			CVEs []string `xml:"cve"`
		} `xml:"advisory"`
	} `xml:"metadata"`
	Criteria ovalCriteria `xml:"criteria"`
}

type ovalCriteria struct {
	Criterions []struct {
		Comment string `xml:"comment,attr"`
	} `xml:"criterion"`
	Criterias []ovalCriteria `xml:"criteria"`
}

var (
	elsaIDRe          = lazyregexp.New(`^ELSA-\d{4}-\d{4,}(-\d+)?$`)
	oracleInstalledRe = lazyregexp.New(`^Oracle Linux (\d+) is installed$`)
	oracleArchRe      = lazyregexp.New(`^Oracle Linux arch is ([a-z0-9_]+)$`)
	oracleModuleRe    = lazyregexp.New(`^Module ([^\s:/]+:[^\s:/]+) is enabled$`)
	oracleEarlierRe   = lazyregexp.New(`^(\S+) is earlier than (\S+)$`)
	oraclePlatformRe  = lazyregexp.New(`^Oracle Linux (\d+)$`)
)

// oracleFix is one "earlier than" test with the branch it stands in.
type oracleFix struct {
	release, arch, pkg, version string
}

// Parse decodes one OVAL document, streaming: the whole feed need never be
// held decompressed.
func (OracleOVAL) Parse(name string, data []byte) (Result, error) {
	var r io.Reader = bytes.NewReader(data)
	if bytes.HasPrefix(data, bzip2Magic) {
		r = bzip2.NewReader(r)
	}
	lr := &limitReader{r: r, left: oracleMaxXML}
	dec := xml.NewDecoder(lr)
	var res Result
	root, n := false, 0
	for {
		tok, err := dec.Token()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			if lr.over {
				return Result{}, fmt.Errorf("%s: oval: larger than %d bytes decompressed: %w", name, int64(oracleMaxXML), ErrLimit)
			}
			return Result{}, fmt.Errorf("%s: oval: %w", name, err)
		}
		se, ok := tok.(xml.StartElement)
		if !ok {
			if ee, ok := tok.(xml.EndElement); ok && ee.Name.Local == "definitions" {
				break // tests, objects and states follow: nothing scangate reads
			}
			continue
		}
		switch se.Name.Local {
		case "oval_definitions":
			root = true
			continue
		case "definition":
		default:
			continue
		}
		if !root {
			return Result{}, fmt.Errorf("%s: oval: <definition> outside <oval_definitions>", name)
		}
		if n++; n > oracleMaxDefinitions {
			return Result{}, fmt.Errorf("%s: oval: more than %d definitions: %w", name, oracleMaxDefinitions, ErrLimit)
		}
		var d ovalDefinition
		if err := dec.DecodeElement(&d, &se); err != nil {
			if lr.over {
				return Result{}, fmt.Errorf("%s: oval: larger than %d bytes decompressed: %w", name, int64(oracleMaxXML), ErrLimit)
			}
			return Result{}, fmt.Errorf("%s: oval: definition %s: %w", name, clipMsg(d.ID), err)
		}
		adv, skips := oracleAdvisory(&d)
		for _, s := range skips {
			res.Skipped = append(res.Skipped, Skip{File: name, Record: clipMsg(s.Record), Reason: s.Reason})
		}
		if adv != nil {
			res.Advisories = append(res.Advisories, *adv)
		}
	}
	if !root {
		return Result{}, fmt.Errorf("%s: oval: no <oval_definitions>", name)
	}
	if n == 0 {
		return Result{}, fmt.Errorf("%s: oval: no <definition> in <definitions>", name)
	}
	return res, nil
}

// oracleAdvisory makes one definition an advisory, or nil with why.
func oracleAdvisory(d *ovalDefinition) (*vulndb.Advisory, []Skip) {
	md := &d.Metadata
	title := strings.Join(strings.Fields(md.Title), " ")
	id, _, _ := strings.Cut(title, ":")
	elsaURL := ""
	for _, r := range md.References {
		if r.Source == "elsa" {
			id, elsaURL = strings.TrimSpace(r.RefID), r.RefURL
		}
	}
	if !elsaIDRe.MatchString(id) {
		return nil, []Skip{{Record: id, Reason: "not an ELSA id"}}
	}
	var skips []Skip
	skip := func(format string, args ...any) {
		skips = append(skips, Skip{Record: id, Reason: fmt.Sprintf(format, args...)})
	}
	summary := title
	if rest, ok := strings.CutPrefix(title, id+":"); ok {
		summary = strings.TrimSpace(rest)
	}
	adv := &vulndb.Advisory{ID: id, Summary: summary, Details: strings.TrimSpace(md.Description), Feed: "oracle"}
	if !strings.HasPrefix(elsaURL, "https://linux.oracle.com/") && !strings.HasPrefix(elsaURL, "http://linux.oracle.com/") {
		elsaURL = "https://linux.oracle.com/errata/" + id + ".html"
	}
	adv.References = []string{strings.Replace(elsaURL, "http://", "https://", 1)}
	if t, err := time.Parse("2006-01-02", md.Advisory.Issued.Date); err == nil {
		adv.Published = t
	}
	cves := slices.Clone(md.Advisory.CVEs)
	for _, r := range md.References {
		if r.Source == "CVE" {
			cves = append(cves, r.RefID)
		}
	}
	for _, c := range cves {
		c = strings.TrimSpace(c)
		if strings.HasPrefix(c, "CVE-") && len(c) <= vulndb.MaxIDLen && !strings.ContainsAny(c, " \t\r\n") && !slices.Contains(adv.Aliases, c) {
			adv.Aliases = append(adv.Aliases, c)
		}
	}
	// A definition without an "is installed" criterion names its release
	// only in its metadata.
	release := ""
	if len(md.Platforms) == 1 {
		if m := oraclePlatformRe.FindStringSubmatch(strings.TrimSpace(md.Platforms[0])); m != nil {
			release = m[1]
		}
	}
	var fixes []oracleFix
	if !walkOracle(&d.Criteria, oracleFix{release: release}, "", 0, &fixes) {
		skip("criteria nested deeper than %d", oracleMaxDepth)
		return nil, skips
	}
	urgency := strings.ToLower(strings.TrimSpace(md.Advisory.Severity))
	adv.Affected = oracleAffected(fixes, urgency, skip)
	if len(adv.Affected) == 0 {
		skip("no Oracle Linux package")
		return nil, skips
	}
	return adv, skips
}

// walkOracle collects the fixes below c. at carries the release and
// architecture of the branch; module the stream its packages belong to.
// It reports false if the criteria nest too deep.
func walkOracle(c *ovalCriteria, at oracleFix, module string, depth int, out *[]oracleFix) bool {
	if depth > oracleMaxDepth {
		return false
	}
	// The branch's own conditions first: they hold for every test beside
	// and below them, whatever order Oracle lists them in.
	for _, cr := range c.Criterions {
		comment := strings.TrimSpace(cr.Comment)
		if m := oracleInstalledRe.FindStringSubmatch(comment); m != nil {
			at.release = m[1]
		} else if m := oracleArchRe.FindStringSubmatch(comment); m != nil {
			at.arch = m[1]
		} else if m := oracleModuleRe.FindStringSubmatch(comment); m != nil {
			module = m[1]
		}
	}
	for _, cr := range c.Criterions {
		m := oracleEarlierRe.FindStringSubmatch(strings.TrimSpace(cr.Comment))
		if m == nil {
			continue
		}
		f := at
		f.pkg, f.version = m[1], strings.TrimPrefix(m[2], "0:") // rpm compares a missing epoch as 0
		if module != "" {
			f.pkg = module + "/" + f.pkg
		}
		*out = append(*out, f)
	}
	for i := range c.Criterias {
		if !walkOracle(&c.Criterias[i], at, module, depth+1, out) {
			return false
		}
	}
	return true
}

// oracleAffected turns a definition's fixes into affected entries: the
// highest fix per release, package, flavour and architecture, stored for
// the release when every architecture of the release has the same one.
func oracleAffected(fixes []oracleFix, urgency string, skip func(string, ...any)) []vulndb.Affected {
	type key struct{ release, pkg, flavour string }
	highest := map[key]map[string]string{} // → arch → fix
	arches := map[string]map[string]bool{} // release → the architectures it names
	var order []key
	for _, f := range fixes {
		if f.release == "" {
			skip("%s: no Oracle Linux release", clipMsg(f.pkg))
			continue
		}
		if len(f.pkg) > vulndb.MaxPackageLen {
			skip("package name of %d bytes", len(f.pkg))
			continue
		}
		eco := "Oracle Linux:" + f.release
		if _, err := vulndb.ParseVersion(eco, f.version); err != nil {
			skip("%s: %v", clipMsg(f.pkg), err)
			continue
		}
		k := key{f.release, f.pkg, vulndb.Flavour(eco, f.version)}
		if highest[k] == nil {
			highest[k] = map[string]string{}
			order = append(order, k)
		}
		if arches[f.release] == nil {
			arches[f.release] = map[string]bool{}
		}
		arches[f.release][f.arch] = true
		if old, ok := highest[k][f.arch]; ok {
			if c, err := vulndb.CompareVersions(eco, f.version, old); err != nil || c <= 0 {
				continue
			}
		}
		highest[k][f.arch] = f.version
	}
	var out []vulndb.Affected
	for _, k := range order {
		eco := "Oracle Linux:" + k.release
		byArch := highest[k]
		fixesSeen := slices.Compact(slices.Sorted(maps.Values(byArch)))
		if len(fixesSeen) == 1 && len(byArch) == len(arches[k.release]) {
			out = append(out, vulndb.Affected{Ecosystem: eco, Package: k.pkg, Status: vulndb.StatusFixed, Fixed: fixesSeen[0], Urgency: urgency})
			continue
		}
		for _, arch := range slices.Sorted(maps.Keys(byArch)) {
			archEco := eco
			if arch != "" {
				archEco += ":" + arch
			}
			out = append(out, vulndb.Affected{Ecosystem: archEco, Package: k.pkg, Status: vulndb.StatusFixed, Fixed: byArch[arch], Urgency: urgency})
		}
	}
	return out
}

// limitReader reads at most left bytes, then fails, remembering that it
// did.
type limitReader struct {
	r    io.Reader
	left int64
	over bool
}

func (l *limitReader) Read(p []byte) (int, error) {
	if l.left <= 0 {
		l.over = true
		return 0, ErrLimit
	}
	if int64(len(p)) > l.left {
		p = p[:l.left]
	}
	n, err := l.r.Read(p)
	l.left -= int64(n)
	return n, err
}
