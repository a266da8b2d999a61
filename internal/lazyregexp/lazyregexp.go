// Package lazyregexp is a regexp.Regexp compiled when first used, not when
// its package is initialised. Every scangate command starts the one binary,
// and a package-level regexp.MustCompile runs at each start whether the
// command uses it or not: a bounded repetition such as {0,254} compiles to
// hundreds of instructions, and the validators' patterns cost every command
// about 7 ms before main (GODEBUG=inittrace=1). The Go tree has the same
// package for the same reason (internal/lazyregexp), which cannot be
// imported from outside it.
package lazyregexp

import (
	"regexp"
	"sync"
)

// Regexp is a regular expression compiled on first use.
type Regexp struct {
	str  string
	once sync.Once
	rx   *regexp.Regexp
}

// New returns the pattern, to be compiled on first use; like
// regexp.MustCompile, it panics then if the pattern does not compile (a
// test of the package that uses it compiles it).
func New(str string) *Regexp { return &Regexp{str: str} }

func (r *Regexp) re() *regexp.Regexp {
	r.once.Do(func() { r.rx = regexp.MustCompile(r.str) })
	return r.rx
}

// Regexp returns the compiled expression.
func (r *Regexp) Regexp() *regexp.Regexp { return r.re() }

func (r *Regexp) Match(b []byte) bool                      { return r.re().Match(b) }
func (r *Regexp) MatchString(s string) bool                { return r.re().MatchString(s) }
func (r *Regexp) FindString(s string) string               { return r.re().FindString(s) }
func (r *Regexp) FindStringSubmatch(s string) []string     { return r.re().FindStringSubmatch(s) }
func (r *Regexp) FindAllString(s string, n int) []string   { return r.re().FindAllString(s, n) }
func (r *Regexp) ReplaceAllString(src, repl string) string { return r.re().ReplaceAllString(src, repl) }
func (r *Regexp) SubexpIndex(name string) int              { return r.re().SubexpIndex(name) }
func (r *Regexp) String() string                           { return r.str }
func (r *Regexp) FindAllStringSubmatch(s string, n int) [][]string {
	return r.re().FindAllStringSubmatch(s, n)
}
func (r *Regexp) ReplaceAllStringFunc(src string, repl func(string) string) string {
	return r.re().ReplaceAllStringFunc(src, repl)
}
