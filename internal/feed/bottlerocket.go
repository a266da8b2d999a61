package feed

import (
	"bytes"
	"fmt"
	"strings"

	"github.com/scangate/scangate/internal/lazyregexp"
)

// BottlerocketUpdateInfo reads Bottlerocket's security advisories (BRSA) as
// advisories.bottlerocket.aws/updateinfo.xml.gz publishes them: a yum
// updateinfo document, as Amazon Linux's, whose collection is
// "bottlerocket". Each BRSA becomes one advisory whose aliases are its CVEs,
// with one fixed entry per binary package (the highest build if the
// architectures differ) in "Bottlerocket". Bottlerocket is one rolling
// line: a fix applies to every release below it, as Trivy reads it too.
// BRSAs list fixes only. Their severity is each entry's urgency. The feed
// is "bottlerocket".
type BottlerocketUpdateInfo struct{}

// Name returns "bottlerocket".
func (BottlerocketUpdateInfo) Name() string { return "bottlerocket" }

// Match reports whether head starts an updateinfo document, gzipped or
// not, of BRSAs.
func (BottlerocketUpdateInfo) Match(name string, head []byte) bool {
	t, ok := updateInfoHead(head)
	return ok && bytes.Contains(t, []byte("<id>BRSA-"))
}

// bottlerocketIDRe matches BRSA ids: BRSA-1bwujdrkn6nc.
var bottlerocketIDRe = lazyregexp.New(`^BRSA-[0-9a-z]+$`)

// Parse decodes one updateinfo file.
func (BottlerocketUpdateInfo) Parse(name string, data []byte) (Result, error) {
	doc, err := decodeUpdateInfo(name, data)
	if err != nil {
		return Result{}, err
	}
	var res Result
	for _, u := range doc.Updates {
		id := strings.TrimSpace(u.ID)
		skip := func(format string, args ...any) {
			res.Skipped = append(res.Skipped, Skip{File: name, Record: clipMsg(id), Reason: fmt.Sprintf(format, args...)})
		}
		if !bottlerocketIDRe.MatchString(id) {
			skip("not a BRSA id")
			continue
		}
		url := "https://advisories.bottlerocket.aws/"
		for _, r := range u.References {
			if r.Type == "brsa" && strings.HasPrefix(r.Href, "https://github.com/bottlerocket-os/") {
				url = r.Href // the advisory's own record
			}
		}
		adv := updateAdvisory(u, id, url)
		adv.Feed = "bottlerocket"
		index := map[string]int{}
		for _, c := range u.Collections {
			if c.Short != "bottlerocket" {
				skip("collection %q is not Bottlerocket's", clipMsg(c.Short))
				continue
			}
			addUpdatePackages(&adv, index, "Bottlerocket", c.Packages, u.Severity, skip)
		}
		if len(adv.Affected) == 0 {
			skip("no Bottlerocket package")
			continue
		}
		res.Advisories = append(res.Advisories, adv)
	}
	return res, nil
}
