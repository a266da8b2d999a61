package scan

import "testing"

// TestSUSEEcosystems names SUSE releases from their os-release ID and
// VERSION_ID as SUSE's advisories name the products.
func TestSUSEEcosystems(t *testing.T) {
	for _, tt := range []struct{ id, version, want string }{
		{"sles", "15.5", "SUSE:Linux Enterprise Server 15 SP5"}, // also the BCI images
		{"sles", "15", "SUSE:Linux Enterprise Server 15"},
		{"sles", "15.0", "SUSE:Linux Enterprise Server 15"},
		{"sles", "12.5", "SUSE:Linux Enterprise Server 12 SP5"},
		{"sles", "16.0", "SUSE:Linux Enterprise Server 16.0"},
		{"sled", "15.6", "SUSE:Linux Enterprise Desktop 15 SP6"},
		{"sles_sap", "15.4", "SUSE:Linux Enterprise Server for SAP Applications 15 SP4"},
		{"sle_hpc", "15.5", "SUSE:Linux Enterprise High Performance Computing 15 SP5"},
		{"sle-micro", "5.5", "SUSE:Linux Enterprise Micro 5.5"},
		{"sl-micro", "6.0", "SUSE:Linux Micro 6.0"},
		{"opensuse-leap", "15.5", "openSUSE:Leap 15.5"},
		{"sles", "", ""},
		{"sles", "x.y", ""},
		{"opensuse-tumbleweed", "20240801", ""},
	} {
		if got := osEcosystem(&OS{ID: tt.id, VersionID: tt.version}); got != tt.want {
			t.Errorf("%s %s: %q, want %q", tt.id, tt.version, got, tt.want)
		}
	}
}

func TestSUSELTSS(t *testing.T) {
	o := &OS{ID: "sles", VersionID: "15.5", Ecosystem: "SUSE:Linux Enterprise Server 15 SP5"}
	pkgs := []Package{
		{Name: "glibc", Type: "rpm", Ecosystem: o.Ecosystem},
		{Name: "requests", Type: "python", Ecosystem: "PyPI"},
	}
	suseLTSS(pkgs, o)
	if o.Ecosystem != "SUSE:Linux Enterprise Server 15 SP5" || pkgs[0].Ecosystem != o.Ecosystem {
		t.Errorf("without sles-ltss-release: %s, %s", o.Ecosystem, pkgs[0].Ecosystem)
	}
	pkgs = append(pkgs, Package{Name: "sles-ltss-release", Type: "rpm", Ecosystem: o.Ecosystem})
	suseLTSS(pkgs, o)
	want := "SUSE:Linux Enterprise Server 15 SP5-LTSS"
	if o.Ecosystem != want || pkgs[0].Ecosystem != want || pkgs[2].Ecosystem != want || pkgs[1].Ecosystem != "PyPI" {
		t.Errorf("with sles-ltss-release: %s, %+v", o.Ecosystem, pkgs)
	}
}
