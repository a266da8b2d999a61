package vulndb

import (
	"slices"
	"testing"
)

// TestInRange follows the OSV schema's evaluation of range events.
func TestInRange(t *testing.T) {
	ev := func(kind, v string) Event {
		switch kind {
		case "i":
			return Event{Introduced: v}
		case "f":
			return Event{Fixed: v}
		case "l":
			return Event{LastAffected: v}
		}
		return Event{Limit: v}
	}
	tests := []struct {
		name    string
		eco     string
		events  []Event
		version string
		want    bool
		fixed   string
	}{
		{"below fix", "Go", []Event{ev("i", "0"), ev("f", "0.3.7")}, "0.3.5", true, "0.3.7"},
		{"at fix", "Go", []Event{ev("i", "0"), ev("f", "0.3.7")}, "0.3.7", false, ""},
		{"above fix", "Go", []Event{ev("i", "0"), ev("f", "0.3.7")}, "0.4.0", false, ""},
		{"before introduced", "Go", []Event{ev("i", "1.0.0"), ev("f", "1.2.0")}, "0.9.0", false, ""},
		{"at introduced", "Go", []Event{ev("i", "1.0.0"), ev("f", "1.2.0")}, "1.0.0", true, "1.2.0"},
		{"second interval", "PyPI", []Event{ev("i", "4.0"), ev("f", "4.3"), ev("i", "5.0"), ev("f", "5.2")}, "5.1", true, "5.2"},
		{"between intervals", "PyPI", []Event{ev("i", "4.0"), ev("f", "4.3"), ev("i", "5.0"), ev("f", "5.2")}, "4.5", false, ""},
		{"unsorted events", "PyPI", []Event{ev("f", "5.2"), ev("i", "5.0"), ev("f", "4.3"), ev("i", "4.0")}, "4.1", true, "4.3"},
		{"last affected", "npm", []Event{ev("i", "0"), ev("l", "1.2.3")}, "1.2.3", true, ""},
		{"past last affected", "npm", []Event{ev("i", "0"), ev("l", "1.2.3")}, "1.2.4", false, ""},
		{"open ended", "npm", []Event{ev("i", "2.0.0")}, "9.9.9", true, ""},
		{"pseudo-version", "Go", []Event{ev("i", "0"), ev("f", "0.7.0")}, "0.0.0-20210226172049-e18ecbb05110", true, "0.7.0"},
		{"debian epoch", "Debian:12", []Event{ev("i", "0"), ev("f", "1:1.2.13.dfsg-2")}, "1:1.2.13.dfsg-1", true, "1:1.2.13.dfsg-2"},
		{"debian epoch beats upstream", "Debian:12", []Event{ev("i", "0"), ev("f", "2.0-1")}, "1:1.0-1", false, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			evs, err := parseEvents(tt.eco, tt.events)
			if err != nil {
				t.Fatal(err)
			}
			v, err := ParseVersion(tt.eco, tt.version)
			if err != nil {
				t.Fatal(err)
			}
			got, fixed := inRange(v, evs)
			if got != tt.want || fixed != tt.fixed {
				t.Errorf("inRange(%s) = %v, %q; want %v, %q", tt.version, got, fixed, tt.want, tt.fixed)
			}
		})
	}
}

// TestEntryStatus checks that distribution statuses decide as trackers mean
// them: unfixed kinds affect every version, a fix only those below it,
// not-affected none.
func TestEntryStatus(t *testing.T) {
	tests := []struct {
		af      Affected
		version string
		want    bool
		status  Status
		fixed   []string
	}{
		{Affected{Status: StatusUnfixed}, "1:1.2.13.dfsg-1", true, StatusUnfixed, nil},
		{Affected{Status: StatusWillNotFix}, "9.1-1", true, StatusWillNotFix, nil},
		{Affected{Status: StatusEndOfLife}, "1.0-1", true, StatusEndOfLife, nil},
		{Affected{Status: StatusNotAffected}, "1.0-1", false, "", nil},
		{Affected{Status: StatusFixed, Fixed: "2.36-9+deb12u4"}, "2.36-9+deb12u3", true, StatusFixed, []string{"2.36-9+deb12u4"}},
		{Affected{Status: StatusFixed, Fixed: "2.36-9+deb12u4"}, "2.36-9+deb12u4", false, "", nil},
		{Affected{Status: StatusFixed, Fixed: "2.36-9+deb12u4"}, "2.36-9+deb12u14", false, "", nil},
		{Affected{Versions: []string{"1.0-1", "1.0-2"}}, "1.0-2", true, StatusUnfixed, nil},
		{Affected{Versions: []string{"1.0-1", "1.0-2"}}, "1.0-3", false, "", nil},
	}
	for _, tt := range tests {
		tt.af.Ecosystem, tt.af.Package = "Debian:12", "pkg"
		e, err := newEntry(entryDoc{ID: "CVE-1", Feed: "debian", Affected: tt.af})
		if err != nil {
			t.Fatal(err)
		}
		v, err := ParseVersion("Debian:12", tt.version)
		if err != nil {
			t.Fatal(err)
		}
		m, ok := e.match(v)
		if ok != tt.want || m.Status != tt.status || !slices.Equal(m.Fixed, tt.fixed) {
			t.Errorf("%+v at %s: match %v status %q fixed %v; want %v %q %v", tt.af, tt.version, ok, m.Status, m.Fixed, tt.want, tt.status, tt.fixed)
		}
	}
}

func TestClean(t *testing.T) {
	long := string(make([]byte, MaxVersionLen+1))
	a := Advisory{ID: "GO-2021-0113", Affected: []Affected{
		{Ecosystem: "Go", Package: "golang.org/x/text", Ranges: []Range{{Type: RangeSemver, Events: []Event{{Introduced: "0"}, {Fixed: "0.3.7"}}}}},
		{Ecosystem: "NotAnEcosystem", Package: "x"},
		{Ecosystem: "Go", Package: "y", Ranges: []Range{{Type: RangeSemver, Events: []Event{{Introduced: long}}}}},
		{Ecosystem: "Debian:12", Package: "z", Status: StatusFixed},
		{Ecosystem: "Go", Package: "g", Ranges: []Range{{Type: RangeGit, Events: []Event{{Introduced: "0"}, {Fixed: "b42dd4badf803bb9"}}}}},
	}}
	dropped, err := Clean(&a)
	if err != nil {
		t.Fatal(err)
	}
	if len(dropped) != 3 || len(a.Affected) != 2 {
		t.Fatalf("Clean kept %d, dropped %q; want 2 kept (the Go range and the GIT range), 3 dropped", len(a.Affected), dropped)
	}
	for _, bad := range []Advisory{{ID: ""}, {ID: "has space"}, {ID: string(make([]byte, MaxIDLen+1))}, {ID: "ok", Aliases: []string{"\x00"}}} {
		if _, err := Clean(&bad); err == nil {
			t.Errorf("Clean(%q) accepted a bad id", bad.ID)
		}
	}
}
