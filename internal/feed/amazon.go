package feed

import (
	"bytes"
	"compress/gzip"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"time"

	"github.com/scangate/scangate/internal/lazyregexp"
	"github.com/scangate/scangate/internal/vulndb"
)

// AmazonUpdateInfo reads the Amazon Linux Security Advisories (ALAS) as the
// package repositories publish them: a yum updateinfo.xml (gzipped as
// repodata serves it, or not), one <update> per advisory with the CVEs it
// fixes as references and the fixed binary packages in its pkglist. Each
// ALAS becomes one advisory whose aliases are its CVEs, with one fixed entry
// per binary package (the highest build if several arches differ), in
// "Amazon Linux:2" or "Amazon Linux:2023" after the collection's release.
// ALAS lists fixes only: Amazon publishes nothing on unfixed or
// not-affected packages. The advisory's severity is each entry's urgency.
// The feed is "amazon:2" or "amazon:2023".
type AmazonUpdateInfo struct{}

// Name returns "amazon".
func (AmazonUpdateInfo) Name() string { return "amazon" }

// amazonMaxXML bounds a decompressed updateinfo: Amazon Linux 2's is about
// 40 MB.
const amazonMaxXML = 512 << 20

// Match reports whether head starts an updateinfo document, gzipped or not,
// that is not Bottlerocket's (whose ids are BRSA-...).
func (AmazonUpdateInfo) Match(name string, head []byte) bool {
	t, ok := updateInfoHead(head)
	return ok && !bytes.Contains(t, []byte("<id>BRSA-"))
}

// updateInfoHead returns the start of an updateinfo document, gunzipped,
// and whether head starts one.
func updateInfoHead(head []byte) ([]byte, bool) {
	if len(head) > 2 && head[0] == 0x1f && head[1] == 0x8b {
		zr, err := gzip.NewReader(bytes.NewReader(head))
		if err != nil {
			return nil, false
		}
		buf := make([]byte, 1024)
		n, _ := io.ReadFull(zr, buf)
		head = buf[:n]
	}
	t := bytes.TrimLeft(head, " \t\r\n")
	if !bytes.HasPrefix(t, []byte("<?xml")) && !bytes.HasPrefix(t, []byte("<updates")) {
		return nil, false
	}
	i := bytes.Index(t, []byte("<updates"))
	return t, i >= 0 && i < 256
}

type updateInfo struct {
	XMLName xml.Name       `xml:"updates"`
	Updates []updateRecord `xml:"update"`
}

type updateRecord struct {
	Type     string `xml:"type,attr"`
	ID       string `xml:"id"`
	Title    string `xml:"title"`
	Severity string `xml:"severity"`
	Issued   struct {
		Date string `xml:"date,attr"`
	} `xml:"issued"`
	Updated struct {
		Date string `xml:"date,attr"`
	} `xml:"updated"`
	Description string `xml:"description"`
	References  []struct {
		Href string `xml:"href,attr"`
		ID   string `xml:"id,attr"`
		Type string `xml:"type,attr"`
	} `xml:"references>reference"`
	Collections []struct {
		Short    string          `xml:"short,attr"`
		Packages []updatePackage `xml:"package"`
	} `xml:"pkglist>collection"`
}

// amazonCollectionRe matches the core collections: amazon-linux-2,
// amazon-linux-2023 (and the 2022 preview). Extras topics
// ("amazon-linux-2--extras-...") are other repositories, not the core.
var amazonCollectionRe = lazyregexp.New(`^amazon-linux-(2|2022|2023)$`)

// amazonIDRe matches ALAS ids: ALAS-2018-1000, ALAS2-2018-939, ALAS2023-2023-001.
var amazonIDRe = lazyregexp.New(`^ALAS[0-9A-Z]*-\d{4}-\d+$`)

// decodeUpdateInfo decodes an updateinfo document, gzipped or not.
func decodeUpdateInfo(name string, data []byte) (updateInfo, error) {
	if len(data) > 2 && data[0] == 0x1f && data[1] == 0x8b {
		zr, err := gzip.NewReader(bytes.NewReader(data))
		if err != nil {
			return updateInfo{}, fmt.Errorf("%s: updateinfo: %w", name, err)
		}
		data, err = io.ReadAll(io.LimitReader(zr, amazonMaxXML+1))
		if err != nil {
			return updateInfo{}, fmt.Errorf("%s: updateinfo: %w", name, err)
		}
		if len(data) > amazonMaxXML {
			return updateInfo{}, fmt.Errorf("%s: updateinfo larger than %d bytes decompressed: %w", name, amazonMaxXML, ErrLimit)
		}
	}
	var doc updateInfo
	// encoding/xml bounds nesting depth itself.
	if err := xml.Unmarshal(data, &doc); err != nil {
		return updateInfo{}, fmt.Errorf("%s: updateinfo: %w", name, err)
	}
	if len(doc.Updates) == 0 {
		return updateInfo{}, fmt.Errorf("%s: updateinfo: %w", name, errors.New("no <update> in <updates>"))
	}
	return doc, nil
}

// Parse decodes one updateinfo file.
func (AmazonUpdateInfo) Parse(name string, data []byte) (Result, error) {
	doc, err := decodeUpdateInfo(name, data)
	if err != nil {
		return Result{}, err
	}
	var res Result
	skip := func(record, format string, args ...any) {
		res.Skipped = append(res.Skipped, Skip{File: name, Record: clipMsg(record), Reason: fmt.Sprintf(format, args...)})
	}
	for _, u := range doc.Updates {
		id := strings.TrimSpace(u.ID)
		if !amazonIDRe.MatchString(id) {
			skip(id, "not an ALAS id")
			continue
		}
		adv := updateAdvisory(u, id, amazonURL(id))
		index := map[string]int{}
		for _, c := range u.Collections {
			m := amazonCollectionRe.FindStringSubmatch(c.Short)
			if m == nil {
				skip(id, "collection %q is not an Amazon Linux core repository", clipMsg(c.Short))
				continue
			}
			adv.Feed = "amazon:" + m[1]
			addUpdatePackages(&adv, index, "Amazon Linux:"+m[1], c.Packages, u.Severity, func(format string, args ...any) { skip(id, format, args...) })
		}
		if len(adv.Affected) == 0 {
			skip(id, "no Amazon Linux package")
			continue
		}
		res.Advisories = append(res.Advisories, adv)
	}
	return res, nil
}

// updateAdvisory makes an update an advisory with no affected package yet:
// its CVE references are the aliases.
func updateAdvisory(u updateRecord, id, url string) vulndb.Advisory {
	adv := vulndb.Advisory{ID: id, Summary: strings.TrimSpace(u.Title), Details: strings.TrimSpace(u.Description),
		References: []string{url}, Published: amazonTime(u.Issued.Date), Modified: amazonTime(u.Updated.Date)}
	for _, r := range u.References {
		if r.Type == "cve" && strings.HasPrefix(r.ID, "CVE-") && len(r.ID) <= vulndb.MaxIDLen && !slices.Contains(adv.Aliases, r.ID) {
			adv.Aliases = append(adv.Aliases, r.ID)
		}
	}
	return adv
}

// updatePackage is one binary package of an update's collection.
type updatePackage = struct {
	Name    string `xml:"name,attr"`
	Epoch   string `xml:"epoch,attr"`
	Version string `xml:"version,attr"`
	Release string `xml:"release,attr"`
	Arch    string `xml:"arch,attr"`
}

// addUpdatePackages adds a collection's packages to adv as fixed in eco,
// one entry per package: the highest build where architectures differ.
// index keeps each package's entry across the update's collections.
func addUpdatePackages(adv *vulndb.Advisory, index map[string]int, eco string, pkgs []updatePackage, severity string, skip func(string, ...any)) {
	for _, p := range pkgs {
		v := p.Version + "-" + p.Release
		if p.Epoch != "" && p.Epoch != "0" {
			v = p.Epoch + ":" + v
		}
		if p.Name == "" || p.Version == "" || p.Release == "" {
			skip("package without a name, version or release")
			continue
		}
		if _, err := vulndb.ParseVersion(eco, v); err != nil {
			skip("%v", err)
			continue
		}
		af := vulndb.Affected{Ecosystem: eco, Package: p.Name, Status: vulndb.StatusFixed, Fixed: v, Urgency: strings.ToLower(severity)}
		if i, dup := index[eco+"\x00"+p.Name]; dup {
			if c, err := vulndb.CompareVersions(eco, v, adv.Affected[i].Fixed); err == nil && c > 0 {
				adv.Affected[i] = af
			}
			continue
		}
		index[eco+"\x00"+p.Name] = len(adv.Affected)
		adv.Affected = append(adv.Affected, af)
	}
}

// amazonTime reads updateinfo's "2018-02-07 18:49" dates.
func amazonTime(s string) time.Time {
	for _, layout := range []string{"2006-01-02 15:04", "2006-01-02 15:04:05", time.RFC3339} {
		if t, err := time.Parse(layout, s); err == nil {
			return t
		}
	}
	return time.Time{}
}

// amazonURL links an ALAS to its page.
func amazonURL(id string) string {
	switch {
	case strings.HasPrefix(id, "ALAS2023-"):
		return "https://alas.aws.amazon.com/AL2023/" + id + ".html"
	case strings.HasPrefix(id, "ALAS2-"):
		return "https://alas.aws.amazon.com/AL2/" + id + ".html"
	}
	return "https://alas.aws.amazon.com/" + id + ".html"
}
