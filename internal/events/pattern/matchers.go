package pattern

import (
	"encoding/json"
	"net/netip"
	"strings"
)

// A matcher tests one leaf value of an event: a string, json.Number, bool or
// nil (null). Matchers for strings do not match other types, numeric ones
// match only numbers.
type matcher interface {
	match(v any) bool
}

// exact matches one JSON value: strings character for character, numbers by
// value (300, 300.0 and 3e2 are equal), true, false and null.
type exact struct {
	v any
}

func (m exact) match(v any) bool {
	switch want := m.v.(type) {
	case json.Number:
		got, ok := v.(json.Number)
		return ok && numbersEqual(want, got)
	case string:
		got, ok := v.(string)
		return ok && got == want
	case bool:
		got, ok := v.(bool)
		return ok && got == want
	}
	return v == nil && m.v == nil
}

// prefix matches strings that begin with s, ignoring case if fold is set.
type prefix struct {
	s    string
	fold bool
}

func (m prefix) match(v any) bool {
	got, ok := v.(string)
	if m.fold {
		return ok && hasPrefixFold(got, m.s)
	}
	return ok && strings.HasPrefix(got, m.s)
}

// suffix matches strings that end with s, ignoring case if fold is set.
type suffix struct {
	s    string
	fold bool
}

func (m suffix) match(v any) bool {
	got, ok := v.(string)
	if m.fold {
		return ok && hasSuffixFold(got, m.s)
	}
	return ok && strings.HasSuffix(got, m.s)
}

// equalsIgnoreCase matches strings equal to s under Unicode case folding.
type equalsIgnoreCase struct {
	s string
}

func (m equalsIgnoreCase) match(v any) bool {
	got, ok := v.(string)
	return ok && strings.EqualFold(got, m.s)
}

// match matches strings that the wildcard matches whole.
func (w wildcard) match(v any) bool {
	got, ok := v.(string)
	return ok && w.matchString(got)
}

// anythingBut matches every value that none of its matchers match: any
// value other than the ones listed, or any value without the prefix, and so
// on. Like EventBridge it needs a value: a missing field does not match.
type anythingBut struct {
	not []matcher
}

func (m anythingBut) match(v any) bool {
	for _, n := range m.not {
		if n.match(v) {
			return false
		}
	}
	return true
}

// numeric matches numbers in a range; a bound is absent when its has flag is
// false, and "=" is a range with equal, inclusive bounds.
type numeric struct {
	lo, hi         float64
	hasLo, hasHi   bool
	loIncl, hiIncl bool
}

func (m numeric) match(v any) bool {
	n, ok := v.(json.Number)
	if !ok {
		return false
	}
	f := float(n)
	switch {
	case m.hasLo && (f < m.lo || f == m.lo && !m.loIncl):
		return false
	case m.hasHi && (f > m.hi || f == m.hi && !m.hiIncl):
		return false
	}
	return true
}

// cidr matches strings that are IP addresses (IPv4 or IPv6) within a block.
type cidr struct {
	block netip.Prefix
}

func (m cidr) match(v any) bool {
	s, ok := v.(string)
	if !ok {
		return false
	}
	addr, err := netip.ParseAddr(s)
	return err == nil && m.block.Contains(addr.Unmap())
}

// exists tests whether a field has a leaf value at all; matchLeaf treats it
// apart from the other matchers, which test values one by one.
type exists bool

func (exists) match(any) bool { return false }
