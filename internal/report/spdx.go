package report

import (
	"io"
	"strconv"
	"strings"
	"time"

	spdxjson "github.com/spdx/tools-golang/json"
	"github.com/spdx/tools-golang/spdx/v2/common"
	spdx "github.com/spdx/tools-golang/spdx/v2/v2_3"

	"github.com/scangate/scangate/internal/lazyregexp"
	"github.com/scangate/scangate/internal/scan"
)

// spdxNamespaceBase prefixes document namespaces. SPDX wants a unique URI
// per document, not one that resolves.
const spdxNamespaceBase = "https://github.com/scangate/scangate/spdx/"

const (
	spdxNoAssertion = "NOASSERTION"
	spdxImageID     = "Image"
	spdxOSID        = "OperatingSystem"
)

// writeSPDX writes an SPDX 2.3 JSON document describing the image: a
// package for the image, one for its OS and one per scanned package, the
// document DESCRIBES the image and the image CONTAINS the rest. SPDX has no
// place for vulnerabilities; the CycloneDX format carries them.
func writeSPDX(w io.Writer, r *scan.Report, opts Options) error {
	name := imageName(r)
	digest := imageDigest(r)

	image := &spdx.Package{
		PackageName:             name,
		PackageSPDXIdentifier:   spdxImageID,
		PackageVersion:          digest,
		PackageDownloadLocation: spdxNoAssertion,
		PrimaryPackagePurpose:   "CONTAINER",
		PackageComment:          "scanned as " + r.Image.Ref,
	}
	if purl := imagePURL(r); purl != "" {
		image.PackageExternalReferences = []*spdx.PackageExternalReference{purlRef(purl)}
	}
	if d := r.Image.Digest; strings.HasPrefix(d, "sha256:") {
		image.PackageChecksums = []common.Checksum{{Algorithm: common.SHA256, Value: strings.TrimPrefix(d, "sha256:")}}
	}

	doc := &spdx.Document{
		SPDXVersion:       spdx.Version,
		DataLicense:       spdx.DataLicense,
		SPDXIdentifier:    "DOCUMENT",
		DocumentName:      r.Image.Ref,
		DocumentNamespace: spdxNamespace(r),
		CreationInfo: &spdx.CreationInfo{
			Creators: []common.Creator{
				{CreatorType: "Organization", Creator: toolVendor},
				{CreatorType: "Tool", Creator: toolName + "-" + toolVersion(opts)},
			},
			Created: r.CreatedAt.UTC().Format(time.RFC3339),
		},
		Packages: []*spdx.Package{image},
		Relationships: []*spdx.Relationship{{
			RefA:         common.MakeDocElementID("", "DOCUMENT"),
			RefB:         common.MakeDocElementID("", spdxImageID),
			Relationship: common.TypeRelationshipDescribe,
		}},
	}
	contains := func(id common.ElementID) {
		doc.Relationships = append(doc.Relationships, &spdx.Relationship{
			RefA:         common.MakeDocElementID("", spdxImageID),
			RefB:         common.MakeDocElementID("", string(id)),
			Relationship: common.TypeRelationshipContains,
		})
	}

	if o := r.OS; o != nil && o.ID != "" {
		doc.Packages = append(doc.Packages, &spdx.Package{
			PackageName:             o.ID,
			PackageSPDXIdentifier:   spdxOSID,
			PackageVersion:          o.VersionID,
			PackageDownloadLocation: spdxNoAssertion,
			PrimaryPackagePurpose:   "OPERATING-SYSTEM",
			PackageDescription:      o.PrettyName,
		})
		contains(spdxOSID)
	}

	seen := map[common.ElementID]bool{}
	for i := range r.Packages {
		p := &r.Packages[i]
		id := spdxPackageID(p)
		for n := 2; seen[id]; n++ { // the same package listed twice
			id = common.ElementID(string(spdxPackageID(p)) + "-" + strconv.Itoa(n))
		}
		seen[id] = true
		sp := &spdx.Package{
			PackageName:             p.Name,
			PackageSPDXIdentifier:   id,
			PackageVersion:          p.Version,
			PackageDownloadLocation: spdxNoAssertion,
			PrimaryPackagePurpose:   "LIBRARY",
			PackageSourceInfo:       "acquired package info from " + p.Type + " package data: " + p.Path,
		}
		if purl := packagePURL(r, p); purl != "" {
			sp.PackageExternalReferences = []*spdx.PackageExternalReference{purlRef(purl)}
		}
		if p.Layer != "" {
			sp.PackageComment = "layer " + p.Layer
		}
		doc.Packages = append(doc.Packages, sp)
		contains(id)
	}

	return spdxjson.Write(doc, w, spdxjson.Indent("  "), spdxjson.EscapeHTML(false))
}

// spdxNamespace derives the document namespace from the image digest, so
// the same image always gets the same namespace.
func spdxNamespace(r *scan.Report) string {
	name := spdxIDChars.ReplaceAllString(imageName(r), "-")
	name = strings.Trim(name, "-.")
	if name == "" {
		name = "image"
	}
	key := imageDigest(r)
	if key == "" {
		key = r.Image.Ref
	}
	return spdxNamespaceBase + name + "-" + nameUUID("scangate:spdx:"+key)
}

// spdxIDChars matches what SPDX identifiers may not contain.
var spdxIDChars = lazyregexp.New(`[^A-Za-z0-9.-]+`)

// spdxPackageID returns "Package-<name>-<hash>": readable, valid as an
// SPDX identifier and independent of the package's place in the list.
func spdxPackageID(p *scan.Package) common.ElementID {
	name := strings.Trim(spdxIDChars.ReplaceAllString(p.Name, "-"), "-")
	if len(name) > 64 {
		name = name[:64]
	}
	return common.ElementID("Package-" + name + "-" + stableID(p))
}

func purlRef(purl string) *spdx.PackageExternalReference {
	return &spdx.PackageExternalReference{Category: common.CategoryPackageManager, RefType: common.TypePackageManagerPURL, Locator: purl}
}
