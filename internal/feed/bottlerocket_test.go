package feed

import (
	"reflect"
	"strings"
	"testing"

	"github.com/scangate/scangate/internal/vulndb"
)

func TestBottlerocketUpdateInfoReal(t *testing.T) {
	data := testdataFile(t, "bottlerocket/updateinfo.xml.gz")
	for _, f := range Formats {
		if got := f.Match("updateinfo.xml.gz", data); got != (f.Name() == "bottlerocket") {
			t.Errorf("format %s matches Bottlerocket's updateinfo: %v", f.Name(), got)
		}
	}
	if !(AmazonUpdateInfo{}).Match("updateinfo.xml.gz", testdataFile(t, "amazon/al2/updateinfo.xml.gz")) ||
		(BottlerocketUpdateInfo{}).Match("updateinfo.xml.gz", testdataFile(t, "amazon/al2/updateinfo.xml.gz")) {
		t.Error("Amazon's updateinfo is not Amazon's alone")
	}
	res, err := BottlerocketUpdateInfo{}.Parse("updateinfo.xml.gz", data)
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Advisories) != 2 || len(res.Skipped) != 0 {
		t.Fatalf("%d advisories, skipped %v", len(res.Advisories), res.Skipped)
	}
	want := map[string][]vulndb.Affected{
		"BRSA-1bwujdrkn6nc": {
			{Ecosystem: "Bottlerocket", Package: "kernel-6.1", Status: vulndb.StatusFixed, Fixed: "6.1.140-1.1749663821.e27d1b03.br1", Urgency: "medium"},
			{Ecosystem: "Bottlerocket", Package: "bottlerocket-kernel-6.1", Status: vulndb.StatusFixed, Fixed: "6.1.140-1.1749663821.e27d1b03.br1", Urgency: "medium"},
		},
		"BRSA-kdg8bd1th2gb": {
			// Epoch 1 kept: glibc's versions carry it.
			{Ecosystem: "Bottlerocket", Package: "glibc", Status: vulndb.StatusFixed, Fixed: "1:2.43-1.1773716061.e2e9d7a9.br1", Urgency: "medium"},
			{Ecosystem: "Bottlerocket", Package: "bottlerocket-glibc", Status: vulndb.StatusFixed, Fixed: "1:2.43-1.1773716061.e2e9d7a9.br1", Urgency: "medium"},
		},
	}
	for _, a := range res.Advisories {
		if a.Feed != "bottlerocket" || len(a.Aliases) != 1 || a.Published.IsZero() || len(a.References) != 1 {
			t.Errorf("%s: %+v", a.ID, a)
		}
		if !reflect.DeepEqual(a.Affected, want[a.ID]) {
			t.Errorf("%s: affected %+v, want %+v", a.ID, a.Affected, want[a.ID])
		}
	}
}

func TestBottlerocketUpdateInfoBadInput(t *testing.T) {
	one := `<updates><update type="security"><id>%s</id><pkglist><collection short="%s"><package name="a" version="1" release="1.br1" epoch="0" arch="x86_64"/></collection></pkglist></update></updates>`
	res := checkBadInput(t, BottlerocketUpdateInfo{}, "updateinfo.xml", []badInput{
		{"malformed", `<updates><update>`, true},
		{"empty", `<updates></updates>`, true},
		{"truncated gzip", gz(t, `<updates>`)[:10], true},
		{"not a BRSA id", sprintf(one, "ALAS2-2020-1", "bottlerocket"), false},
		{"another collection", sprintf(one, "BRSA-abc", "amazon-linux-2"), false},
		{"bad version", `<updates><update><id>BRSA-abd</id><pkglist><collection short="bottlerocket"><package name="a" version="` + strings.Repeat("9", 300) + `" release="1"/></collection></pkglist></update></updates>`, false},
	})
	for i, r := range res[3:] {
		if len(r.Advisories) != 0 || len(r.Skipped) == 0 {
			t.Errorf("case %d: %d advisories, skipped %v", i+3, len(r.Advisories), r.Skipped)
		}
	}
}

func FuzzBottlerocketUpdateInfoParse(f *testing.F) {
	f.Add(testdataFile(f, "bottlerocket/updateinfo.xml.gz"))
	f.Add([]byte(`<updates><update><id>BRSA-abc</id><references><reference id="CVE-2020-1" type="cve"/></references><pkglist><collection short="bottlerocket"><package name="a" version="1" release="1" epoch="2"/></collection></pkglist></update></updates>`))
	f.Fuzz(func(t *testing.T, data []byte) {
		BottlerocketUpdateInfo{}.Match("updateinfo.xml", data)
		res, err := BottlerocketUpdateInfo{}.Parse("updateinfo.xml", data)
		if err != nil {
			return
		}
		checkParsed(t, res)
	})
}
