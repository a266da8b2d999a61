package scan_test

import (
	"testing"

	"github.com/scangate/scangate/internal/scan"
)

// TestAdvisoryURL: distribution advisories osv.dev does not carry link to
// their publisher's page, in the shapes those sites use (Amazon's AL2 and
// AL2023 pages drop the release from the file name).
func TestAdvisoryURL(t *testing.T) {
	for id, want := range map[string]string{
		"CVE-2021-44228":            "https://nvd.nist.gov/vuln/detail/CVE-2021-44228",
		"GHSA-j288-q9x7-2f5v":       "https://github.com/advisories/GHSA-j288-q9x7-2f5v",
		"GO-2021-0113":              "https://pkg.go.dev/vuln/GO-2021-0113",
		"DEBIAN-CVE-2023-1234":      "https://osv.dev/vulnerability/DEBIAN-CVE-2023-1234",
		"ELSA-2022-4803":            "https://linux.oracle.com/errata/ELSA-2022-4803.html",
		"ELSA-2021-9151":            "https://linux.oracle.com/errata/ELSA-2021-9151.html",
		"ALAS-2018-1000":            "https://alas.aws.amazon.com/ALAS-2018-1000.html",
		"ALAS2-2018-942":            "https://alas.aws.amazon.com/AL2/ALAS-2018-942.html",
		"ALAS2KERNEL-5.15-2024-058": "https://alas.aws.amazon.com/AL2/ALASKERNEL-5.15-2024-058.html",
		"ALAS2023-2023-001":         "https://alas.aws.amazon.com/AL2023/ALAS-2023-001.html",
		"BRSA-1bwujdrkn6nc":         "https://advisories.bottlerocket.aws/",
	} {
		if got := scan.AdvisoryURL(id); got != want {
			t.Errorf("AdvisoryURL(%q) = %q, want %q", id, got, want)
		}
	}
}
