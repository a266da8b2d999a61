package feed

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/scangate/scangate/internal/lazyregexp"
	"github.com/scangate/scangate/internal/vulndb"
)

// RedHatVEX reads Red Hat's CSAF VEX documents, one per CVE
// (security.access.redhat.com/data/csaf/v2/vex/YYYY/cve-YYYY-NNNN.json), in
// which Red Hat says, for every product and component, whether the CVE is
// fixed (and by which build), affected, not affected or under
// investigation. scangate keeps what concerns Red Hat Enterprise Linux's
// main streams, one ecosystem per major release ("Red Hat:9"), by source
// RPM name:
//
//   - fixed: each source RPM (".src") a fixed product lists, with its
//     epoch:version-release; a version below it is affected.
//   - known_affected: unfixed, or will-not-fix when Red Hat's remediation
//     says "Will not fix" (no_fix_planned), or end-of-life for "Out of
//     support scope"; under_investigation is unfixed too.
//   - known_not_affected: stored, and never matches.
//
// Products other than RHEL's main streams (EUS, AUS and other long-life
// streams, layered products) are passed over: their fixed builds would
// wrongly clear or flag a main-stream machine. Packages of a module stream
// are kept under "module:stream/name" ("nodejs:18/nodejs"), so that a
// module's builds are never compared with the non-modular package's (nor
// with another stream's); a module build whose component names no stream,
// as in documents of 2023, is left out and named in Skipped.
// Red Hat's impact (Low, Moderate, Important, Critical) is each entry's
// urgency; its CVSS vectors are the advisory's severities. The feed is
// "redhat".
type RedHatVEX struct{}

// Name returns "redhat".
func (RedHatVEX) Name() string { return "redhat" }

// Match reports whether head starts a CSAF VEX document: a JSON object with
// "document" whose category, near the start, is "csaf_vex".
func (RedHatVEX) Match(name string, head []byte) bool {
	t := bytes.TrimLeft(bytes.TrimPrefix(head, []byte("\xef\xbb\xbf")), " \t\r\n")
	return len(t) > 0 && t[0] == '{' && bytes.Contains(t, []byte(`"document"`)) &&
		csafCategoryRe.Match(t)
}

var csafCategoryRe = lazyregexp.New(`"category"\s*:\s*"csaf_vex"`)

// csafMaxDepth bounds the product tree's nesting; Red Hat's is four deep.
const csafMaxDepth = 16

type csafDoc struct {
	Document struct {
		Category string `json:"category"`
		Title    string `json:"title"`
		Tracking struct {
			ID                 string `json:"id"`
			InitialReleaseDate string `json:"initial_release_date"`
			CurrentReleaseDate string `json:"current_release_date"`
		} `json:"tracking"`
	} `json:"document"`
	ProductTree struct {
		Branches      []csafBranch `json:"branches"`
		Relationships []struct {
			FullProductName struct {
				ProductID string `json:"product_id"`
			} `json:"full_product_name"`
			ProductReference          string `json:"product_reference"`
			RelatesToProductReference string `json:"relates_to_product_reference"`
		} `json:"relationships"`
	} `json:"product_tree"`
	Vulnerabilities []struct {
		CVE   string `json:"cve"`
		Title string `json:"title"`
		Notes []struct {
			Category string `json:"category"`
			Text     string `json:"text"`
		} `json:"notes"`
		ProductStatus map[string][]string `json:"product_status"`
		Remediations  []struct {
			Category   string   `json:"category"`
			Details    string   `json:"details"`
			ProductIDs []string `json:"product_ids"`
		} `json:"remediations"`
		Threats []struct {
			Category   string   `json:"category"`
			Details    string   `json:"details"`
			ProductIDs []string `json:"product_ids"`
		} `json:"threats"`
		Scores []struct {
			CVSSv3 struct {
				VectorString string `json:"vectorString"`
			} `json:"cvss_v3"`
			CVSSv2 struct {
				VectorString string `json:"vectorString"`
			} `json:"cvss_v2"`
		} `json:"scores"`
	} `json:"vulnerabilities"`
}

type csafBranch struct {
	Category string       `json:"category"`
	Name     string       `json:"name"`
	Branches []csafBranch `json:"branches"`
	Product  *struct {
		ProductID string `json:"product_id"`
		Helper    struct {
			CPE string `json:"cpe"`
		} `json:"product_identification_helper"`
	} `json:"product"`
}

// rhelCPERe matches the CPE of a RHEL main-stream product, with its major
// release: cpe:/o:redhat:enterprise_linux:9::baseos, cpe:/a:redhat:enterprise_linux:8::appstream,
// cpe:/o:redhat:enterprise_linux:7.
var rhelCPERe = lazyregexp.New(`^cpe:/[ao]:redhat:enterprise_linux:(\d+)(::|$)`)

// csafModuleBuildRe matches the release of a module build, whose
// ".module+el8.8.0+19493+5804baf6" names the build but not the stream.
var csafModuleBuildRe = lazyregexp.New(`\.module\+el\d`)

// csafBuildRe matches a build's NEVRA: name-epoch:version-release.arch.
var csafBuildRe = lazyregexp.New(`-\d+:[^-:/]+-[^-:/]+\.[A-Za-z0-9_]+$`)

// csafModuleRe matches a module build's component: name:stream:version:context:NEVRA.
var csafModuleRe = lazyregexp.New(`^([^:/]+):([^:/]+):\d+:[0-9a-f]+:(.+)$`)

// Parse decodes one CSAF VEX document.
func (RedHatVEX) Parse(name string, data []byte) (Result, error) {
	var doc csafDoc
	if err := json.Unmarshal(bytes.TrimPrefix(data, []byte("\xef\xbb\xbf")), &doc); err != nil {
		return Result{}, fmt.Errorf("%s: csaf vex: %w", name, err)
	}
	if doc.Document.Category != "csaf_vex" {
		return Result{}, fmt.Errorf("%s: csaf document of category %q, not csaf_vex", name, clipMsg(doc.Document.Category))
	}
	releases := map[string]string{} // product id → RHEL major release
	if err := csafProducts(doc.ProductTree.Branches, releases, 0); err != nil {
		return Result{}, fmt.Errorf("%s: %w", name, err)
	}
	type part struct{ product, component string }
	parts := map[string]part{}
	for _, r := range doc.ProductTree.Relationships {
		parts[r.FullProductName.ProductID] = part{r.RelatesToProductReference, r.ProductReference}
	}
	var res Result
	published, _ := time.Parse(time.RFC3339, doc.Document.Tracking.InitialReleaseDate)
	modified, _ := time.Parse(time.RFC3339, doc.Document.Tracking.CurrentReleaseDate)
	for _, v := range doc.Vulnerabilities {
		id := v.CVE
		if id == "" {
			id = doc.Document.Tracking.ID
		}
		if id == "" {
			res.Skipped = append(res.Skipped, Skip{File: name, Reason: "vulnerability without a CVE id"})
			continue
		}
		adv := vulndb.Advisory{ID: id, Summary: v.Title, Published: published, Modified: modified, Feed: "redhat",
			References: []string{"https://access.redhat.com/security/cve/" + strings.ToLower(id)}}
		for _, n := range v.Notes {
			if n.Category == "description" {
				adv.Details = n.Text
			}
		}
		impact := map[string]string{}
		for _, th := range v.Threats {
			if th.Category == "impact" {
				for _, p := range th.ProductIDs {
					impact[p] = th.Details
				}
			}
		}
		remedy := map[string]string{} // product id → none_available / no_fix_planned details
		for _, r := range v.Remediations {
			if r.Category == "none_available" || r.Category == "no_fix_planned" {
				for _, p := range r.ProductIDs {
					remedy[p] = r.Details
				}
			}
		}
		seen := map[string]int{}
		streamless := map[string]bool{}
		add := func(pid string, af vulndb.Affected) {
			af.Urgency = impact[pid]
			key := af.Ecosystem + "\x00" + af.Package + "\x00" + string(af.Status)
			if i, dup := seen[key]; dup {
				// Several builds of one release (BaseOS and AppStream list
				// the same source): keep the highest fix.
				if c, err := vulndb.CompareVersions(af.Ecosystem, af.Fixed, adv.Affected[i].Fixed); err == nil && c > 0 {
					adv.Affected[i] = af
				}
				return
			}
			seen[key] = len(adv.Affected)
			adv.Affected = append(adv.Affected, af)
		}
		statuses := []string{"fixed", "known_affected", "under_investigation", "known_not_affected"}
		for _, st := range statuses {
			for _, pid := range v.ProductStatus[st] {
				pt, ok := parts[pid]
				if !ok {
					continue // a product, not a component of one
				}
				major, ok := releases[pt.product]
				if !ok {
					continue // not a RHEL main stream
				}
				eco := "Red Hat:" + major
				pkg, version, ok := csafComponent(pt.component, st == "fixed")
				if !ok {
					continue // a binary build of a fix; its .src is listed too
				}
				af := vulndb.Affected{Ecosystem: eco, Package: pkg}
				switch st {
				case "fixed":
					af.Status, af.Fixed = vulndb.StatusFixed, version
				case "known_not_affected":
					af.Status = vulndb.StatusNotAffected
				case "under_investigation":
					af.Status, af.Note = vulndb.StatusUnfixed, "under investigation"
				default:
					af.Status, af.Note = csafUnfixed(remedy[pid])
				}
				if st == "fixed" && !strings.Contains(pkg, "/") && csafModuleBuildRe.MatchString(version) {
					// A module build named without its stream, as
					// documents of 2023 name them: which stream it fixes
					// is unknown, and as the package's own fix it would
					// be compared with every stream's builds and with
					// the non-modular one.
					if !streamless[pkg] {
						streamless[pkg] = true
						res.Skipped = append(res.Skipped, Skip{File: name, Record: id, Reason: clipMsg(pkg) + ": module build of a stream the document does not name"})
					}
					continue
				}
				if len(af.Package) > vulndb.MaxPackageLen {
					res.Skipped = append(res.Skipped, Skip{File: name, Record: id, Reason: "component name too long"})
					continue
				}
				add(pid, af)
			}
		}
		for _, s := range v.Scores {
			for _, vec := range []string{s.CVSSv3.VectorString, s.CVSSv2.VectorString} {
				if vec == "" {
					continue
				}
				sev, err := vulndb.CVSS(vec)
				if err != nil {
					res.Skipped = append(res.Skipped, Skip{File: name, Record: id, Reason: "dropped severity: " + clipMsg(err.Error())})
					continue
				}
				sev.Source = "redhat"
				if !slices.Contains(adv.Severities, sev) {
					adv.Severities = append(adv.Severities, sev)
				}
			}
		}
		if len(adv.Affected) == 0 {
			res.Skipped = append(res.Skipped, Skip{File: name, Record: id, Reason: "no Red Hat Enterprise Linux package"})
			continue
		}
		res.Advisories = append(res.Advisories, adv)
	}
	return res, nil
}

// csafProducts maps each RHEL main-stream product id under branches to its
// major release.
func csafProducts(branches []csafBranch, out map[string]string, depth int) error {
	if depth > csafMaxDepth {
		return errors.New("csaf vex: product tree nested deeper than 16")
	}
	for _, b := range branches {
		if b.Product != nil {
			if m := rhelCPERe.FindStringSubmatch(b.Product.Helper.CPE); m != nil {
				out[b.Product.ProductID] = m[1]
			}
		}
		if err := csafProducts(b.Branches, out, depth+1); err != nil {
			return err
		}
	}
	return nil
}

// csafComponent reads the package a component names. A fixed product's
// component is a build, "curl-0:7.76.1-26.el9_3.2.src" or, in a module,
// "nodejs:18:8080020230725120544:63b34585:nodejs-1:18.17.1-1.module+el8.8.0+19757+8ca87034.src":
// only source builds are kept, with their epoch:version-release. Any other
// product's component is a name, "curl", or a module's, "nodejs:18/nodejs".
func csafComponent(c string, build bool) (pkg, version string, ok bool) {
	if !build {
		c = strings.TrimSuffix(c, ".src") // "curl.src" is curl
		if strings.ContainsAny(c, " \t\r\n") || c == "" || csafBuildRe.MatchString(c) {
			// A build listed as not affected ("pg_repack-debuginfo-0:1.4.8-1.module+el8.8.0+17071+aaaceaa4.x86_64")
			// names no package as a whole.
			return "", "", false
		}
		return c, "", true
	}
	module := ""
	if m := csafModuleRe.FindStringSubmatch(c); m != nil {
		module, c = m[1]+":"+m[2]+"/", m[3]
	}
	nevr, ok := strings.CutSuffix(c, ".src")
	if !ok {
		return "", "", false
	}
	r := strings.LastIndexByte(nevr, '-')
	if r <= 0 {
		return "", "", false
	}
	v := strings.LastIndexByte(nevr[:r], '-')
	if v <= 0 {
		return "", "", false
	}
	name, evr := nevr[:v], nevr[v+1:]
	if strings.HasPrefix(evr, "0:") {
		evr = evr[2:] // rpm compares a missing epoch as 0
	}
	return module + name, evr, true
}

// csafUnfixed turns a known_affected component's remediation into a status.
func csafUnfixed(details string) (vulndb.Status, string) {
	switch strings.ToLower(strings.TrimSpace(details)) {
	case "will not fix":
		return vulndb.StatusWillNotFix, details
	case "out of support scope":
		return vulndb.StatusEndOfLife, details
	}
	return vulndb.StatusUnfixed, clipMsg(details)
}
