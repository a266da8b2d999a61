package auth

import (
	"errors"
	"fmt"
	"path"
	"strings"
)

// Limits of a token's repository scope: a scope is read from outside
// (a request body, a command line) and matched on every registry and git
// request, so it stays small.
const (
	// MaxScopePatterns is the most patterns one token may carry.
	MaxScopePatterns = 32
	// MaxPatternLen is the longest pattern: distribution's longest
	// repository name.
	MaxPatternLen = 255
)

// ErrBadScope reports a repository scope that cannot be used.
var ErrBadScope = errors.New("invalid repository scope")

// Scope is the repositories a token is granted, as patterns; empty grants
// every repository, so that tokens made before scopes keep working.
//
// A pattern is a repository name whose path segments (split at "/") may
// hold "*", which stands for any run of characters within that segment;
// a last segment "**" stands for one or more whole segments. So "shop/*"
// grants shop/api but not shop/team/api, "shop/**" grants both, "*" grants
// every repository without a "/", and "billing/api" grants that one alone.
// The same names are matched for the registry's repositories and the
// hosted git repositories: a git repository shop/api.git is "shop/api".
type Scope []string

// ParseScope reads a comma-separated list of patterns, as given on a
// command line ("shop/*,billing/api"); an empty string is the empty
// (unlimited) scope.
func ParseScope(s string) (Scope, error) {
	if strings.TrimSpace(s) == "" {
		return nil, nil
	}
	// Bound the work before splitting: a list longer than the most
	// patterns of the longest length cannot be valid.
	if len(s) > MaxScopePatterns*(MaxPatternLen+1) {
		return nil, fmt.Errorf("%w: the list is %d bytes long", ErrBadScope, len(s))
	}
	var sc Scope
	for p := range strings.SplitSeq(s, ",") {
		sc = append(sc, strings.TrimSpace(p))
	}
	if err := sc.Check(); err != nil {
		return nil, err
	}
	return sc, nil
}

// Check reports the first pattern of sc that is not one (see Scope), or a
// scope with too many patterns.
func (sc Scope) Check() error {
	if len(sc) > MaxScopePatterns {
		return fmt.Errorf("%w: %d patterns; at most %d", ErrBadScope, len(sc), MaxScopePatterns)
	}
	for _, p := range sc {
		if err := checkPattern(p); err != nil {
			return fmt.Errorf("%w: pattern %q: %v", ErrBadScope, p, err)
		}
	}
	return nil
}

func checkPattern(p string) error {
	if p == "" {
		return errors.New("empty")
	}
	if len(p) > MaxPatternLen {
		return fmt.Errorf("longer than %d characters", MaxPatternLen)
	}
	segs := strings.Split(p, "/")
	for i, seg := range segs {
		if seg == "" {
			return errors.New(`an empty segment (a leading, trailing or doubled "/")`)
		}
		if seg == "**" {
			if i != len(segs)-1 {
				return errors.New(`"**" may only be the last segment`)
			}
			continue
		}
		for j := 0; j < len(seg); j++ {
			c := seg[j]
			switch {
			case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9', c == '.', c == '_', c == '-', c == '*':
			default:
				return fmt.Errorf("character %q: a pattern is a repository name with \"*\" in it", c)
			}
		}
		if strings.Contains(seg, "**") {
			return errors.New(`"**" must be a whole segment`)
		}
	}
	return nil
}

// All tells the scope that grants every repository.
func (sc Scope) All() bool { return len(sc) == 0 }

// Grants reports whether sc grants the repository name.
func (sc Scope) Grants(name string) bool {
	if sc.All() {
		return true
	}
	for _, p := range sc {
		if matchPattern(p, name) {
			return true
		}
	}
	return false
}

// matchPattern matches one checked pattern against a name, segment by
// segment. path.Match is given single segments only, and checked patterns
// hold no "?", "[" or "\", so only its "*" applies and it cannot fail.
func matchPattern(p, name string) bool {
	ps, ns := strings.Split(p, "/"), strings.Split(name, "/")
	for i, seg := range ps {
		if seg == "**" {
			return len(ns) > i
		}
		if i >= len(ns) {
			return false
		}
		if ok, err := path.Match(seg, ns[i]); err != nil || !ok {
			return false
		}
	}
	return len(ns) == len(ps)
}

// String is the scope as ParseScope reads it: "" for every repository.
func (sc Scope) String() string { return strings.Join(sc, ",") }
