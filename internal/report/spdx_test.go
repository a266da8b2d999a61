package report

import (
	"bytes"
	"regexp"
	"strings"
	"testing"
	"time"

	spdxjson "github.com/spdx/tools-golang/json"
	"github.com/spdx/tools-golang/spdx"
	"github.com/spdx/tools-golang/spdx/v2/common"
	"github.com/spdx/tools-golang/spdxlib"

	"github.com/scangate/scangate/internal/scan"
)

func TestSPDXGolden(t *testing.T) {
	golden(t, "report.spdx.json", render(t, testReport(t), SPDX, Options{ToolVersion: "1.2.3"}))
}

// readSPDX parses the output with tools-golang's JSON reader and checks
// the document with its validator.
func readSPDX(t *testing.T, out []byte) *spdx.Document {
	t.Helper()
	doc, err := spdxjson.Read(bytes.NewReader(out))
	if err != nil {
		t.Fatalf("tools-golang cannot read the document: %v", err)
	}
	if err := spdxlib.ValidateDocument(doc); err != nil {
		t.Errorf("tools-golang rejects the document: %v", err)
	}
	return doc
}

func TestSPDXRoundTrip(t *testing.T) {
	r := testReport(t)
	out := render(t, r, SPDX, Options{ToolVersion: "1.2.3"})
	doc := readSPDX(t, out)

	if doc.SPDXVersion != "SPDX-2.3" || doc.DataLicense != "CC0-1.0" || doc.SPDXIdentifier != "DOCUMENT" {
		t.Errorf("header = %s %s %s", doc.SPDXVersion, doc.DataLicense, doc.SPDXIdentifier)
	}
	if doc.DocumentName != r.Image.Ref {
		t.Errorf("name = %q", doc.DocumentName)
	}
	if !regexp.MustCompile(`^https://github\.com/scangate/scangate/spdx/127\.0\.0\.1-5000-acme-shop-[0-9a-f-]{36}$`).MatchString(doc.DocumentNamespace) {
		t.Errorf("namespace = %q", doc.DocumentNamespace)
	}
	ci := doc.CreationInfo
	if ci.Created != "2024-06-03T10:15:00Z" || len(ci.Creators) != 2 || ci.Creators[1].CreatorType != "Tool" || ci.Creators[1].Creator != "scangate-1.2.3" {
		t.Errorf("creation info = %+v", ci)
	}

	if n := len(doc.Packages); n != 2+len(r.Packages) {
		t.Fatalf("%d packages, want the image, the OS and %d", n, len(r.Packages))
	}
	image := doc.Packages[0]
	if image.PackageSPDXIdentifier != "Image" || image.PackageVersion != testDigest || image.PrimaryPackagePurpose != "CONTAINER" {
		t.Errorf("image package = %+v", image)
	}
	if len(image.PackageChecksums) != 1 || image.PackageChecksums[0].Algorithm != common.SHA256 || image.PackageChecksums[0].Value != strings.TrimPrefix(testDigest, "sha256:") {
		t.Errorf("image checksums = %+v", image.PackageChecksums)
	}
	if os := doc.Packages[1]; os.PackageName != "debian" || os.PackageVersion != "12" || os.PrimaryPackagePurpose != "OPERATING-SYSTEM" {
		t.Errorf("OS package = %+v", os)
	}
	for i, p := range doc.Packages[2:] {
		want := r.Packages[i]
		if p.PackageName != want.Name || p.PackageVersion != want.Version {
			t.Errorf("package %d = %s %s, want %s %s", i, p.PackageName, p.PackageVersion, want.Name, want.Version)
		}
		if len(p.PackageExternalReferences) != 1 {
			t.Errorf("%s has %d external refs", p.PackageName, len(p.PackageExternalReferences))
			continue
		}
		ref := p.PackageExternalReferences[0]
		if ref.Category != "PACKAGE-MANAGER" || ref.RefType != "purl" || !strings.HasPrefix(ref.Locator, "pkg:") {
			t.Errorf("%s external ref = %+v", p.PackageName, ref)
		}
		if want.PURL != "" && ref.Locator != want.PURL {
			t.Errorf("%s purl = %q, want %q", p.PackageName, ref.Locator, want.PURL)
		}
		if !strings.HasPrefix(string(p.PackageSPDXIdentifier), "Package-") {
			t.Errorf("%s id = %q", p.PackageName, p.PackageSPDXIdentifier)
		}
	}

	described, err := spdxlib.GetDescribedPackageIDs(doc)
	if err != nil || len(described) != 1 || described[0] != "Image" {
		t.Errorf("described = %v, %v", described, err)
	}
	contains := map[common.ElementID]bool{}
	for _, rel := range doc.Relationships {
		switch rel.Relationship {
		case "DESCRIBES":
		case "CONTAINS":
			if rel.RefA.ElementRefID != "Image" {
				t.Errorf("%s CONTAINS %s", rel.RefA.ElementRefID, rel.RefB.ElementRefID)
			}
			contains[rel.RefB.ElementRefID] = true
		default:
			t.Errorf("unexpected relationship %s", rel.Relationship)
		}
	}
	for _, p := range doc.Packages[1:] {
		if !contains[p.PackageSPDXIdentifier] {
			t.Errorf("the image does not CONTAIN %s", p.PackageSPDXIdentifier)
		}
	}
}

// TestSPDXNamespace checks that the namespace follows the image digest
// and nothing else.
func TestSPDXNamespace(t *testing.T) {
	ns := func(r *scan.Report) string { return readSPDX(t, render(t, r, SPDX, Options{})).DocumentNamespace }
	base := ns(testReport(t))

	later := testReport(t)
	later.CreatedAt = later.CreatedAt.Add(24 * time.Hour)
	later.Findings = nil
	if got := ns(later); got != base {
		t.Errorf("namespace changed with the scan time: %s vs %s", got, base)
	}
	other := testReport(t)
	other.Image.Digest = strings.Replace(other.Image.Digest, "5b7a", "5b7b", 1)
	if got := ns(other); got == base {
		t.Error("namespace did not change with the digest")
	}
	noDigest := testReport(t)
	noDigest.Image.Digest = ""
	if got := ns(noDigest); got == base || !strings.Contains(got, "acme-shop") {
		t.Errorf("namespace without a manifest digest = %s", got)
	}
}

func TestSPDXOddInput(t *testing.T) {
	r := testReport(t)
	r.OS = nil
	r.Image.Repository = ""
	r.Image.Ref = "docker-archive:/tmp/my image.tar"
	r.Packages = append(r.Packages, r.Packages[1], scan.Package{Name: "@scope/ünïcode pkg", Version: "1", Type: "npm", Path: "/x"})
	doc := readSPDX(t, render(t, r, SPDX, Options{}))
	seen := map[common.ElementID]bool{}
	for _, p := range doc.Packages {
		if seen[p.PackageSPDXIdentifier] {
			t.Errorf("SPDX id %s used twice", p.PackageSPDXIdentifier)
		}
		seen[p.PackageSPDXIdentifier] = true
		if !regexp.MustCompile(`^[A-Za-z0-9.-]+$`).MatchString(string(p.PackageSPDXIdentifier)) {
			t.Errorf("invalid SPDX id %q", p.PackageSPDXIdentifier)
		}
	}
}
