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

func TestOracleLinux(t *testing.T) {
	for version, want := range map[string]string{"8.9": "Oracle Linux:8", "7": "Oracle Linux:7", "": ""} {
		if got := osEcosystem(&OS{ID: "ol", VersionID: version}); got != want {
			t.Errorf("ol %q: %q, want %q", version, got, want)
		}
	}
	o := &OS{ID: "ol", VersionID: "7.9", Ecosystem: "Oracle Linux:7"}
	pkgs := []Package{
		{Name: "rsyslog", Type: "rpm", Ecosystem: "Oracle Linux:7:aarch64"},
		{Name: "bash", Type: "rpm", Ecosystem: "Oracle Linux:7:aarch64"},
		{Name: "rsyslog-doc", Type: "rpm", Ecosystem: "Oracle Linux:7:noarch"},
		{Name: "requests", Type: "python", Ecosystem: "PyPI"},
	}
	oracleArch(pkgs, o)
	if pkgs[2].Ecosystem != "Oracle Linux:7:aarch64" || pkgs[0].Ecosystem != "Oracle Linux:7:aarch64" || pkgs[3].Ecosystem != "PyPI" {
		t.Errorf("a noarch package of an aarch64 machine: %+v", pkgs)
	}
	only := []Package{{Name: "tzdata", Type: "rpm", Ecosystem: "Oracle Linux:7:noarch"}}
	oracleArch(only, o)
	if only[0].Ecosystem != "Oracle Linux:7" {
		t.Errorf("no architecture known: %s, want the release's", only[0].Ecosystem)
	}
}

func TestRPMModule(t *testing.T) {
	for _, tt := range []struct {
		pkg        Package
		label      string
		wantSource string
	}{
		{Package{Name: "postgresql-server", Type: "rpm", Ecosystem: "Red Hat:8", SourceName: "postgresql", SourceVersion: "10.21-2.module+el8.6.0+1+a"}, "postgresql:10:8060020220308102432:ad008a3a", "postgresql:10/postgresql"},
		{Package{Name: "nodejs", Type: "rpm", Ecosystem: "Oracle Linux:8:x86_64", Version: "1:18.17.1-1.module+el8.8.0+1+a"}, "nodejs:18:8080020230725120544:63b34585", "nodejs:18/nodejs"},
		// Without a label, as before.
		{Package{Name: "postgresql", Type: "rpm", Ecosystem: "Red Hat:9", SourceName: "postgresql", SourceVersion: "13.11-1.el9_2"}, "", "postgresql"},
		// A label that names no stream changes nothing.
		{Package{Name: "postgresql", Type: "rpm", Ecosystem: "Red Hat:9", SourceName: "postgresql", SourceVersion: "13.11-1.el9_2"}, "postgresql", "postgresql"},
		// Rocky's and Alma's errata name binaries without streams.
		{Package{Name: "ruby", Type: "rpm", Ecosystem: "Rocky Linux:8"}, "ruby:3.1:8090020230627065010:b9a68ac2", ""},
	} {
		p := tt.pkg
		rpmModule(&p, tt.label)
		if p.SourceName != tt.wantSource {
			t.Errorf("%s with label %q: source %q, want %q", tt.pkg.Name, tt.label, p.SourceName, tt.wantSource)
		}
		if tt.wantSource != "" && p.SourceVersion == "" {
			t.Errorf("%s: no source version", tt.pkg.Name)
		}
	}
}
