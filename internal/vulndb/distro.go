package vulndb

import (
	"slices"
	"sort"
	"strings"

	"github.com/scangate/scangate/internal/lazyregexp"
)

// orderOf names the ecosystem whose version order osv-scalibr's semantic
// package applies to ecosystem. Amazon Linux, Oracle Linux and Bottlerocket
// are RPM distributions that OSV has no ecosystem for; their versions
// (epoch:version-release, with "~" and "^") are ordered as rpmvercmp orders
// them, as Red Hat's are.
func orderOf(ecosystem string) string {
	base, _, _ := strings.Cut(ecosystem, ":")
	switch base {
	case "Amazon Linux", "Oracle Linux", "Bottlerocket":
		return "Red Hat"
	}
	return ecosystem
}

// ubuntuPro is the prefix of the ecosystems of Ubuntu Pro (ESM) fixes, as
// Canonical's OSV records name them: "Ubuntu:Pro:18.04:LTS".
const ubuntuPro = "Ubuntu:Pro:"

// queried lists the ecosystems whose advisories a query in ecosystem reads,
// first the one asked for, each as matchKey stores it. An Ubuntu Pro
// machine gets both Pro's fixes and the release's standard ones: Canonical
// publishes a flaw fixed during standard support under "Ubuntu:18.04:LTS"
// and one fixed later under "Ubuntu:Pro:18.04:LTS" only. A machine without
// Pro is asked about the standard ecosystem alone, so a fix it cannot
// install is never offered. SUSE's LTSS is the same: an LTSS machine reads
// the LTSS products' fixes and the service pack's general ones.
func queried(ecosystem string) []string {
	if rest, ok := strings.CutPrefix(ecosystem, ubuntuPro); ok {
		return []string{ecosystem, "Ubuntu:" + rest}
	}
	if release, ok := oracleArch(ecosystem); ok {
		return []string{ecosystem, release}
	}
	key := matchKey(ecosystem)
	out := []string{key}
	if base, ok := strings.CutSuffix(key, suseExtended); ok {
		out = append(out, base)
	}
	if strings.HasPrefix(key, "SUSE:Linux Enterprise 12") && key != sle12Modules {
		out = append(out, sle12Modules)
	}
	return out
}

// SUSE names its advisories' products, not releases: one SUSE Linux
// Enterprise 15 SP5 machine installs packages that SUSE files under "SUSE
// Linux Enterprise Server 15 SP5", under the modules the server is built
// from ("Module for Basesystem 15 SP5", "Module for Server Applications 15
// SP5", ...), and under the extensions added to it; which product ships a
// package is nowhere on the machine (BCI images carry no product or module
// release packages at all). All of them are one codestream, built once, so
// scangate stores and queries every SUSE Linux Enterprise product of a
// service pack under one key, "SUSE:Linux Enterprise 15 SP5", keeping the
// product in the stored entry. The extended-support channels (LTSS, ESPOS,
// BCL) carry fixes only their subscribers can install, and are kept apart
// under "SUSE:Linux Enterprise 15 SP5-LTSS", as Ubuntu Pro is. openSUSE
// Leap's NonFree repository is the release's too. SUSE Linux Enterprise
// Micro ("Micro 5.5"), SLES 16 ("Server 16.0", no modules) and the products
// versioned on their own (SUSE Manager 4.3, Enterprise Storage 7) keep
// their names. Trivy merges the same way ("SUSE Linux Enterprise 15.5"),
// LTSS included, so a machine without LTSS is offered fixes it cannot get;
// Grype splits by release package and misses the modules' advisories when
// the machine has no module release package, as in BCI images.
var (
	sleProductRe = lazyregexp.New(`^SUSE:Linux Enterprise (.+) (\d{2})(?: SP(\d+))?(?:-([A-Z]+))?$`)
	leapRe       = lazyregexp.New(`^openSUSE:Leap (\d+\.\d+)(?: NonFree)?$`)
)

// suseExtended ends the key of a service pack's extended-support products.
const suseExtended = "-LTSS"

// sle12Modules is the key of SLE 12's modules, which, unlike SLE 15's, have
// no service pack: "Module for Legacy Software 12" serves every SLE 12
// service pack, and every SLE 12 query reads it. (Trivy files it under
// "SUSE Linux Enterprise 12", which no SLE 12 SPn machine queries.)
const sle12Modules = "SUSE:Linux Enterprise 12 Modules"

// matchKey is the ecosystem an affected entry is stored and queried under:
// the ecosystem itself, but for SUSE products, which are folded into their
// service pack (see sleProductRe).
func matchKey(ecosystem string) string {
	if m := leapRe.FindStringSubmatch(ecosystem); m != nil {
		return "openSUSE:Leap " + m[1]
	}
	m := sleProductRe.FindStringSubmatch(ecosystem)
	if m == nil {
		return ecosystem
	}
	product, major, sp, suffix := m[1], m[2], m[3], m[4]
	if major == "12" && sp == "" && suffix == "" && strings.HasPrefix(product, "Module for ") {
		return sle12Modules
	}
	key := "SUSE:Linux Enterprise " + major
	if sp != "" && sp != "0" {
		key += " SP" + sp
	}
	switch {
	case suffix == "LTSS" || suffix == "ESPOS" || suffix == "BCL" || strings.Contains(product, "LTSS"):
		return key + suseExtended
	case suffix != "":
		return ecosystem // a channel scangate does not know: never folded
	}
	return key
}

// mergeSame folds the matches of one advisory for one package into one: a
// SUSE advisory lists the same binary under each product of the service
// pack, all folded into one key. The fixes are joined, lowest first.
func mergeSame(ecosystem string, ms []Match) []Match {
	var out []Match
	at := map[string]int{}
	for _, m := range ms {
		k := m.ID + "\x00" + m.Feed + "\x00" + m.Package
		i, dup := at[k]
		if !dup {
			at[k] = len(out)
			out = append(out, m)
			continue
		}
		for _, f := range m.Fixed {
			if !slices.Contains(out[i].Fixed, f) {
				out[i].Fixed = append(slices.Clone(out[i].Fixed), f)
			}
		}
		slices.SortFunc(out[i].Fixed, func(a, b string) int {
			c, err := CompareVersions(ecosystem, a, b)
			if err != nil {
				return strings.Compare(a, b)
			}
			return c
		})
	}
	return out
}

// mergeQueried adds the matches of the i-th queried ecosystem to out, ordered
// by ID. An advisory already matched in an earlier ecosystem (Pro's
// statement on the package) is not repeated from a later one.
func mergeQueried(out, ms []Match, i int) []Match {
	if i == 0 {
		return ms
	}
	seen := map[string]bool{}
	for _, m := range out {
		seen[m.ID+"\x00"+m.Package] = true
	}
	for _, m := range ms {
		if !seen[m.ID+"\x00"+m.Package] {
			out = append(out, m)
		}
	}
	sort.SliceStable(out, func(a, b int) bool { return out[a].ID < out[b].ID })
	return out
}

// Oracle Linux publishes one fix per architecture where its builds differ
// (ELSA-2022-4803 fixes rsyslog in 8.24.0-57.0.1.el7_9.3 on x86_64 and in
// 8.24.0-57.0.4.el7_9.3 on aarch64), so a fix can only be offered for the
// machine's architecture. The feed stores a package's fix under the release,
// "Oracle Linux:7", when every architecture the advisory covers has the
// same one, and under "Oracle Linux:7:x86_64" when they differ; a package of
// an x86_64 machine is queried in "Oracle Linux:7:x86_64", which reads
// both. Trivy keeps the fixes per architecture the same way; Grype's data
// (vunnel) now splits them too.

// oracleArch reports whether ecosystem is an architecture's ecosystem of an
// Oracle Linux release, "Oracle Linux:8:x86_64", and returns the release's.
func oracleArch(ecosystem string) (string, bool) {
	rest, ok := strings.CutPrefix(ecosystem, "Oracle Linux:")
	if !ok {
		return "", false
	}
	major, arch, ok := strings.Cut(rest, ":")
	if !ok || major == "" || arch == "" {
		return "", false
	}
	return "Oracle Linux:" + major, true
}

// Flavour is the kind of build an RPM version names, for distributions that
// ship several builds of one package side by side: Oracle Linux's Ksplice
// userspace builds ("2:1.1.1g-15.ksplice1.el8_3") and FIPS-validated builds
// ("10:3.6.16-4.0.1.el8_fips", whose epoch puts them above every normal
// build). An advisory's fix applies only to builds of its own flavour: a
// normal gnutls is never below the FIPS fix in the sense that matters, and a
// Ksplice build is patched in place on its own line. The flavours are read
// as trivy-db's oracle-oval PackageFlavor reads them (a release ending in
// "_fips"; a dot-separated part starting "ksplice"). Grype's data drops the
// Ksplice fixes instead (vunnel's KspliceFilterer), so Grype never reports a
// Ksplice build and compares normal builds with FIPS fixes.
func Flavour(ecosystem, version string) string {
	if !strings.HasPrefix(ecosystem, "Oracle Linux:") {
		return ""
	}
	v := strings.ToLower(version)
	if strings.HasSuffix(v, "_fips") {
		return "fips"
	}
	for _, part := range strings.Split(v, ".") {
		if strings.HasPrefix(part, "ksplice") {
			return "ksplice"
		}
	}
	return ""
}
