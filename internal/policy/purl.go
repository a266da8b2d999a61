package policy

import (
	"errors"
	"fmt"
	"net/url"
	"strings"
)

// maxPURLLen bounds a package URL from an ignore file or a VEX document.
const maxPURLLen = 2048

// A purl is a package URL split into its parts, percent-decoded. It is the
// little of the purl specification that matching needs; see matches.
type purl struct {
	typ, namespace, name, version, subpath string
	qualifiers                             map[string]string
}

// parsePURL splits a package URL ("pkg:deb/debian/zlib1g@1.2.13?arch=amd64")
// as the purl specification does, splitting the version off only the last
// path segment so that an unescaped npm scope ("pkg:npm/@types/node") is
// still read as a namespace.
func parsePURL(s string) (purl, error) {
	if len(s) > maxPURLLen {
		return purl{}, fmt.Errorf("package URL of %d bytes is longer than %d", len(s), maxPURLLen)
	}
	if len(s) < 4 || !strings.EqualFold(s[:4], "pkg:") {
		return purl{}, errors.New(`package URL does not start with "pkg:"`)
	}
	rest := strings.TrimLeft(s[4:], "/")
	var p purl
	var err error
	if i := strings.LastIndexByte(rest, '#'); i >= 0 {
		if p.subpath, err = unescape(strings.Trim(rest[i+1:], "/")); err != nil {
			return purl{}, fmt.Errorf("package URL subpath: %w", err)
		}
		rest = rest[:i]
	}
	if i := strings.LastIndexByte(rest, '?'); i >= 0 {
		if p.qualifiers, err = parseQualifiers(rest[i+1:]); err != nil {
			return purl{}, err
		}
		rest = rest[:i]
	}
	typ, path, ok := strings.Cut(rest, "/")
	if !ok || !validPURLType(typ) {
		return purl{}, fmt.Errorf("package URL type %q is not valid", clip(typ))
	}
	p.typ = strings.ToLower(typ)
	if at := strings.LastIndexByte(path, '@'); at > strings.LastIndexByte(path, '/') {
		if p.version, err = unescape(path[at+1:]); err != nil {
			return purl{}, fmt.Errorf("package URL version: %w", err)
		}
		path = path[:at]
	}
	var segs []string
	for seg := range strings.SplitSeq(path, "/") {
		if seg == "" {
			continue
		}
		dec, err := unescape(seg)
		if err != nil {
			return purl{}, fmt.Errorf("package URL path: %w", err)
		}
		segs = append(segs, dec)
	}
	if len(segs) == 0 {
		return purl{}, errors.New("package URL has no name")
	}
	p.name = segs[len(segs)-1]
	p.namespace = strings.Join(segs[:len(segs)-1], "/")
	return p, nil
}

// validPURLType reports whether t is a purl type: an ASCII letter, then
// letters, digits, '.', '+' or '-'.
func validPURLType(t string) bool {
	if t == "" || !isLetter(t[0]) {
		return false
	}
	for i := 1; i < len(t); i++ {
		c := t[i]
		if !isLetter(c) && !('0' <= c && c <= '9') && c != '.' && c != '+' && c != '-' {
			return false
		}
	}
	return true
}

func isLetter(c byte) bool { return 'a' <= c|0x20 && c|0x20 <= 'z' }

// parseQualifiers reads "k=v&k=v"; keys are case-insensitive and a key with
// an empty value is dropped, as the purl specification says.
func parseQualifiers(s string) (map[string]string, error) {
	q := map[string]string{}
	for kv := range strings.SplitSeq(s, "&") {
		if kv == "" {
			continue
		}
		k, v, ok := strings.Cut(kv, "=")
		if !ok || k == "" {
			return nil, fmt.Errorf("package URL qualifier %q is not key=value", clip(kv))
		}
		k = strings.ToLower(k)
		if _, dup := q[k]; dup {
			return nil, fmt.Errorf("package URL qualifier %q given twice", clip(k))
		}
		dec, err := unescape(v)
		if err != nil {
			return nil, fmt.Errorf("package URL qualifier %q: %w", clip(k), err)
		}
		if dec != "" {
			q[k] = dec
		}
	}
	return q, nil
}

func unescape(s string) (string, error) {
	dec, err := url.PathUnescape(s)
	if err != nil {
		return "", fmt.Errorf("bad percent-encoding in %q", clip(s))
	}
	return dec, nil
}

// caseFolded reports whether the purl specification lowercases the
// namespace and name of packages of type typ, so that they compare without
// case.
func caseFolded(typ string) bool {
	switch typ {
	case "alpm", "apk", "bitbucket", "composer", "deb", "github", "hex", "npm", "pypi":
		return true
	}
	return false
}

// matches reports whether the package URL p, as written in an ignore file or
// a VEX document, covers the package URL of an installed package, pkg. Type,
// namespace and name must be equal (without case for the types the purl
// specification lowercases, and with PyPI's "_" equal to "-"). A version,
// subpath or qualifier in p narrows the match: pkg must have the same one.
// Qualifiers p leaves out are not compared, so "pkg:deb/debian/zlib1g" covers
// every architecture and release of zlib1g.
func (p purl) matches(pkg purl) bool {
	if p.typ != pkg.typ || !p.sameName(pkg) {
		return false
	}
	if p.version != "" && p.version != pkg.version {
		return false
	}
	if p.subpath != "" && p.subpath != pkg.subpath {
		return false
	}
	for k, v := range p.qualifiers {
		if w, ok := pkg.qualifiers[k]; !ok || w != v {
			return false
		}
	}
	return true
}

func (p purl) sameName(q purl) bool {
	if !caseFolded(p.typ) {
		return p.namespace == q.namespace && p.name == q.name
	}
	norm := func(s string) string {
		s = strings.ToLower(s)
		if p.typ == "pypi" {
			s = strings.ReplaceAll(s, "_", "-")
		}
		return s
	}
	return norm(p.namespace) == norm(q.namespace) && norm(p.name) == norm(q.name)
}

// clip shortens s for an error message.
func clip(s string) string {
	const max = 80
	if len(s) <= max {
		return s
	}
	cut := max
	for cut > 0 && !utf8Start(s[cut]) {
		cut--
	}
	return s[:cut] + "…"
}

func utf8Start(b byte) bool { return b&0xC0 != 0x80 }
