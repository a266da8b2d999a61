package feed

import (
	"bytes"
	"encoding/xml"
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/scangate/scangate/internal/lazyregexp"
	"github.com/scangate/scangate/internal/vulndb"
)

// SUSECVRF reads SUSE's security advisories in CVRF 1.1, one document per
// advisory (SUSE-SU-2019:3295-1, openSUSE-SU-2018:1633-1), as SUSE publishes
// them together in ftp.suse.com/pub/projects/security/cvrf.tar.bz2. Each
// document lists, in its product tree, the binary RPMs the update ships as
// components of each product ("glibc-2.26-lp150.11.3.2 as a component of
// openSUSE Leap 15.0"), and for each CVE the product components it fixes.
// scangate makes each document one advisory whose aliases are its CVEs, with
// one fixed entry per product and binary package:
//
//   - The ecosystem is the product as SUSE's OSV records name it: "SUSE "
//     becomes "SUSE:", "openSUSE " becomes "openSUSE:" ("SUSE:Linux
//     Enterprise Module for Basesystem 15 SP5", "openSUSE:Leap 15.0").
//     vulndb folds a service pack's products together (see its distro.go).
//   - Packages are binary RPMs, matched by the installed package's own name.
//     SUSE's data is per source RPM underneath (every binary of a source
//     gets the same status), but the CVRF names each binary, so nothing is
//     lost by not resolving source RPMs. (SUSE's OSV records name the source
//     RPM instead, with the binaries in ecosystem_specific.)
//   - CVRF names no epoch; SUSE's packages have none.
//   - SUSE lists fixes only: the CVRF says nothing of unfixed or not-affected
//     products, so those never match.
//
// SUSE's rating of each CVE (low, moderate, important, critical) is kept as
// each entry's urgency, the highest of the document's CVEs; CVSS vectors, in
// the newer documents, are the advisory's severities. The feed is "suse".
type SUSECVRF struct{}

// Name returns "suse".
func (SUSECVRF) Name() string { return "suse" }

// Match reports whether head starts a CVRF document (<cvrfdoc near the
// start) published by SUSE.
func (SUSECVRF) Match(name string, head []byte) bool {
	t := bytes.TrimLeft(bytes.TrimPrefix(head, []byte("\xef\xbb\xbf")), " \t\r\n")
	if !bytes.HasPrefix(t, []byte("<")) {
		return false
	}
	i := bytes.Index(t, []byte("<cvrfdoc"))
	return i >= 0 && i < 512 && bytes.Contains(t, []byte("SUSE"))
}

// suseMaxProducts bounds the product components of one document: SUSE's
// largest, kernel updates, list a few thousand.
const suseMaxProducts = 100_000

type cvrfDoc struct {
	XMLName  xml.Name `xml:"cvrfdoc"`
	Title    string   `xml:"DocumentTitle"`
	Tracking struct {
		ID      string `xml:"Identification>ID"`
		Initial string `xml:"InitialReleaseDate"`
		Current string `xml:"CurrentReleaseDate"`
	} `xml:"DocumentTracking"`
	Notes []struct {
		Title string `xml:"Title,attr"`
		Text  string `xml:",chardata"`
	} `xml:"DocumentNotes>Note"`
	References []struct {
		URL string `xml:"URL"`
	} `xml:"DocumentReferences>Reference"`
	Relationships []struct {
		Package string `xml:"ProductReference,attr"`
		Type    string `xml:"RelationType,attr"`
		Product string `xml:"RelatesToProductReference,attr"`
		Name    struct {
			ProductID string `xml:"ProductID,attr"`
		} `xml:"FullProductName"`
	} `xml:"ProductTree>Relationship"`
	Vulnerabilities []struct {
		CVE      string `xml:"CVE"`
		Statuses []struct {
			Type string   `xml:"Type,attr"`
			IDs  []string `xml:"ProductID"`
		} `xml:"ProductStatuses>Status"`
		Threats []struct {
			Type        string `xml:"Type,attr"`
			Description string `xml:"Description"`
		} `xml:"Threats>Threat"`
		Vectors []string `xml:"CVSSScoreSets>ScoreSetV3>VectorV3"`
	} `xml:"Vulnerability"`
}

// suseIDRe matches SUSE's advisory ids: SUSE-SU-2019:3295-1,
// openSUSE-SU-2018:1633-1, SUSE-RU/-FU/-OU, and the old SUSE-SR:2010:023.
var suseIDRe = lazyregexp.New(`^(open)?SUSE-[A-Z]{2}[-:]\d{4}:\d+(-\d+)?$`)

// suseRatings orders SUSE's ratings.
var suseRatings = map[string]int{"low": 1, "moderate": 2, "important": 3, "critical": 4}

// Parse decodes one CVRF document.
func (SUSECVRF) Parse(name string, data []byte) (Result, error) {
	var doc cvrfDoc
	// encoding/xml bounds nesting depth itself; the file's size is bounded
	// by Load.
	if err := xml.Unmarshal(data, &doc); err != nil {
		return Result{}, fmt.Errorf("%s: cvrf: %w", name, err)
	}
	var res Result
	id := strings.TrimSpace(doc.Tracking.ID)
	skip := func(format string, args ...any) {
		res.Skipped = append(res.Skipped, Skip{File: name, Record: clipMsg(id), Reason: fmt.Sprintf(format, args...)})
	}
	if !suseIDRe.MatchString(id) {
		skip("not a SUSE advisory id")
		return res, nil
	}
	if n := len(doc.Relationships); n > suseMaxProducts {
		return Result{}, fmt.Errorf("%s: cvrf: %d product components: %w (%d)", name, n, ErrLimit, suseMaxProducts)
	}
	adv := vulndb.Advisory{ID: id, Summary: strings.TrimSpace(doc.Title), Feed: "suse",
		References: []string{suseURL(id)}}
	adv.Published, _ = time.Parse(time.RFC3339, strings.TrimSpace(doc.Tracking.Initial))
	adv.Modified, _ = time.Parse(time.RFC3339, strings.TrimSpace(doc.Tracking.Current))
	for _, n := range doc.Notes {
		if n.Title == "Details" {
			adv.Details = strings.TrimSpace(n.Text)
		}
	}
	// Each fixed product id ("openSUSE Leap 15.0:glibc-2.26-lp150.11.3.2")
	// is a relationship's: its product and its package's name-version.
	type component struct{ product, nvr string }
	components := map[string]component{}
	for _, r := range doc.Relationships {
		if pid := strings.TrimSpace(r.Name.ProductID); r.Type == "Default Component Of" && pid != "" {
			components[pid] = component{strings.TrimSpace(r.Product), strings.TrimSpace(r.Package)}
		}
	}
	rating, fixed := 0, map[string]bool{}
	for _, v := range doc.Vulnerabilities {
		if cve := strings.TrimSpace(v.CVE); strings.HasPrefix(cve, "CVE-") && len(cve) <= vulndb.MaxIDLen {
			adv.Aliases = append(adv.Aliases, cve)
		}
		for _, s := range v.Statuses {
			if s.Type != "Fixed" {
				continue
			}
			for _, pid := range s.IDs {
				fixed[strings.TrimSpace(pid)] = true
			}
		}
		for _, t := range v.Threats {
			if r := suseRatings[strings.ToLower(strings.TrimSpace(t.Description))]; t.Type == "Impact" && r > rating {
				rating = r
			}
		}
		for _, vec := range v.Vectors {
			sev, err := vulndb.CVSS(strings.TrimSpace(vec))
			if err != nil {
				skip("dropped CVSS vector: %v", err)
				continue
			}
			sev.Source = "suse"
			if !slices.Contains(adv.Severities, sev) {
				adv.Severities = append(adv.Severities, sev)
			}
		}
	}
	urgency := ""
	for word, r := range suseRatings {
		if r == rating {
			urgency = word
		}
	}
	index := map[string]int{}
	for _, pid := range slices.Sorted(maps.Keys(fixed)) {
		c, ok := components[pid]
		if !ok {
			skip("fixed product %q is not in the product tree", clipMsg(pid))
			continue
		}
		eco, ok := suseEcosystem(c.product)
		if !ok {
			continue // SUSE Manager, Storage, CaaS: not an operating system scangate detects
		}
		pkg, version, ok := splitNVR(c.nvr)
		if !ok {
			skip("component %q is not name-version-release", clipMsg(c.nvr))
			continue
		}
		if _, err := vulndb.ParseVersion(eco, version); err != nil {
			skip("%v", err)
			continue
		}
		af := vulndb.Affected{Ecosystem: eco, Package: pkg, Status: vulndb.StatusFixed, Fixed: version, Urgency: urgency}
		key := eco + "\x00" + pkg
		if i, dup := index[key]; dup {
			// Several architectures' builds of one package: the highest.
			if cmp, err := vulndb.CompareVersions(eco, version, adv.Affected[i].Fixed); err == nil && cmp > 0 {
				adv.Affected[i] = af
			}
			continue
		}
		index[key] = len(adv.Affected)
		adv.Affected = append(adv.Affected, af)
	}
	if len(adv.Affected) == 0 {
		skip("no fixed package of a SUSE Linux Enterprise or openSUSE product")
		return res, nil
	}
	slices.SortFunc(adv.Affected, func(a, b vulndb.Affected) int {
		return strings.Compare(a.Ecosystem+"\x00"+a.Package, b.Ecosystem+"\x00"+b.Package)
	})
	res.Advisories = append(res.Advisories, adv)
	return res, nil
}

// suseEcosystem names a CVRF product as SUSE's OSV records do: "SUSE Linux
// Enterprise Server 15 SP5" is "SUSE:Linux Enterprise Server 15 SP5",
// "openSUSE Leap 15.0" is "openSUSE:Leap 15.0". Products that are not an
// operating system (SUSE Manager, SUSE Enterprise Storage, SUSE CaaS
// Platform) are left out; modules of those ("SUSE Linux Enterprise Module
// for SUSE Manager Server 4.3") are kept, and never match a release.
func suseEcosystem(product string) (string, bool) {
	if rest, ok := strings.CutPrefix(product, "openSUSE "); ok && rest != "" {
		return "openSUSE:" + rest, true
	}
	if rest, ok := strings.CutPrefix(product, "SUSE Linux "); ok && rest != "" {
		return "SUSE:Linux " + rest, true // SUSE Linux Enterprise ..., SUSE Linux Micro 6.0
	}
	return "", false
}

// splitNVR splits an RPM's name-version-release, "kernel-rt-4.12.14-14.14.3",
// into its name and version-release.
func splitNVR(nvr string) (name, version string, ok bool) {
	r := strings.LastIndexByte(nvr, '-')
	if r <= 0 || r == len(nvr)-1 {
		return "", "", false
	}
	v := strings.LastIndexByte(nvr[:r], '-')
	if v <= 0 || v == r-1 {
		return "", "", false
	}
	return nvr[:v], nvr[v+1:], true
}

var suseYearRe = lazyregexp.New(`-(\d{4}):`)

// suseURL links an advisory to SUSE's page for it:
// SUSE-SU-2019:3295-1 is .../announcement/2019/suse-su-20193295-1/.
func suseURL(id string) string {
	year := ""
	if m := suseYearRe.FindStringSubmatch(id); m != nil {
		year = m[1]
	}
	return "https://www.suse.com/support/update/announcement/" + year + "/" + strings.ToLower(strings.ReplaceAll(id, ":", "")) + "/"
}
