package feed

import (
	"bytes"
	"compress/gzip"
	"fmt"
	"testing"

	"github.com/scangate/scangate/internal/vulndb"
)

func TestAmazonUpdateInfoReal(t *testing.T) {
	for _, tt := range []struct {
		file, eco, feed string
		ids             []string
	}{
		{"amazon/al2/updateinfo.xml.gz", "Amazon Linux:2", "amazon:2", []string{"ALAS2-2018-942", "ALAS2-2018-949"}},
		{"amazon/al2023/updateinfo.xml.gz", "Amazon Linux:2023", "amazon:2023", []string{"ALAS2023-2023-001"}},
	} {
		data := testdataFile(t, tt.file)
		if !(AmazonUpdateInfo{}).Match("updateinfo.xml.gz", data) {
			t.Errorf("%s: not matched", tt.file)
		}
		res, err := AmazonUpdateInfo{}.Parse(tt.file, data)
		if err != nil {
			t.Fatal(err)
		}
		if len(res.Advisories) != len(tt.ids) || len(res.Skipped) != 0 {
			t.Fatalf("%s: %d advisories, skipped %v", tt.file, len(res.Advisories), res.Skipped)
		}
		for i, a := range res.Advisories {
			if a.ID != tt.ids[i] || a.Feed != tt.feed || len(a.Aliases) == 0 || len(a.Affected) == 0 {
				t.Errorf("%s: advisory %s feed %s aliases %v", tt.file, a.ID, a.Feed, a.Aliases)
			}
			for _, af := range a.Affected {
				if af.Ecosystem != tt.eco || af.Status != vulndb.StatusFixed || af.Fixed == "" {
					t.Errorf("%s %s: %+v", tt.file, a.ID, af)
				}
			}
		}
	}
	res, _ := AmazonUpdateInfo{}.Parse("al2", testdataFile(t, "amazon/al2/updateinfo.xml.gz"))
	for _, af := range res.Advisories[0].Affected {
		if af.Package == "qemu-img" && af.Fixed != "10:1.5.3-141.amzn2.5.3" {
			t.Errorf("qemu-img fixed %q, want the epoch kept: 10:1.5.3-141.amzn2.5.3", af.Fixed)
		}
	}
}

func gz(t testing.TB, s string) string {
	var b bytes.Buffer
	zw := gzip.NewWriter(&b)
	zw.Write([]byte(s))
	zw.Close()
	return b.String()
}

func TestAmazonUpdateInfoBadInput(t *testing.T) {
	one := `<updates><update type="security"><id>%s</id><pkglist><collection short="%s"><package name="a" version="1" release="1.amzn2" epoch="0" arch="x86_64"/></collection></pkglist></update></updates>`
	res := checkBadInput(t, AmazonUpdateInfo{}, "updateinfo.xml", []badInput{
		{"malformed", `<updates><update>`, true},
		{"empty", `<updates></updates>`, true},
		{"truncated gzip", gz(t, `<updates>`)[:10], true},
		{"not an ALAS id", sprintf(one, "RHSA-2020:1", "amazon-linux-2"), false},
		{"extras collection", sprintf(one, "ALAS2-2020-1", "amazon-linux-2--extras-nginx1"), false},
		{"bad version", `<updates><update><id>ALAS2-2020-2</id><pkglist><collection short="amazon-linux-2"><package name="a" version="` + string(bytes.Repeat([]byte("9"), 300)) + `" release="1"/></collection></pkglist></update></updates>`, false},
	})
	for i, r := range res[3:] {
		if len(r.Advisories) != 0 || len(r.Skipped) == 0 {
			t.Errorf("case %d: %d advisories, skipped %v", i+3, len(r.Advisories), r.Skipped)
		}
	}
}

func FuzzAmazonUpdateInfoParse(f *testing.F) {
	f.Add(testdataFile(f, "amazon/al2023/updateinfo.xml.gz"))
	f.Add([]byte(`<updates><update><id>ALAS2-2020-1</id><references><reference id="CVE-2020-1" type="cve"/></references><pkglist><collection short="amazon-linux-2"><package name="a" version="1" release="1" epoch="2"/></collection></pkglist></update></updates>`))
	f.Fuzz(func(t *testing.T, data []byte) {
		AmazonUpdateInfo{}.Match("updateinfo.xml", data)
		res, err := AmazonUpdateInfo{}.Parse("updateinfo.xml", data)
		if err != nil {
			return
		}
		checkParsed(t, res)
	})
}

func sprintf(format string, args ...any) string { return fmt.Sprintf(format, args...) }
