package feed

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"sort"
	"strings"

	"go.yaml.in/yaml/v3"

	"github.com/scangate/scangate/internal/lazyregexp"
	"github.com/scangate/scangate/internal/vulndb"
)

// AlpineSecDB reads Alpine's security database (secdb), in the YAML of the
// old alpine-secdb repository or the JSON of secdb.alpinelinux.org
// (v3.X/main.json), and the Wolfi and Chainguard flavour of that JSON, which
// has no distroversion. Each package's secfixes map a fixed version to the
// ids it fixes; every id becomes one advisory per file, with one affected
// entry per origin package. The feed is "alpine:v3.10/main" (distroversion
// and reponame), or "wolfi" or "chainguard".
type AlpineSecDB struct{}

// Name returns "alpine".
func (AlpineSecDB) Name() string { return "alpine" }

// Match reports whether head starts a secdb document: top-level "packages"
// and "distroversion" or "apkurl", in JSON or block YAML.
func (AlpineSecDB) Match(name string, head []byte) bool {
	keys := alpineHeadKeys(head)
	return keys["packages"] && (keys["distroversion"] || keys["apkurl"])
}

// alpineHeadKeys returns the top-level keys found in head, a JSON object or a
// block YAML mapping, as far as head goes.
func alpineHeadKeys(head []byte) map[string]bool {
	keys := map[string]bool{}
	head = bytes.TrimPrefix(head, []byte("\xef\xbb\xbf"))
	if t := bytes.TrimLeft(head, " \t\r\n"); len(t) > 0 && t[0] == '{' {
		d := json.NewDecoder(bytes.NewReader(t))
		d.Token()
		for d.More() {
			k, err := d.Token()
			if err != nil {
				break
			}
			keys[fmt.Sprint(k)] = true
			var skip json.RawMessage
			if err := d.Decode(&skip); err != nil {
				break
			}
		}
		return keys
	}
	sc := bufio.NewScanner(bytes.NewReader(head))
	for sc.Scan() {
		if k, _, ok := strings.Cut(sc.Text(), ":"); ok && k != "" && !strings.ContainsAny(k, " \t#-\"'") {
			keys[k] = true
		}
	}
	return keys
}

// alpineDoc is a secdb file. Secfixes map a version to entries of ids.
type alpineDoc struct {
	DistroVersion string `json:"distroversion" yaml:"distroversion"`
	RepoName      string `json:"reponame" yaml:"reponame"`
	URLPrefix     string `json:"urlprefix" yaml:"urlprefix"`
	APKURL        string `json:"apkurl" yaml:"apkurl"`
	Packages      []struct {
		Pkg struct {
			Name     string              `json:"name" yaml:"name"`
			Secfixes map[string][]string `json:"secfixes" yaml:"secfixes"`
		} `json:"pkg" yaml:"pkg"`
	} `json:"packages" yaml:"packages"`
}

var (
	// alpineCVERe finds a CVE id at the start of a token, so that
	// "CVE-2017-17434-1" and "CVE-2019-19451.patch" still name their CVE.
	alpineCVERe = lazyregexp.New(`^CVE-\d{4}-\d{4,}`)
	// alpineOtherIDRe matches the other ids secfixes use: XSA-182,
	// GHSA-jq35-85cj-fj4p, TALOS-2017-0488, ALPINE-13661.
	alpineOtherIDRe = lazyregexp.New(`^(GHSA(-[0-9a-z]{4}){3}|[A-Za-z]+(-[A-Za-z]+)*(-\d+)+)$`)
	// alpineReleaseRe matches a distroversion.
	alpineReleaseRe = lazyregexp.New(`^(v\d+\.\d+|edge)$`)
)

// Parse decodes one secdb file. An entry with no id in it, or a version the
// Alpine order cannot parse, is skipped. When one package lists an id under
// several versions (fixes on two upstream branches, or a fix redone), the
// highest version is kept, so that no version below any listed fix passes.
func (AlpineSecDB) Parse(name string, data []byte) (Result, error) {
	var doc alpineDoc
	data = bytes.TrimPrefix(data, []byte("\xef\xbb\xbf"))
	var err error
	if t := bytes.TrimLeft(data, " \t\r\n"); len(t) > 0 && t[0] == '{' {
		err = json.Unmarshal(data, &doc)
	} else {
		err = yaml.Unmarshal(data, &doc)
	}
	if err != nil {
		return Result{}, fmt.Errorf("%s: alpine secdb: %w", name, err)
	}
	eco, feedName := "Alpine:"+doc.DistroVersion, "alpine:"+doc.DistroVersion
	if doc.RepoName != "" {
		feedName += "/" + doc.RepoName
	}
	switch {
	case doc.DistroVersion == "" && doc.APKURL == "" && doc.Packages == nil:
		return Result{}, fmt.Errorf("%s: not an alpine secdb: no distroversion, apkurl or packages", name)
	case doc.DistroVersion == "" && strings.Contains(doc.URLPrefix, "cgr.dev"):
		eco, feedName = "Chainguard", "chainguard"
	case doc.DistroVersion == "":
		eco, feedName = "Wolfi", "wolfi"
	case !alpineReleaseRe.MatchString(doc.DistroVersion):
		return Result{}, fmt.Errorf("%s: distroversion %q is not an Alpine release", name, clipMsg(doc.DistroVersion))
	case strings.ContainsAny(doc.RepoName, " \t\r\n/") || len(doc.RepoName) > 64:
		return Result{}, fmt.Errorf("%s: reponame %q", name, clipMsg(doc.RepoName))
	}

	p := alpineParse{name: name, eco: eco, feed: feedName, index: map[string]int{}, seen: map[string]int{}}
	for _, pk := range doc.Packages {
		p.pkg(pk.Pkg.Name, pk.Pkg.Secfixes)
	}
	return p.res, nil
}

// alpineParse is the state of one Parse.
type alpineParse struct {
	name, eco, feed string
	res             Result
	index           map[string]int // id → advisory
	seen            map[string]int // id, package → affected; id, alias → -1
}

func (p *alpineParse) skip(record, format string, args ...any) {
	p.res.Skipped = append(p.res.Skipped, Skip{File: p.name, Record: record, Reason: fmt.Sprintf(format, args...)})
}

// pkg adds one package's secfixes, in version order so that the result
// does not depend on map order.
func (p *alpineParse) pkg(pkg string, secfixes map[string][]string) {
	if pkg == "" {
		if len(secfixes) > 0 {
			p.skip("", "package without a name")
		}
		return
	}
	versions := make([]string, 0, len(secfixes))
	for v := range secfixes {
		versions = append(versions, v)
	}
	sort.Strings(versions)
	for _, v := range versions {
		if _, err := vulndb.ParseVersion(p.eco, v); err != nil {
			p.skip(clipMsg(pkg)+" "+clipMsg(v), "%v", err)
			continue
		}
		for _, entry := range secfixes[v] {
			ids, aliases := alpineIDs(entry)
			if len(ids) == 0 {
				p.skip(clipMsg(pkg)+" "+clipMsg(v), "no advisory id in secfix %q", clipMsg(entry))
			}
			for _, id := range ids {
				p.add(id, pkg, v, aliases)
			}
		}
	}
}

// add records that pkg fixes id at version v. When the package lists the
// id more than once, the highest version is kept.
func (p *alpineParse) add(id, pkg, v string, aliases []string) {
	i, ok := p.index[id]
	if !ok {
		i = len(p.res.Advisories)
		p.index[id] = i
		p.res.Advisories = append(p.res.Advisories, vulndb.Advisory{ID: id, Feed: p.feed})
	}
	a := &p.res.Advisories[i]
	for _, al := range aliases {
		if _, dup := p.seen[id+"\x00"+al]; !dup && al != id {
			p.seen[id+"\x00"+al] = -1
			a.Aliases = append(a.Aliases, al)
		}
	}
	af := vulndb.Affected{Ecosystem: p.eco, Package: pkg, Status: vulndb.StatusFixed, Fixed: v}
	if v == "0" {
		af = vulndb.Affected{Ecosystem: p.eco, Package: pkg, Status: vulndb.StatusNotAffected}
	}
	key := id + "\x00" + pkg
	j, dup := p.seen[key]
	if !dup {
		p.seen[key] = len(a.Affected)
		a.Affected = append(a.Affected, af)
		return
	}
	prev := a.Affected[j].Fixed
	if prev == "" {
		prev = "0"
	}
	if c, err := vulndb.CompareVersions(p.eco, v, prev); err == nil && c > 0 {
		a.Affected[j] = af
	}
}

// alpineIDs picks the ids out of one secfix entry, which may hold several
// ("CVE-2016-6258 XSA-182") and comments ("CVE-2018-14468 (FrameRelay)").
// CVEs are the advisories. The other ids are the aliases of a lone CVE (but
// not of several, as XSA-254 covers three), or else advisories themselves.
func alpineIDs(entry string) (ids, aliases []string) {
	for _, tok := range strings.Fields(entry) {
		if id := alpineCVERe.FindString(tok); id != "" && len(id) <= vulndb.MaxIDLen {
			ids = append(ids, id)
		} else if alpineOtherIDRe.MatchString(tok) && len(tok) <= vulndb.MaxIDLen {
			aliases = append(aliases, tok)
		}
	}
	switch len(ids) {
	case 0:
		return aliases, nil
	case 1:
		return ids, aliases
	}
	return ids, nil
}
