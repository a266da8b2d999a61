package pattern

import (
	"errors"
	"strings"
	"unicode/utf8"
)

// wildcard is a compiled wildcard value: the literal text between its `*`s.
// "dir/*.png" is {"dir/", ".png"}; a value with n wildcards has n+1 parts,
// any of which may be empty.
type wildcard struct {
	parts []string
}

// compileWildcard reads a wildcard value as EventBridge defines it: `*`
// matches any run of characters, including none; `\*` is a literal asterisk
// and `\\` a literal backslash; a backslash before anything else, and two
// wildcards in a row, are errors.
func compileWildcard(s string) (wildcard, error) {
	var w wildcard
	var lit strings.Builder
	afterStar := false
	for i := 0; i < len(s); i++ {
		switch c := s[i]; c {
		case '*':
			if afterStar {
				return wildcard{}, errors.New("consecutive wildcard characters (**) are not allowed")
			}
			w.parts = append(w.parts, lit.String())
			lit.Reset()
			afterStar = true
			continue
		case '\\':
			if i+1 == len(s) || (s[i+1] != '*' && s[i+1] != '\\') {
				return wildcard{}, errors.New(`a backslash may only escape * or \ (write \* or \\)`)
			}
			i++
			lit.WriteByte(s[i])
		default:
			lit.WriteByte(c)
		}
		afterStar = false
	}
	w.parts = append(w.parts, lit.String())
	return w, nil
}

// matchString reports whether the whole of s matches. The first part must begin s
// and the last end it; the parts between are found leftmost first, which is
// enough when the only wildcard is `*`.
func (w wildcard) matchString(s string) bool {
	first, last := w.parts[0], w.parts[len(w.parts)-1]
	if len(w.parts) == 1 {
		return s == first
	}
	if !strings.HasPrefix(s, first) {
		return false
	}
	s = s[len(first):]
	for _, part := range w.parts[1 : len(w.parts)-1] {
		i := strings.Index(s, part)
		if i < 0 {
			return false
		}
		s = s[i+len(part):]
	}
	return strings.HasSuffix(s, last)
}

// hasPrefixFold is strings.HasPrefix under Unicode simple case folding.
// Folding maps one rune to one rune, so the prefix is compared with as many
// runes of s as it has.
func hasPrefixFold(s, prefix string) bool {
	n, i := utf8.RuneCountInString(prefix), 0
	for ; n > 0 && i < len(s); n-- {
		_, size := utf8.DecodeRuneInString(s[i:])
		i += size
	}
	return n == 0 && strings.EqualFold(s[:i], prefix)
}

// hasSuffixFold is strings.HasSuffix under Unicode simple case folding.
func hasSuffixFold(s, suffix string) bool {
	n, i := utf8.RuneCountInString(suffix), len(s)
	for ; n > 0 && i > 0; n-- {
		_, size := utf8.DecodeLastRuneInString(s[:i])
		i -= size
	}
	return n == 0 && strings.EqualFold(s[i:], suffix)
}
