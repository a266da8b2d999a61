package vulndb

import (
	"context"
	"slices"
	"testing"

	"github.com/scangate/scangate/internal/storetest"
)

func TestOracleFlavour(t *testing.T) {
	for v, want := range map[string]string{
		"3.6.16-5.el8":               "",
		"10:3.6.16-4.0.1.el8_fips":   "fips",
		"2:1.1.1g-15.ksplice1.el8_3": "ksplice",
		"2:1.1.1g-15.KSPLICE2.el8":   "ksplice",
		"2.6.39-400.290.2.el6uek":    "", // UEK is its own package name (kernel-uek), not a flavour
		"1.0-1.el8_fipsy":            "",
	} {
		if got := Flavour("Oracle Linux:8", v); got != want {
			t.Errorf("Flavour(%q) = %q, want %q", v, got, want)
		}
	}
	if got := Flavour("Red Hat:8", "1-1.el8_fips"); got != "" {
		t.Errorf("a Red Hat version has flavour %q", got)
	}
	if got := queried("Oracle Linux:8:x86_64"); !slices.Equal(got, []string{"Oracle Linux:8:x86_64", "Oracle Linux:8"}) {
		t.Errorf("an x86_64 machine queries %v", got)
	}
	if got := queried("Oracle Linux:8"); !slices.Equal(got, []string{"Oracle Linux:8"}) {
		t.Errorf("a machine of unknown architecture queries %v", got)
	}
}

// TestOracleFlavoursAndArches stores gnutls as Oracle fixes it for CVE-2021-20231
// in one release: a normal build (ELSA-2021-4451) and a FIPS build with epoch
// 10 (ELSA-2022-9221, versions as Oracle's OVAL states them), and rsyslog with
// a fix per architecture (ELSA-2022-4803), and queries them as a scan would.
func TestOracleFlavoursAndArches(t *testing.T) {
	ctx := context.Background()
	db := newTestDB(t)
	fixed := func(eco, pkg, v string) Affected {
		return Affected{Ecosystem: eco, Package: pkg, Status: StatusFixed, Fixed: v}
	}
	advs := []Advisory{
		{ID: "ELSA-2021-4451", Affected: []Affected{fixed("Oracle Linux:8", "gnutls", "3.6.16-4.el8")}},
		{ID: "ELSA-2022-9221", Affected: []Affected{fixed("Oracle Linux:8", "gnutls", "10:3.6.16-4.0.1.el8_fips")}},
		{ID: "ELSA-2022-4803", Affected: []Affected{
			fixed("Oracle Linux:7:aarch64", "rsyslog", "8.24.0-57.0.4.el7_9.3"),
			fixed("Oracle Linux:7:x86_64", "rsyslog", "8.24.0-57.0.1.el7_9.3"),
		}},
	}
	if err := db.Replace(ctx, []Feed{{Name: "oracle", Format: "oracle", Advisories: advs}}, ReplaceOptions{}); err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		eco, pkg, version string
		want              []string // id fixed
	}{
		// A normal build below the normal fix: the FIPS fix, epoch 10,
		// is above every normal build and must not be offered.
		{"Oracle Linux:8:x86_64", "gnutls", "3.6.16-3.el8", []string{"ELSA-2021-4451 3.6.16-4.el8"}},
		// A normal build at the normal fix: nothing, though it is "below"
		// 10:3.6.16-4.0.1.el8_fips.
		{"Oracle Linux:8:x86_64", "gnutls", "3.6.16-4.el8", nil},
		// A FIPS build below its fix; it is above the normal fix, which
		// would hide it anyway, but only the FIPS line speaks for it.
		{"Oracle Linux:8:x86_64", "gnutls", "10:3.6.16-3.0.1.el8_fips", []string{"ELSA-2022-9221 10:3.6.16-4.0.1.el8_fips"}},
		{"Oracle Linux:8:x86_64", "gnutls", "10:3.6.16-4.0.1.el8_fips", nil},
		// x86_64's fix is 57.0.1: a build there is fixed; aarch64's is
		// 57.0.4.
		{"Oracle Linux:7:x86_64", "rsyslog", "8.24.0-57.0.1.el7_9.3", nil},
		{"Oracle Linux:7:x86_64", "rsyslog", "8.24.0-57.el7_9.2", []string{"ELSA-2022-4803 8.24.0-57.0.1.el7_9.3"}},
		{"Oracle Linux:7:aarch64", "rsyslog", "8.24.0-57.0.1.el7_9.3", []string{"ELSA-2022-4803 8.24.0-57.0.4.el7_9.3"}},
		// A machine whose architecture is unknown reads neither.
		{"Oracle Linux:7", "rsyslog", "8.24.0-57.el7_9.2", nil},
	} {
		ms, err := db.Reader().Affected(ctx, tt.eco, tt.pkg, tt.version)
		if err != nil {
			t.Fatal(err)
		}
		var got []string
		for _, m := range ms {
			got = append(got, m.ID+" "+m.Fixed[0])
		}
		if !slices.Equal(got, tt.want) {
			t.Errorf("%s %s %s: %v, want %v", tt.eco, tt.pkg, tt.version, got, tt.want)
		}
	}
}

// newTestDB returns a new database (SQLite, or PostgreSQL when the run
// says so: storetest.Env), closed when the test ends.
func newTestDB(t *testing.T) *DB {
	t.Helper()
	return New(storetest.Open(t, t.TempDir()))
}
