package vulndb

import (
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// The version-order tests below are driven by the test vectors of the
// package managers whose order scangate must reproduce: dpkg's and apt's for
// Debian, apk-tools' for Alpine. The files under testdata/versions are copied
// from those projects; testdata/versions/README.md says from where.

const (
	// debianEcosystem and alpineEcosystem are the OSV ecosystems the upstream
	// vectors are checked in; the release suffix must not change the order.
	debianEcosystem = "Debian:12"
	alpineEcosystem = "Alpine:v3.20"

	versionsTestdata = "testdata/versions"
)

// Relation masks: which results of a comparison an upstream assertion allows.
const (
	relLess    = 1 << iota // a < b
	relEqual               // a == b
	relGreater             // a > b
)

// orderVector is one upstream assertion about the order of two versions.
type orderVector struct {
	pos     string // file:line it was read from
	a, b    string
	allowed int // relLess|relEqual|relGreater mask
}

// validityVector is one upstream assertion that a version string is, or is
// not, well formed.
type validityVector struct {
	pos   string
	v     string
	valid bool
	// equals, when not empty, is a version v must compare equal to (dpkg's
	// t-version.c checks what parseversion() made of the string).
	equals string
}

// knownOrderDifference records an upstream order vector that osv-scalibr's
// semantic package orders differently. got is what CompareVersions returns
// today ("<", "=", ">" or "error"); why says which side is right per the
// ecosystem's specification. The test fails when such a vector starts to
// agree with upstream, so that the list stays true.
type knownOrderDifference struct {
	got string
	why string
}

// knownOrderDifferences are keyed by ecosystem, a and b as "eco|a|b".
var knownOrderDifferences = map[string]knownOrderDifference{
	// apk-tools 3 versions may carry a commit hash, "~hex", between the
	// suffixes and the revision (apk-package(5): number{.number}...{letter}
	// {_suffix{number}}...{~hash}{-r#}). apk's version.c reads it as
	// TOKEN_COMMIT_HASH and orders it by its bytes, before the revision;
	// semantic ignores the hash altogether ("commit hashes are ignored as we
	// can't properly compare them"). apk is right by definition: its order is
	// what installs. The effect on matching: an installed 1.0~1234-r1 is
	// taken as newer than a fix in 1.0~2345-r0, a missed vulnerability.
	alpineEcosystem + "|1.0~1234|1.0~2345": {
		got: "=",
		why: "apk orders the ~hash bytewise; semantic ignores it",
	},
	alpineEcosystem + "|1.0~1234-r1|1.0~2345-r0": {
		got: ">",
		why: "apk orders the ~hash before the -r revision; semantic ignores the hash and lets -r1 > -r0 decide",
	},
}

// Why upstream-invalid versions parse. semantic's Debian parser checks only
// that an epoch is a number, and its Alpine parser flags a version it cannot
// read as invalid without returning an error, so ParseVersion accepts them.
// dpkg and apk refuse to install such versions, so none can be in an image's
// package database; they can only come from a feed, and get ordered there by
// a best effort rather than refused.
const (
	whyDebianEmpty = "deb-version(7): the upstream version is required and a present revision " +
		"must not be empty; semantic reads the missing part as empty, which orders as \"0\""
	whyDebianEpoch = "deb-version(7): the epoch is a small unsigned integer (dpkg: at most INT_MAX); " +
		"semantic takes any big.Int, negative too"
	whyDebianDigit = "deb-version(7): the upstream version should start with a digit " +
		"(dpkg warns and refuses); semantic does not check"
	whyDebianChars = "deb-version(7): upstream allows only [A-Za-z0-9.+~:-] and the revision only " +
		"[A-Za-z0-9.+~]; semantic does not check characters (a blank included)"
	whyAlpineLetter = "apk: one lower-case letter may follow the numbers, and nothing but a " +
		"suffix, hash or revision after it; semantic flags the rest invalid without an error"
	whyAlpineSuffix = "apk: a suffix is _ then one of alpha, beta, pre, rc, cvs, svn, git, hg, p; " +
		"semantic flags others invalid without an error"
	whyAlpineHash = "apk: ~hash is one or more hex digits, after the suffixes and before -r; " +
		"semantic flags others invalid without an error"
	whyAlpineRevision = "apk: -r takes digits and ends the version; semantic flags others invalid " +
		"without an error (and reads a bare -r as -r0)"
	whyAlpineStart = "apk: a version starts with a number; semantic flags others invalid without an error"
)

// knownAcceptedInvalid lists versions upstream marks as invalid that
// ParseVersion nevertheless accepts, keyed by "eco|version", with why. The
// test fails when one of them starts to be rejected, so that the list stays
// true.
var knownAcceptedInvalid = func() map[string]string {
	m := map[string]string{}
	add := func(eco, why string, versions ...string) {
		for _, v := range versions {
			m[eco+"|"+v] = why
		}
	}
	add(debianEcosystem, whyDebianEmpty, "0:", "1.0-", "-0", "0:-0")
	add(debianEcosystem, whyDebianEpoch, "-1:0-1", "999999999999999999999999:0-1")
	add(debianEcosystem, whyDebianDigit, "0:abc3-0", "foo5.2", "0:foo5.2")
	add(debianEcosystem, whyDebianChars, "0:0 0-1", "5.2@3-2", "0:0-0:0")
	for _, c := range "!#@$%&/|\\<>()[]{};,_=*^'" {
		add(debianEcosystem, whyDebianChars, "0:0"+string(c)+"-0")
	}
	for _, c := range "!#@$%&/|\\<>()[]{}:;,_=*^'" {
		add(debianEcosystem, whyDebianChars, "0:0-"+string(c))
	}
	add(alpineEcosystem, whyAlpineLetter, "0.1bc", "0.1bc1", "0.1a1", "0.1a.1")
	add(alpineEcosystem, whyAlpineSuffix, "0.1_foobar", "0.1_foobar1", "0.1_", "0.1_-r0",
		"0.1__alpha", "0.1_1_alpha")
	add(alpineEcosystem, whyAlpineHash, "0.1_pre2~", "0.1_pre2~1234xbcd",
		"0.1_pre2~1234abcd_pre1", "0.1_pre2-r1~1234xbcd")
	add(alpineEcosystem, whyAlpineRevision, "0.1-pre1.1", "0.1-r", "0.1-r2_pre1",
		"0.1-r2_p3_pre1", "0.1-r2-r3", "0.1-r2.1")
	add(alpineEcosystem, whyAlpineStart, ".1", "a", "_pre1", "-r1")
	return m
}()

// knownRejectedValid lists versions upstream accepts that ParseVersion
// rejects, keyed by "eco|version". None today.
var knownRejectedValid = map[string]string{}

func TestVersionOrderUpstreamVectors(t *testing.T) {
	type source struct {
		ecosystem string
		file      string
		load      func(testing.TB, string) ([]orderVector, []validityVector)
	}
	sources := []source{
		{debianEcosystem, "dpkg-Dpkg_Version.data", loadDpkgTable},
		{debianEcosystem, "apt-versions.lst", loadDpkgTable},
		{debianEcosystem, "dpkg-t-version.data", loadExtracted},
		{debianEcosystem, "dpkg-Dpkg_Version-validity.data", loadExtracted},
		{alpineEcosystem, "apk-tools-version.data", loadAPKData},
		{alpineEcosystem, "apk-tools-unit-version.data", loadAPKData},
	}
	seenOrder := map[string]bool{}
	// seenValidity[true] holds the versions upstream calls valid, [false]
	// those it calls invalid.
	seenValidity := map[bool]map[string]bool{true: {}, false: {}}
	for _, src := range sources {
		t.Run(src.file, func(t *testing.T) {
			order, validity := src.load(t, src.file)
			if len(order)+len(validity) == 0 {
				t.Fatalf("%s: no vectors read", src.file)
			}
			for _, vec := range order {
				checkOrderVector(t, src.ecosystem, vec, seenOrder)
			}
			for _, vec := range validity {
				checkValidityVector(t, src.ecosystem, vec, seenValidity)
			}
			t.Logf("%s: %d order vectors, %d validity vectors", src.file, len(order), len(validity))
		})
	}
	// Every listed difference must still come from some upstream vector.
	for key := range knownOrderDifferences {
		if !seenOrder[key] {
			t.Errorf("knownOrderDifferences[%q] matches no upstream vector; remove it", key)
		}
	}
	for key := range knownAcceptedInvalid {
		if !seenValidity[false][key] {
			t.Errorf("knownAcceptedInvalid[%q] matches no upstream vector; remove it", key)
		}
	}
	for key := range knownRejectedValid {
		if !seenValidity[true][key] {
			t.Errorf("knownRejectedValid[%q] matches no upstream vector; remove it", key)
		}
	}
}

// checkOrderVector compares vec.a with vec.b, and vec.b with vec.a, and
// checks both against the upstream expectation or the known difference.
func checkOrderVector(t *testing.T, eco string, vec orderVector, seen map[string]bool) {
	t.Helper()
	key := eco + "|" + vec.a + "|" + vec.b
	seen[key] = true
	got := compareResult(eco, vec.a, vec.b)
	rev := compareResult(eco, vec.b, vec.a)
	want := relString(vec.allowed)
	if known, ok := knownOrderDifferences[key]; ok {
		if relAllows(vec.allowed, got) {
			t.Errorf("%s: %s: %q %s %q now agrees with upstream (%s); remove it from knownOrderDifferences (it was listed because %s)",
				vec.pos, eco, vec.a, want, vec.b, got, known.why)
		} else if got != known.got {
			t.Errorf("%s: %s: %q vs %q: known difference changed: got %s, listed %s",
				vec.pos, eco, vec.a, vec.b, got, known.got)
		}
		if rev != mirror(got) {
			t.Errorf("%s: %s: %q vs %q is %s but the reverse is %s", vec.pos, eco, vec.a, vec.b, got, rev)
		}
		return
	}
	if !relAllows(vec.allowed, got) {
		t.Errorf("%s: %s: CompareVersions(%q, %q) = %s, upstream says %s", vec.pos, eco, vec.a, vec.b, got, want)
	}
	if !relAllows(mirrorMask(vec.allowed), rev) {
		t.Errorf("%s: %s: CompareVersions(%q, %q) = %s, upstream says %s", vec.pos, eco, vec.b, vec.a, rev, relString(mirrorMask(vec.allowed)))
	}
}

// checkValidityVector checks that ParseVersion accepts what upstream accepts
// and rejects what upstream rejects, bar the known exceptions.
func checkValidityVector(t *testing.T, eco string, vec validityVector, seen map[bool]map[string]bool) {
	t.Helper()
	key := eco + "|" + vec.v
	seen[vec.valid][key] = true
	_, err := ParseVersion(eco, vec.v)
	switch {
	case vec.valid && err != nil:
		if _, ok := knownRejectedValid[key]; !ok {
			t.Errorf("%s: %s: ParseVersion(%q) = %v, upstream accepts it", vec.pos, eco, vec.v, err)
		}
	case vec.valid:
		if _, ok := knownRejectedValid[key]; ok {
			t.Errorf("%s: %s: ParseVersion(%q) now succeeds; remove it from knownRejectedValid", vec.pos, eco, vec.v)
		}
		if vec.equals != "" {
			if got := compareResult(eco, vec.v, vec.equals); got != "=" {
				t.Errorf("%s: %s: CompareVersions(%q, %q) = %s, upstream says =", vec.pos, eco, vec.v, vec.equals, got)
			}
		}
	case err == nil:
		if _, ok := knownAcceptedInvalid[key]; !ok {
			t.Errorf("%s: %s: ParseVersion(%q) succeeds, upstream rejects it", vec.pos, eco, vec.v)
		}
	default:
		if _, ok := knownAcceptedInvalid[key]; ok {
			t.Errorf("%s: %s: ParseVersion(%q) now fails (%v); remove it from knownAcceptedInvalid", vec.pos, eco, vec.v, err)
		}
	}
}

// compareResult is CompareVersions as one of "<", "=", ">" or "error".
func compareResult(eco, a, b string) string {
	c, err := CompareVersions(eco, a, b)
	switch {
	case err != nil:
		return "error"
	case c < 0:
		return "<"
	case c > 0:
		return ">"
	}
	return "="
}

func relAllows(mask int, got string) bool {
	switch got {
	case "<":
		return mask&relLess != 0
	case "=":
		return mask&relEqual != 0
	case ">":
		return mask&relGreater != 0
	}
	return false
}

// mirror is the result expected of the reverse comparison.
func mirror(got string) string {
	switch got {
	case "<":
		return ">"
	case ">":
		return "<"
	}
	return got
}

func mirrorMask(mask int) int {
	m := mask & relEqual
	if mask&relLess != 0 {
		m |= relGreater
	}
	if mask&relGreater != 0 {
		m |= relLess
	}
	return m
}

func relString(mask int) string {
	var s string
	if mask&relLess != 0 {
		s += "<"
	}
	if mask&relEqual != 0 {
		s += "="
	}
	if mask&relGreater != 0 {
		s += ">"
	}
	if s == "<>" {
		return "!="
	}
	return s
}

// relMask parses an operator made of "<", "=" and ">" ("!=" too).
func relMask(op string) (int, bool) {
	if op == "!=" {
		return relLess | relGreater, true
	}
	mask := 0
	for _, c := range op {
		switch c {
		case '<':
			mask |= relLess
		case '=':
			mask |= relEqual
		case '>':
			mask |= relGreater
		default:
			return 0, false
		}
	}
	return mask, mask != 0
}

func readVersionsTestdata(tb testing.TB, name string) []string {
	tb.Helper()
	data, err := os.ReadFile(filepath.Join(versionsTestdata, name))
	if err != nil {
		tb.Fatal(err)
	}
	return strings.Split(strings.TrimSuffix(string(data), "\n"), "\n")
}

// loadDpkgTable reads "a b result" lines, result being -1, 0 or 1, as in
// dpkg's Dpkg_Version.t __DATA__ and apt's versions.lst. Like apt's runner,
// it skips blank lines and lines starting with "#", and ignores anything
// after the third field.
func loadDpkgTable(tb testing.TB, name string) ([]orderVector, []validityVector) {
	tb.Helper()
	var order []orderVector
	for i, line := range readVersionsTestdata(tb, name) {
		if line == "" || line[0] == '#' {
			continue
		}
		pos := name + ":" + strconv.Itoa(i+1)
		f := strings.Fields(line)
		if len(f) < 3 {
			tb.Fatalf("%s: want \"a b result\", got %q", pos, line)
		}
		var mask int
		switch f[2] {
		case "-1":
			mask = relLess
		case "0":
			mask = relEqual
		case "1":
			mask = relGreater
		default:
			tb.Fatalf("%s: result %q is not -1, 0 or 1", pos, f[2])
		}
		order = append(order, orderVector{pos: pos, a: f[0], b: f[1], allowed: mask})
	}
	return order, nil
}

// loadAPKData reads apk-tools' version.data: after "#" comments and trailing
// blanks are cut, a line is "ver1 op ver2" (op made of <, =, > and ~,
// negated by a leading "!"), "version" (must be valid) or "!version" (must be
// invalid), as apk's vertest reads it. Fuzzy operators (~) are apk's prefix
// match for dependency constraints, not version order: those lines only have
// their two versions checked to be valid.
func loadAPKData(tb testing.TB, name string) ([]orderVector, []validityVector) {
	tb.Helper()
	var order []orderVector
	var validity []validityVector
	for i, line := range readVersionsTestdata(tb, name) {
		arg, _, _ := strings.Cut(line, "#")
		arg = strings.TrimRight(arg, " \t\r")
		if arg == "" {
			continue
		}
		pos := name + ":" + strconv.Itoa(i+1)
		ver1, rest, ok1 := strings.Cut(arg, " ")
		op, ver2, ok2 := strings.Cut(rest, " ")
		if !ok1 || !ok2 {
			v, invalid := strings.CutPrefix(arg, "!")
			validity = append(validity, validityVector{pos: pos, v: v, valid: !invalid})
			continue
		}
		op, invert := strings.CutPrefix(op, "!")
		if strings.Contains(op, "~") {
			validity = append(validity,
				validityVector{pos: pos, v: ver1, valid: true},
				validityVector{pos: pos, v: ver2, valid: true})
			continue
		}
		mask, ok := relMask(op)
		if !ok {
			tb.Fatalf("%s: unknown operator %q", pos, op)
		}
		if invert {
			mask ^= relLess | relEqual | relGreater
		}
		order = append(order, orderVector{pos: pos, a: ver1, b: ver2, allowed: mask})
	}
	return order, validity
}

// loadExtracted reads the files extracted from dpkg's test programs, whose
// versions are Go-quoted strings:
//
//	cmp "a" op "b"        op one of <, =, >, !=
//	valid "v" [= "w"]     v parses (and equals w)
//	invalid "v"           v does not parse
func loadExtracted(tb testing.TB, name string) ([]orderVector, []validityVector) {
	tb.Helper()
	var order []orderVector
	var validity []validityVector
	for i, line := range readVersionsTestdata(tb, name) {
		if line == "" || line[0] == '#' {
			continue
		}
		pos := name + ":" + strconv.Itoa(i+1)
		kind, rest, _ := strings.Cut(line, " ")
		a, rest, err := cutQuoted(rest)
		if err != nil {
			tb.Fatalf("%s: %v", pos, err)
		}
		var op, b string
		if rest != "" {
			op, rest, _ = strings.Cut(strings.TrimLeft(rest, " "), " ")
			if b, rest, err = cutQuoted(rest); err != nil {
				tb.Fatalf("%s: %v", pos, err)
			}
		}
		if rest != "" {
			tb.Fatalf("%s: trailing %q", pos, rest)
		}
		switch {
		case kind == "cmp" && op != "":
			mask, ok := relMask(op)
			if !ok {
				tb.Fatalf("%s: unknown operator %q", pos, op)
			}
			order = append(order, orderVector{pos: pos, a: a, b: b, allowed: mask})
		case kind == "valid" && (op == "" || op == "="):
			validity = append(validity, validityVector{pos: pos, v: a, valid: true, equals: b})
		case kind == "invalid" && op == "":
			validity = append(validity, validityVector{pos: pos, v: a})
		default:
			tb.Fatalf("%s: cannot read %q", pos, line)
		}
	}
	return order, validity
}

// cutQuoted cuts one Go-quoted string, after blanks, off the front of s.
func cutQuoted(s string) (value, rest string, err error) {
	s = strings.TrimLeft(s, " ")
	q, err := strconv.QuotedPrefix(s)
	if err != nil {
		return "", "", err
	}
	value, err = strconv.Unquote(q)
	return value, strings.TrimLeft(s[len(q):], " "), err
}

// TestUpstreamVectorCounts guards against a loader that silently reads less
// than the upstream files hold: the counts are of the files as copied.
func TestUpstreamVectorCounts(t *testing.T) {
	for _, tc := range []struct {
		file            string
		load            func(testing.TB, string) ([]orderVector, []validityVector)
		order, validity int
	}{
		{"dpkg-Dpkg_Version.data", loadDpkgTable, 43, 0},
		{"apt-versions.lst", loadDpkgTable, 64, 0},
		{"dpkg-t-version.data", loadExtracted, 11, 80},
		{"dpkg-Dpkg_Version-validity.data", loadExtracted, 0, 16},
		{"apk-tools-version.data", loadAPKData, 733, 0},
		// 785 vertest cases: 738 order lines, 31 validity lines and 16 fuzzy
		// (~) lines, each of which gives two versions to check.
		{"apk-tools-unit-version.data", loadAPKData, 738, 31 + 2*16},
	} {
		order, validity := tc.load(t, tc.file)
		if len(order) != tc.order || len(validity) != tc.validity {
			t.Errorf("%s: read %d order and %d validity vectors, want %d and %d",
				tc.file, len(order), len(validity), tc.order, tc.validity)
		}
	}
}

func TestNormalizePackage(t *testing.T) {
	// PEP 503's own examples of names that normalize alike.
	for _, name := range []string{
		"friendly-bar", "Friendly-Bar", "friendly.bar", "friendly_bar",
		"FRIENDLY_BAR", "friendly--bar", "FrIeNdLy-._.-bAr",
	} {
		if got := NormalizePackage("PyPI", name); got != "friendly-bar" {
			t.Errorf("NormalizePackage(PyPI, %q) = %q, want friendly-bar", name, got)
		}
	}
	for _, tc := range []struct{ eco, name, want string }{
		{"PyPI:", "Django", "django"},
		{"PyPI", "zope.interface", "zope-interface"},
		{"PyPI", "", ""},
		// Outside PyPI names are exact.
		{"npm", "Friendly_Bar", "Friendly_Bar"},
		{"Debian:12", "libssl3", "libssl3"},
		{"Go", "github.com/Foo/bar", "github.com/Foo/bar"},
		{"Maven", "org.apache.logging.log4j:log4j-core", "org.apache.logging.log4j:log4j-core"},
	} {
		if got := NormalizePackage(tc.eco, tc.name); got != tc.want {
			t.Errorf("NormalizePackage(%q, %q) = %q, want %q", tc.eco, tc.name, got, tc.want)
		}
	}
}

func TestKnownEcosystem(t *testing.T) {
	for _, eco := range []string{
		"Debian", "Debian:12", "Alpine:v3.20", "Ubuntu:22.04:LTS", "Go", "npm",
		"PyPI", "Maven", "crates.io", "Red Hat:enterprise_linux:9", "Rocky Linux:9",
	} {
		if !KnownEcosystem(eco) {
			t.Errorf("KnownEcosystem(%q) = false", eco)
		}
	}
	for _, eco := range []string{"", ":12", "debian", "DEBIAN:12", "pypi", "Alpine ", "GIT", "Linux"} {
		if KnownEcosystem(eco) {
			t.Errorf("KnownEcosystem(%q) = true", eco)
		}
		if _, err := ParseVersion(eco, "1.0"); !errors.Is(err, ErrUnknownEcosystem) {
			t.Errorf("ParseVersion(%q, 1.0) = %v, want ErrUnknownEcosystem", eco, err)
		}
	}
}

func TestParseVersionBounds(t *testing.T) {
	if _, err := ParseVersion(debianEcosystem, ""); err == nil {
		t.Error("empty version parsed")
	}
	long := strings.Repeat("1", MaxVersionLen+1)
	if _, err := ParseVersion(debianEcosystem, long); err == nil {
		t.Errorf("version of %d bytes parsed", len(long))
	}
	if _, err := ParseVersion(debianEcosystem, long[:MaxVersionLen]); err != nil {
		t.Errorf("version of %d bytes: %v", MaxVersionLen, err)
	}
	// OSV's "0" introduced event parses everywhere.
	for eco := range ecosystems {
		if _, err := ParseVersion(eco, "0"); err != nil {
			t.Errorf("ParseVersion(%q, 0): %v", eco, err)
		}
	}
}

// fuzzEcosystems are the ecosystems FuzzCompareVersions checks each input
// in, one per version-order family scangate relies on. SCANGATE_FUZZ_ECOSYSTEMS
// (comma-separated) narrows a run to some of them.
func fuzzEcosystems() []string {
	if env := os.Getenv("SCANGATE_FUZZ_ECOSYSTEMS"); env != "" {
		return strings.Split(env, ",")
	}
	return []string{debianEcosystem, alpineEcosystem, "Go", "npm", "PyPI"}
}

// FuzzCompareVersions checks that no pair of strings panics the version
// parsers, and that the order is reflexive and antisymmetric on whatever
// versions parse.
func FuzzCompareVersions(f *testing.F) {
	for _, load := range []struct {
		file string
		fn   func(testing.TB, string) ([]orderVector, []validityVector)
	}{
		{"dpkg-Dpkg_Version.data", loadDpkgTable},
		{"apt-versions.lst", loadDpkgTable},
		{"dpkg-t-version.data", loadExtracted},
		{"apk-tools-unit-version.data", loadAPKData},
	} {
		order, validity := load.fn(f, load.file)
		for _, vec := range order {
			f.Add(vec.a, vec.b)
		}
		for _, vec := range validity {
			f.Add(vec.v, "0")
		}
	}
	for _, pair := range [][2]string{
		{"v1.2.3", "1.2.3-rc.1+build.5"}, {"1.0.0-alpha", "1.0.0-alpha.1"},
		{"1.0a1", "1.0.post1"}, {"1!2.0", "2.0.dev3+local.7"}, {"0", "0.0.0"},
	} {
		f.Add(pair[0], pair[1])
	}
	ecos := fuzzEcosystems()
	f.Fuzz(func(t *testing.T, a, b string) {
		for _, eco := range ecos {
			checkOrderLaws(t, eco, a, b)
		}
	})
}

// checkOrderLaws checks reflexivity on a and b, and antisymmetry between
// them, for those of the two that parse in eco.
func checkOrderLaws(t *testing.T, eco, a, b string) {
	t.Helper()
	va, errA := ParseVersion(eco, a)
	vb, errB := ParseVersion(eco, b)
	for _, v := range []struct {
		s   string
		err error
	}{{a, errA}, {b, errB}} {
		if v.err != nil {
			continue
		}
		if c, err := CompareVersions(eco, v.s, v.s); err != nil || c != 0 {
			t.Errorf("%s: CompareVersions(%q, %q) = %d, %v; want 0", eco, v.s, v.s, c, err)
		}
	}
	if errA != nil || errB != nil {
		return
	}
	ab, errAB := va.Compare(vb)
	ba, errBA := vb.Compare(va)
	if (errAB == nil) != (errBA == nil) {
		t.Fatalf("%s: %q vs %q: error %v one way, %v the other", eco, a, b, errAB, errBA)
	}
	if errAB == nil && sign(ab) != -sign(ba) {
		t.Errorf("%s: not antisymmetric: cmp(%q, %q) = %d but cmp(%q, %q) = %d", eco, a, b, ab, b, a, ba)
	}
}

func sign(c int) int {
	switch {
	case c < 0:
		return -1
	case c > 0:
		return 1
	}
	return 0
}
