package vulndb

import (
	"context"
	"slices"
	"testing"
)

func TestSUSEMatchKey(t *testing.T) {
	for eco, want := range map[string]string{
		// The products and modules of one service pack are one codestream.
		"SUSE:Linux Enterprise Server 15 SP5":                       "SUSE:Linux Enterprise 15 SP5",
		"SUSE:Linux Enterprise Module for Basesystem 15 SP5":        "SUSE:Linux Enterprise 15 SP5",
		"SUSE:Linux Enterprise Module for Realtime packages 15 SP1": "SUSE:Linux Enterprise 15 SP1",
		"SUSE:Linux Enterprise Server for SAP Applications 12 SP4":  "SUSE:Linux Enterprise 12 SP4",
		"SUSE:Linux Enterprise Module for Legacy Software 12":       "SUSE:Linux Enterprise 12 Modules",
		"SUSE:Linux Enterprise Server 12":                           "SUSE:Linux Enterprise 12",
		"SUSE:Linux Enterprise Server 15":                           "SUSE:Linux Enterprise 15",
		// Extended support is kept apart.
		"SUSE:Linux Enterprise Server 15 SP1-LTSS":                      "SUSE:Linux Enterprise 15 SP1-LTSS",
		"SUSE:Linux Enterprise Server 15-LTSS":                          "SUSE:Linux Enterprise 15-LTSS",
		"SUSE:Linux Enterprise High Performance Computing 15 SP5-ESPOS": "SUSE:Linux Enterprise 15 SP5-LTSS",
		"SUSE:Linux Enterprise Server LTSS Extended Security 12 SP5":    "SUSE:Linux Enterprise 12 SP5-LTSS",
		"SUSE:Linux Enterprise Server 11 SP4-LTSS":                      "SUSE:Linux Enterprise 11 SP4-LTSS",
		// Products versioned on their own keep their names.
		"SUSE:Linux Enterprise Micro 5.5":                          "SUSE:Linux Enterprise Micro 5.5",
		"SUSE:Linux Enterprise Server 16.0":                        "SUSE:Linux Enterprise Server 16.0",
		"SUSE:Linux Enterprise Module for SUSE Manager Server 4.3": "SUSE:Linux Enterprise Module for SUSE Manager Server 4.3",
		"SUSE:Linux Enterprise Storage 7":                          "SUSE:Linux Enterprise Storage 7",
		"SUSE:Linux Enterprise Server 15 SP5-CHOST":                "SUSE:Linux Enterprise Server 15 SP5-CHOST",
		"openSUSE:Leap 15.5":                                       "openSUSE:Leap 15.5",
		"openSUSE:Leap 15.5 NonFree":                               "openSUSE:Leap 15.5",
		"openSUSE:Leap Micro 5.5":                                  "openSUSE:Leap Micro 5.5",
		"openSUSE:Tumbleweed":                                      "openSUSE:Tumbleweed",
		"Red Hat:9":                                                "Red Hat:9",
	} {
		if got := matchKey(eco); got != want {
			t.Errorf("matchKey(%q) = %q, want %q", eco, got, want)
		}
	}
	if got := queried("SUSE:Linux Enterprise Server 15 SP5-LTSS"); !slices.Equal(got, []string{"SUSE:Linux Enterprise 15 SP5-LTSS", "SUSE:Linux Enterprise 15 SP5"}) {
		t.Errorf("an LTSS machine queries %v", got)
	}
	if got := queried("SUSE:Linux Enterprise Server 15 SP5"); !slices.Equal(got, []string{"SUSE:Linux Enterprise 15 SP5"}) {
		t.Errorf("a machine without LTSS queries %v", got)
	}
	if got := queried("SUSE:Linux Enterprise Server 12 SP5-LTSS"); !slices.Equal(got, []string{"SUSE:Linux Enterprise 12 SP5-LTSS", "SUSE:Linux Enterprise 12 SP5", "SUSE:Linux Enterprise 12 Modules"}) {
		t.Errorf("an SLE 12 LTSS machine queries %v", got)
	}
}

// TestSUSEProductsFoldIntoOneFinding stores one advisory that lists the
// same binary under three products of SLE 15 SP1 and an LTSS product, as
// SUSE's advisories do, and queries it as the server would.
func TestSUSEProductsFoldIntoOneFinding(t *testing.T) {
	ctx := context.Background()
	db := newTestDB(t)
	fixed := func(eco, v string) Affected {
		return Affected{Ecosystem: eco, Package: "kernel-rt", Status: StatusFixed, Fixed: v}
	}
	adv := Advisory{ID: "SUSE-SU-2019:3295-1", Feed: "suse", Affected: []Affected{
		fixed("SUSE:Linux Enterprise Module for Realtime packages 15 SP1", "4.12.14-14.14.3"),
		fixed("SUSE:Linux Enterprise Module for Open Buildservice Development Tools 15 SP1", "4.12.14-14.14.3"),
		fixed("SUSE:Linux Enterprise Real Time Extension 15 SP1", "4.12.14-14.14.4"),
		fixed("SUSE:Linux Enterprise Server 15 SP1-LTSS", "4.12.14-14.20.1"),
	}}
	if err := db.Replace(ctx, []Feed{{Name: "suse", Format: "suse", Advisories: []Advisory{adv}}}, ReplaceOptions{}); err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		eco   string
		fixed []string
	}{
		{"SUSE:Linux Enterprise Server 15 SP1", []string{"4.12.14-14.14.3", "4.12.14-14.14.4"}},
		{"SUSE:Linux Enterprise Server 15 SP1-LTSS", []string{"4.12.14-14.20.1"}},
	} {
		ms, err := db.Reader().Affected(ctx, tt.eco, "kernel-rt", "4.12.14-14.11.1")
		if err != nil {
			t.Fatal(err)
		}
		if len(ms) != 1 || !slices.Equal(ms[0].Fixed, tt.fixed) {
			t.Errorf("%s: %+v, want one finding fixed in %v", tt.eco, ms, tt.fixed)
		}
	}
	if ms, _ := db.Reader().Affected(ctx, "SUSE:Linux Enterprise Server 15 SP2", "kernel-rt", "4.12.14-14.11.1"); len(ms) != 0 {
		t.Errorf("another service pack matched: %+v", ms)
	}
}
