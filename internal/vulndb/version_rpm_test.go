package vulndb

import (
	"fmt"
	"os/exec"
	"strconv"
	"strings"
	"testing"
)

// rpmVectors are the comparisons of rpm's own test suite (tests/rpmvercmp.at,
// RPMVERCMP(a, b, want)), including "~" (sorts before anything, even the
// end) and "^" (sorts after the end but before anything else), then
// epoch:version-release cases of the kind advisories carry. The test asks
// Debian's rpm (4.18, through its Lua rpm.ver) for each answer as well, so
// a vector copied wrong fails too.
var rpmVectors = []struct {
	a, b string
	want int
}{
	{"1.0", "1.0", 0}, {"1.0", "2.0", -1}, {"2.0", "1.0", 1},
	{"2.0.1", "2.0.1", 0}, {"2.0", "2.0.1", -1}, {"2.0.1", "2.0", 1},
	{"2.0.1a", "2.0.1a", 0}, {"2.0.1a", "2.0.1", 1}, {"2.0.1", "2.0.1a", -1},
	{"5.5p1", "5.5p1", 0}, {"5.5p1", "5.5p2", -1}, {"5.5p2", "5.5p1", 1},
	{"5.5p10", "5.5p10", 0}, {"5.5p1", "5.5p10", -1}, {"5.5p10", "5.5p1", 1},
	{"10xyz", "10.1xyz", -1}, {"10.1xyz", "10xyz", 1},
	{"xyz10", "xyz10", 0}, {"xyz10", "xyz10.1", -1}, {"xyz10.1", "xyz10", 1},
	{"xyz.4", "xyz.4", 0}, {"xyz.4", "8", -1}, {"8", "xyz.4", 1}, {"xyz.4", "2", -1}, {"2", "xyz.4", 1},
	{"5.5p2", "5.6p1", -1}, {"5.6p1", "5.5p2", 1}, {"5.6p1", "6.5p1", -1}, {"6.5p1", "5.6p1", 1},
	{"6.0.rc1", "6.0", 1}, {"6.0", "6.0.rc1", -1},
	{"10b2", "10a1", 1}, {"10a2", "10b2", -1},
	{"1.0aa", "1.0aa", 0}, {"1.0a", "1.0aa", -1}, {"1.0aa", "1.0a", 1},
	{"10.0001", "10.0001", 0}, {"10.0001", "10.1", 0}, {"10.1", "10.0001", 0},
	{"10.0001", "10.0039", -1}, {"10.0039", "10.0001", 1},
	{"4.999.9", "5.0", -1}, {"5.0", "4.999.9", 1},
	{"20101121", "20101121", 0}, {"20101121", "20101122", -1}, {"20101122", "20101121", 1},
	{"2_0", "2_0", 0}, {"2.0", "2_0", 0}, {"2_0", "2.0", 0},
	{"1.0~rc1", "1.0~rc1", 0}, {"1.0~rc1", "1.0", -1}, {"1.0", "1.0~rc1", 1},
	{"1.0~rc1", "1.0~rc2", -1}, {"1.0~rc2", "1.0~rc1", 1},
	{"1.0~rc1~git123", "1.0~rc1~git123", 0}, {"1.0~rc1~git123", "1.0~rc1", -1}, {"1.0~rc1", "1.0~rc1~git123", 1},
	{"1.0^", "1.0^", 0}, {"1.0^", "1.0", 1}, {"1.0", "1.0^", -1},
	{"1.0^git1", "1.0^git1", 0}, {"1.0^git1", "1.0", 1}, {"1.0", "1.0^git1", -1},
	{"1.0^git1", "1.0^git2", -1}, {"1.0^git2", "1.0^git1", 1},
	{"1.0^git1", "1.01", -1}, {"1.01", "1.0^git1", 1},
	{"1.0^20160101", "1.0^20160101", 0}, {"1.0^20160101", "1.0.1", -1}, {"1.0.1", "1.0^20160101", 1},
	{"1.0^20160101^git1", "1.0^20160101^git1", 0}, {"1.0^20160102", "1.0^20160101^git1", 1}, {"1.0^20160101^git1", "1.0^20160102", -1},
	{"1.0~rc1^git1", "1.0~rc1^git1", 0}, {"1.0~rc1^git1", "1.0~rc1", 1}, {"1.0~rc1", "1.0~rc1^git1", -1},
	{"1.0^git1~pre", "1.0^git1~pre", 0}, {"1.0^git1", "1.0^git1~pre", 1}, {"1.0^git1~pre", "1.0^git1", -1},
	// epoch:version-release, as advisories and rpm databases give them.
	{"1:1.0-1", "2.0-1", 1}, {"0:1.0-1", "1.0-1", 0}, {"10:1.5.3-141.amzn2.5.2", "10:1.5.3-141.amzn2.5.3", -1},
	{"7.76.1-23.el9", "7.76.1-26.el9_3.2", -1}, {"7.76.1-26.el9_3.2", "7.76.1-26.el9_3", 1},
	{"1:11.0.12.0.7-0.el8_4", "1:11.0.13.0.8-1.el8_4", -1}, {"3:10.3.39-1.module_el8.8.0+3609+204d4ab0", "3:10.3.35-1.module_el8.6.0+2867+72759d2f", 1},
}

// rpmCompare asks rpm how it orders two [epoch:]version[-release] strings.
func rpmCompare(t *testing.T, a, b string) int {
	t.Helper()
	lua := fmt.Sprintf(`%%{lua: local a=rpm.ver(%q); local b=rpm.ver(%q); print((a<b) and -1 or ((a==b) and 0 or 1))}`, a, b)
	out, err := exec.Command("rpm", "--eval", lua).Output()
	if err != nil {
		t.Fatalf("rpm --eval (Debian's rpm package is needed): %v", err)
	}
	n, err := strconv.Atoi(strings.TrimSpace(string(out)))
	if err != nil {
		t.Fatalf("rpm said %q", out)
	}
	return n
}

func TestRPMOrder(t *testing.T) {
	for _, eco := range []string{"Red Hat:9", "Rocky Linux:8", "AlmaLinux:9", "Amazon Linux:2023", "SUSE:Linux Enterprise Server 15 SP5"} {
		for _, v := range rpmVectors {
			got, err := CompareVersions(eco, v.a, v.b)
			if err != nil {
				t.Fatalf("%s %s %s: %v", eco, v.a, v.b, err)
			}
			if got != v.want {
				t.Errorf("%s: compare(%s, %s) = %d, want %d", eco, v.a, v.b, got, v.want)
			}
		}
	}
	for _, v := range rpmVectors {
		if r := rpmCompare(t, v.a, v.b); r != v.want {
			t.Errorf("rpm orders %s, %s as %d, the vector says %d", v.a, v.b, r, v.want)
		}
	}
}
