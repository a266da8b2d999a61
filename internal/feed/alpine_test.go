package feed

import (
	"bufio"
	"fmt"
	"io/fs"
	"os"
	"slices"
	"strings"
	"testing"

	"github.com/scangate/scangate/internal/vulndb"
)

func TestAlpineSecDBMatch(t *testing.T) {
	tests := []struct {
		name, head string
		want       bool
	}{
		{"v3.10 main.yaml", string(vulndataFile(t, alpineV310Main)), true},
		{"wolfi json", string(vulndataFile(t, wolfiSample)), true},
		{"secdb json", `{"apkurl": "{{urlprefix}}/x.apk", "archs": ["x86_64"], "reponame": "main", "urlprefix": "https://dl-cdn.alpinelinux.org/alpine", "distroversion": "v3.20", "packages": [`, true},
		{"yaml without apkurl", "distroversion: v3.3\nreponame: community\npackages:\n", true},
		{"yaml without packages yet", "distroversion: v3.3\nreponame: community\n", false},
		{"debian tracker", string(vulndataFile(t, trackerSample)), false},
		{"nvd page", string(vulndataFile(t, nvdFullPage)), false},
		{"osv yaml", string(testdataFile(t, "osv/PYSEC-2023-73.yaml")), false},
		{"nested keys only", "pkg:\n  packages: []\n  distroversion: v3.10\n", false},
		{"array", `[{"packages": [], "distroversion": "v3.10"}]`, false},
	}
	for _, tt := range tests {
		if got := (AlpineSecDB{}).Match("main.yaml", []byte(tt.head)); got != tt.want {
			t.Errorf("%s: Match = %v, want %v", tt.name, got, tt.want)
		}
	}
}

// TestAlpineSecDBUpstreamFiles parses every secdb file of the repository's
// upstream data: each must be recognised and parse without a file error.
// alpine/ holds v3.10/main.yaml (as v3.10-main.yaml), formats/alpine the
// rest of alpine-secdb and the Wolfi sample.
func TestAlpineSecDBUpstreamFiles(t *testing.T) {
	n := 0
	vulndataWalk(t, func(path string, d fs.DirEntry) {
		if !strings.HasSuffix(path, ".yaml") && !strings.HasSuffix(path, ".json") {
			return
		}
		n++
		data, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		if !(AlpineSecDB{}).Match(d.Name(), data[:min(len(data), 4096)]) {
			t.Errorf("%s: not recognised", path)
		}
		res, err := AlpineSecDB{}.Parse(path, data)
		if err != nil {
			t.Errorf("%s: %v", path, err)
			return
		}
		for _, a := range res.Advisories {
			if a.ID == "" || a.Feed == "" || len(a.Affected) == 0 {
				t.Errorf("%s: incomplete advisory %+v", path, a)
			}
		}
		t.Logf("%s: %d advisories, %d skipped", path, len(res.Advisories), len(res.Skipped))
		for _, s := range res.Skipped {
			t.Logf("  skip %s: %s", s.Record, s.Reason)
		}
	}, "alpine", "formats/alpine")
	if n != 19 {
		t.Errorf("found %d secdb files, want 19 (alpine-secdb v3.3-v3.11 main and community, wolfi)", n)
	}
}

// TestAlpineSecDBSynthetic matches the packages of a synthetic
// alpine:3.10.0 image against v3.10/main.yaml, by origin package and fixed
// version, and checks the result is exactly the expected findings.
func TestAlpineSecDBSynthetic(t *testing.T) {
	res, err := AlpineSecDB{}.Parse("main.yaml", vulndataFile(t, alpineV310Main))
	if err != nil {
		t.Fatal(err)
	}
	byPkg := map[string][]vulndb.Advisory{}
	for _, a := range res.Advisories {
		if a.Feed != "alpine:v3.10/main" {
			t.Errorf("%s: feed %q", a.ID, a.Feed)
		}
		for _, af := range a.Affected {
			if af.Ecosystem != "Alpine:v3.10" {
				t.Errorf("%s: ecosystem %q", a.ID, af.Ecosystem)
			}
			byPkg[af.Package] = append(byPkg[af.Package], vulndb.Advisory{ID: a.ID, Affected: []vulndb.Affected{af}})
		}
	}
	var got []string
	var name, version string
	sc := bufio.NewScanner(strings.NewReader(string(vulndataFile(t, "alpine/installed"))))
	for sc.Scan() {
		k, v, _ := strings.Cut(sc.Text(), ":")
		switch k {
		case "P":
			name = v
		case "V":
			version = v
		case "o":
			for _, a := range byPkg[v] {
				af := a.Affected[0]
				if af.Status != vulndb.StatusFixed {
					continue
				}
				c, err := vulndb.CompareVersions(af.Ecosystem, version, af.Fixed)
				if err != nil {
					t.Fatal(err)
				}
				if c < 0 {
					got = append(got, fmt.Sprintf("%s %s@%s (origin %s) fixed-in %s", a.ID, name, version, v, af.Fixed))
				}
			}
		}
	}
	want := strings.Split(strings.TrimSpace(string(vulndataFile(t, "alpine/expected-findings.naive.txt"))), "\n")
	slices.Sort(got)
	slices.Sort(want)
	if !slices.Equal(got, want) {
		t.Errorf("findings:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}

// TestAlpineSecDBRecords checks how the quirks of real secfixes are read:
// several ids in one entry, comments, suffixed ids, ids listed under two
// versions, and Wolfi's "0".
func TestAlpineSecDBRecords(t *testing.T) {
	tests := []struct {
		file, id string
		affected []string
		aliases  []string
	}{
		{alpineV310Main, "CVE-2019-14697", []string{"Alpine:v3.10 musl fixed 1.1.22-r3"}, nil},
		{alpineV310Main, "CVE-2019-1547", []string{"Alpine:v3.10 openssl fixed 1.1.1d-r0"}, nil},
		// "CVE-2016-6258 XSA-182"
		{alpineV310Main, "CVE-2016-6258", []string{"Alpine:v3.10 xen fixed 4.7.0-r0"}, []string{"XSA-182"}},
		// "XSA-207" alone
		{alpineV310Main, "XSA-207", []string{"Alpine:v3.10 xen fixed 4.7.1-r5"}, nil},
		// "CVE-????-?????  XSA-295"
		{alpineV310Main, "XSA-295", []string{"Alpine:v3.10 xen fixed 4.12.1-r0"}, nil},
		// "CVE-2018-14468 (FrameRelay)"
		{alpineV310Main, "CVE-2018-14468", []string{"Alpine:v3.10 tcpdump fixed 4.9.3-r0"}, nil},
		// "CVE-2017-17434-1" and "CVE-2017-17434-2"
		{alpineV310Main, "CVE-2017-17434", []string{"Alpine:v3.10 rsync fixed 3.1.2-r7"}, nil},
		// "CVE-2019-5060 TALOS-2019-0844"
		{alpineV310Main, "CVE-2019-5060", []string{"Alpine:v3.10 sdl2_image fixed 2.0.5-r0"}, []string{"TALOS-2019-0844"}},
		// listed under 1.29.3-r10 and 1.30.1-r2: the higher fix is kept
		{alpineV310Main, "CVE-2019-5747", []string{"Alpine:v3.10 busybox fixed 1.30.1-r2"}, nil},
		// listed under 2.6-r7 and 2.7-r0
		{alpineV310Main, "CVE-2017-13082", []string{"Alpine:v3.10 hostapd fixed 2.7-r0", "Alpine:v3.10 wpa_supplicant fixed 2.7-r0"}, nil},
		{wolfiSample, "CVE-2016-2781", []string{"Wolfi coreutils not-affected "}, nil},
		{wolfiSample, "GHSA-jq35-85cj-fj4p", []string{"Wolfi apko not-affected "}, nil},
		{wolfiSample, "CVE-2023-39325", []string{"Wolfi apko fixed 0.10.0-r6"}, nil},
		{wolfiSample, "CVE-2022-38126", []string{"Wolfi binutils fixed 2.39-r1"}, nil},
	}
	results := map[string]map[string]vulndb.Advisory{}
	for _, tt := range tests {
		if results[tt.file] == nil {
			res, err := AlpineSecDB{}.Parse(tt.file, vulndataFile(t, tt.file))
			if err != nil {
				t.Fatal(err)
			}
			if len(res.Skipped) != 0 {
				t.Errorf("%s: skipped %v", tt.file, res.Skipped)
			}
			results[tt.file] = testByID(t, res.Advisories)
		}
		a, ok := results[tt.file][tt.id]
		if !ok {
			t.Errorf("%s: %s missing", tt.file, tt.id)
			continue
		}
		if l := testAffected(a); !slices.Equal(l, tt.affected) {
			t.Errorf("%s: %s affected %q, want %q", tt.file, tt.id, l, tt.affected)
		}
		if !slices.Equal(a.Aliases, tt.aliases) {
			t.Errorf("%s: %s aliases %q, want %q", tt.file, tt.id, a.Aliases, tt.aliases)
		}
	}
	if a := results[wolfiSample]["CVE-2016-2781"]; a.Feed != "wolfi" {
		t.Errorf("wolfi feed %q", a.Feed)
	}
	for _, id := range []string{"CVE-2017-17434-1", "TALOS-2019-0844", "XSA-182", "CVE-????-?????"} {
		if _, ok := results[alpineV310Main][id]; ok {
			t.Errorf("%s imported as an advisory", id)
		}
	}
}

// TestAlpineSecDBJSON reads the JSON of secdb.alpinelinux.org, and checks
// the records left out.
func TestAlpineSecDBJSON(t *testing.T) {
	data := `{
	  "apkurl": "{{urlprefix}}/{{distroversion}}/{{reponame}}/{{arch}}/{{pkg.name}}-{{pkg.ver}}.apk",
	  "archs": ["aarch64", "x86_64"],
	  "reponame": "community",
	  "urlprefix": "https://dl-cdn.alpinelinux.org/alpine",
	  "distroversion": "v3.20",
	  "packages": [
	    {"pkg": {"name": "go", "secfixes": {
	      "1.22.5-r0": ["CVE-2024-24791"],
	      "1.22.3-r0": ["CVE-2024-24787 CVE-2024-24788", "CVE_2019-2426", "CVE 2018-16859"],
	      "0": ["CVE-2023-0001"],
	      "1.2.3-r0": null,
	      "": ["CVE-2023-0002"],
	      "1.` + strings.Repeat("9", 300) + `": ["CVE-2023-0003"]
	    }}},
	    {"pkg": {"name": "go1.21", "secfixes": {"1.21.9-r0": ["CVE-2024-24791"]}}},
	    {"pkg": {"name": "", "secfixes": {"1-r0": ["CVE-2023-0004"]}}},
	    {"pkg": {"name": "nofixes"}}
	  ]
	}`
	res, err := AlpineSecDB{}.Parse("community.json", []byte(data))
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, a := range res.Advisories {
		if a.Feed != "alpine:v3.20/community" {
			t.Errorf("%s: feed %q", a.ID, a.Feed)
		}
		for _, l := range testAffected(a) {
			got = append(got, a.ID+" "+l)
		}
	}
	want := []string{
		"CVE-2023-0001 Alpine:v3.20 go not-affected ",
		"CVE-2024-24787 Alpine:v3.20 go fixed 1.22.3-r0",
		"CVE-2024-24788 Alpine:v3.20 go fixed 1.22.3-r0",
		"CVE-2024-24791 Alpine:v3.20 go fixed 1.22.5-r0",
		"CVE-2024-24791 Alpine:v3.20 go1.21 fixed 1.21.9-r0",
	}
	slices.Sort(got)
	if !slices.Equal(got, want) {
		t.Errorf("got\n %q\nwant\n %q", got, want)
	}
	var skips []string
	for _, s := range res.Skipped {
		skips = append(skips, s.Record+": "+s.Reason)
	}
	want = []string{
		"go : empty version",
		"go 1.22.3-r0: no advisory id in secfix \"CVE 2018-16859\"",
		"go 1.22.3-r0: no advisory id in secfix \"CVE_2019-2426\"",
		"go 1." + strings.Repeat("9", 78) + "...: version of 302 bytes is longer than 256",
		": package without a name",
	}
	slices.Sort(skips)
	slices.Sort(want)
	if !slices.Equal(skips, want) {
		t.Errorf("skipped\n %q\nwant\n %q", skips, want)
	}
}

func TestAlpineSecDBBadInput(t *testing.T) {
	huge := strings.Repeat("x", 1<<20)
	// An alias bomb that fits the secdb schema: 1,000 packages, each an
	// alias of one with 100 versions, each an alias of 100 ids, is 10^7
	// ids from 8 KB.
	var b strings.Builder
	b.WriteString("distroversion: v3.10\nreponame: main\nids: &a [" + strings.Repeat("CVE-2020-1234,", 99) + "CVE-2020-1234]\n")
	b.WriteString("one: &p {pkg: {name: x, secfixes: {")
	for i := range 100 {
		fmt.Fprintf(&b, "1-r%d: *a, ", i)
	}
	b.WriteString("}}}\npackages: [" + strings.Repeat("*p, ", 1000) + "]\n")
	bomb := b.String()
	tests := []badInput{
		{"empty", ``, true},
		{"malformed yaml", "distroversion: v3.10\npackages: [\n", true},
		{"malformed json", `{"distroversion": "v3.10", "packages": [}`, true},
		{"json list at top", `[{"distroversion": "v3.10", "packages": []}]`, true},
		{"yaml list at top", "- distroversion: v3.10\n  packages: []\n", true},
		{"scalar", "hello", true},
		{"no secdb keys", "reponame: main\nurlprefix: x\n", true},
		{"packages not a list", "distroversion: v3.10\npackages: {a: b}\n", true},
		{"secfix ids not a list", "distroversion: v3.10\npackages:\n  - pkg:\n      name: x\n      secfixes:\n        1-r0: CVE-2020-1234\n", true},
		{"bad distroversion", "distroversion: 3.10 and more\npackages: []\n", true},
		{"bad reponame", "distroversion: v3.10\nreponame: a/b\npackages: []\n", true},
		{"alias bomb", bomb, true},
		{"trailing json", `{"distroversion": "v3.10", "packages": []} {}`, true},
		{"null packages", "distroversion: v3.3\nreponame: community\npackages:\n", false},
		{"huge strings", "distroversion: v3.10\nreponame: main\npackages:\n  - pkg:\n      name: " + huge + "\n      secfixes:\n        1-r0:\n          - CVE-2020-1234" + huge + "\n          - " + huge + "\n", false},
		{"absurd version", "distroversion: v3.10\npackages:\n  - pkg:\n      name: x\n      secfixes:\n        " + strings.Repeat("1.", 150) + "1-r0: [CVE-2020-1234]\n", false},
	}
	for i, res := range checkBadInput(t, AlpineSecDB{}, "bad.yaml", tests) {
		for _, a := range res.Advisories {
			if len(a.ID) > 20 {
				t.Errorf("%s: advisory id of %d bytes", tests[i].name, len(a.ID))
			}
		}
	}
}

func FuzzAlpineSecDBParse(f *testing.F) {
	f.Add([]byte("distroversion: v3.10\nreponame: main\npackages:\n  - pkg:\n      name: musl\n      secfixes:\n        1.1.22-r3:\n          - CVE-2019-14697 XSA-1\n        0:\n          - CVE-2019-1\n"))
	f.Add([]byte(`{"distroversion": "v3.20", "reponame": "main", "packages": [{"pkg": {"name": "go", "secfixes": {"1.22.5-r0": ["CVE-2024-24791 (x)"]}}}]}`))
	for _, name := range []string{wolfiSample, alpineV310Main} {
		f.Add(vulndataFile(f, name))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		AlpineSecDB{}.Match("main.yaml", data)
		res, err := AlpineSecDB{}.Parse("fuzz.yaml", data)
		if err != nil {
			return
		}
		checkParsed(t, res)
	})
}
