package report

import (
	"fmt"
	"io"
	"strings"
	"time"

	cdx "github.com/CycloneDX/cyclonedx-go"
	"github.com/package-url/packageurl-go"

	"github.com/scangate/scangate/internal/scan"
	"github.com/scangate/scangate/internal/vulndb"
)

// cycloneDXSchema is the $schema of CycloneDX 1.6 JSON documents.
const cycloneDXSchema = "http://cyclonedx.org/schema/bom-1.6.schema.json"

// propPrefix namespaces scangate's properties, as the CycloneDX property
// taxonomy asks of tools.
const propPrefix = "scangate:"

// writeCycloneDX writes a CycloneDX 1.6 BOM: the image as the described
// component, a component per package (and one for the OS), the
// dependency graph image → OS → OS packages, and the findings as
// vulnerabilities, suppressed ones with an impact analysis.
func writeCycloneDX(w io.Writer, r *scan.Report, opts Options) error {
	refs := componentRefs(r)
	bom := &cdx.BOM{
		JSONSchema:   cycloneDXSchema,
		BOMFormat:    cdx.BOMFormat,
		SpecVersion:  cdx.SpecVersion1_6,
		SerialNumber: "urn:uuid:" + nameUUID(fmt.Sprintf("scangate:cyclonedx:%s:%s:%s", imageDigest(r), r.CreatedAt.UTC().Format(time.RFC3339Nano), r.VulnDB.Digest)),
		Version:      1,
	}

	image := imageComponent(r)
	bom.Metadata = &cdx.Metadata{
		Timestamp: r.CreatedAt.UTC().Format(time.RFC3339),
		Tools: &cdx.ToolsChoice{Components: &[]cdx.Component{{
			Type:      cdx.ComponentTypeApplication,
			Publisher: toolVendor,
			Name:      toolName,
			Version:   toolVersion(opts),
			ExternalReferences: &[]cdx.ExternalReference{{
				Type: cdx.ERTypeWebsite,
				URL:  toolInfoURI,
			}},
		}}},
		Component: &image,
	}

	components := []cdx.Component{}
	var imageDeps, osDeps []string
	osRef := ""
	if o := r.OS; o != nil && o.ID != "" {
		osRef = "scangate:os:" + o.ID + "@" + o.VersionID
		c := cdx.Component{
			BOMRef:      osRef,
			Type:        cdx.ComponentTypeOS,
			Name:        o.ID,
			Version:     o.VersionID,
			Description: o.PrettyName,
		}
		if o.Ecosystem != "" {
			c.Properties = &[]cdx.Property{{Name: propPrefix + "os:ecosystem", Value: o.Ecosystem}}
		}
		components = append(components, c)
		imageDeps = append(imageDeps, osRef)
	}
	for i := range r.Packages {
		p := &r.Packages[i]
		components = append(components, packageComponent(r, p, refs[i]))
		if osRef != "" && isOSPackage(p) {
			osDeps = append(osDeps, refs[i])
		} else {
			imageDeps = append(imageDeps, refs[i])
		}
	}
	bom.Components = &components

	deps := []cdx.Dependency{{Ref: image.BOMRef, Dependencies: &imageDeps}}
	if osRef != "" {
		deps = append(deps, cdx.Dependency{Ref: osRef, Dependencies: &osDeps})
	}
	bom.Dependencies = &deps

	if vulns := cdxVulnerabilities(r, refs); len(vulns) > 0 {
		bom.Vulnerabilities = &vulns
	}

	enc := cdx.NewBOMEncoder(w, cdx.BOMFileFormatJSON)
	enc.SetPretty(true)
	enc.SetEscapeHTML(false)
	return enc.Encode(bom)
}

// imageComponent describes the scanned image: a container whose version is
// its digest, identified by an OCI package URL where it has a name.
func imageComponent(r *scan.Report) cdx.Component {
	c := cdx.Component{
		Type:    cdx.ComponentTypeContainer,
		Name:    imageName(r),
		Version: imageDigest(r),
	}
	if purl := imagePURL(r); purl != "" {
		c.BOMRef, c.PackageURL = purl, purl
	} else {
		c.BOMRef = "scangate:image:" + nameUUID(r.Image.Ref+"@"+imageDigest(r))
	}
	props := []cdx.Property{{Name: propPrefix + "image:ref", Value: r.Image.Ref}}
	if r.Image.ConfigDigest != "" {
		props = append(props, cdx.Property{Name: propPrefix + "image:configDigest", Value: r.Image.ConfigDigest})
	}
	if r.Image.Platform != "" {
		props = append(props, cdx.Property{Name: propPrefix + "image:platform", Value: r.Image.Platform})
	}
	for _, t := range r.Image.Tags {
		props = append(props, cdx.Property{Name: propPrefix + "image:tag", Value: t})
	}
	for _, l := range r.Image.Layers {
		props = append(props, cdx.Property{Name: propPrefix + "image:layer", Value: l})
	}
	c.Properties = &props
	return c
}

// imagePURL returns pkg:oci/<name>@<digest>?repository_url=…, the form
// Trivy and Syft write, or "" when the image has no name or digest.
func imagePURL(r *scan.Report) string {
	digest := imageDigest(r)
	repo := r.Image.Repository
	if digest == "" || repo == "" {
		return ""
	}
	name := strings.ToLower(repo[strings.LastIndex(repo, "/")+1:])
	if name == "" {
		return ""
	}
	q := map[string]string{"repository_url": strings.ToLower(repo)}
	if _, arch, ok := strings.Cut(r.Image.Platform, "/"); ok && arch != "" {
		q["arch"] = arch
	}
	return packageurl.NewPackageURL("oci", "", name, digest, packageurl.QualifiersFromMap(q), "").ToString()
}

// componentRefs returns a unique bom-ref per package: its purl, or a
// stable ID for packages without one or whose purl an earlier package has.
func componentRefs(r *scan.Report) []string {
	refs := make([]string, len(r.Packages))
	seen := map[string]bool{}
	for i := range r.Packages {
		p := &r.Packages[i]
		ref := packagePURL(r, p)
		if ref == "" {
			ref = "scangate:package:" + stableID(p)
		}
		base := ref
		if seen[ref] {
			ref = base + "#" + stableID(p)
		}
		for n := 2; seen[ref]; n++ { // identical packages listed twice
			ref = fmt.Sprintf("%s#%s-%d", base, stableID(p), n)
		}
		seen[ref] = true
		refs[i] = ref
	}
	return refs
}

// packagePURL returns the package's purl, or one built from its type for
// packages the scanner gave none.
func packagePURL(r *scan.Report, p *scan.Package) string {
	if p.PURL != "" {
		return p.PURL
	}
	ns, name, version, typ := "", p.Name, p.Version, ""
	q := map[string]string{}
	switch p.Type {
	case "deb", "apk", "rpm":
		typ = p.Type
		if r.OS != nil && r.OS.ID != "" {
			ns = r.OS.ID
			q["distro"] = strings.TrimSuffix(r.OS.ID+"-"+r.OS.VersionID, "-")
		}
	case "go-module", "go-stdlib":
		typ = "golang"
		if i := strings.LastIndex(name, "/"); i >= 0 {
			ns, name = name[:i], name[i+1:]
		}
		if version != "" && !strings.HasPrefix(version, "v") {
			version = "v" + version
		}
	case "npm":
		typ = "npm"
		if strings.HasPrefix(name, "@") {
			if i := strings.Index(name, "/"); i >= 0 {
				ns, name = name[:i], name[i+1:]
			}
		}
	case "python":
		typ, name = "pypi", strings.ToLower(name)
	case "java":
		typ = "maven"
		if g, a, ok := strings.Cut(name, ":"); ok {
			ns, name = g, a
		}
	case "cargo":
		typ = "cargo"
	default:
		return ""
	}
	return packageurl.NewPackageURL(typ, ns, name, version, packageurl.QualifiersFromMap(q), "").ToString()
}

// packageComponent describes one package.
func packageComponent(r *scan.Report, p *scan.Package, ref string) cdx.Component {
	c := cdx.Component{
		BOMRef:     ref,
		Type:       cdx.ComponentTypeLibrary,
		Name:       p.Name,
		Version:    p.Version,
		PackageURL: packagePURL(r, p),
	}
	props := []cdx.Property{{Name: propPrefix + "package:type", Value: p.Type}}
	add := func(name, value string) {
		if value != "" {
			props = append(props, cdx.Property{Name: propPrefix + "package:" + name, Value: value})
		}
	}
	add("ecosystem", p.Ecosystem)
	add("path", p.Path)
	add("layer", p.Layer)
	add("sourceName", p.SourceName)
	add("sourceVersion", p.SourceVersion)
	c.Properties = &props
	return c
}

// cdxVulnerabilities turns findings into vulnerabilities. Findings of one
// advisory ID that are alike in suppression become one vulnerability that
// affects each of their packages; a suppressed finding gets an analysis,
// which is per vulnerability, so it never shares one with a finding that
// counts. Vulnerabilities come most severe first.
func cdxVulnerabilities(r *scan.Report, refs []string) []cdx.Vulnerability {
	type group struct {
		findings []*scan.Finding
	}
	var keys []string
	groups := map[string]*group{}
	for _, i := range sortedFindings(r) {
		f := &r.Findings[i]
		key := f.ID
		if s := f.Suppressed; s != nil {
			key += "\x00" + s.Kind + "\x00" + s.Reason
		}
		g := groups[key]
		if g == nil {
			g = &group{}
			groups[key] = g
			keys = append(keys, key)
		}
		g.findings = append(g.findings, f)
	}

	out := make([]cdx.Vulnerability, 0, len(keys))
	for _, key := range keys {
		fs := groups[key].findings
		f := fs[0]
		v := cdx.Vulnerability{
			ID:          f.ID,
			Source:      vulnSource(f.Feed, f.ID, f.URL),
			Description: f.Title,
		}
		if len(f.Aliases) > 0 {
			vrefs := make([]cdx.VulnerabilityReference, 0, len(f.Aliases))
			for _, a := range f.Aliases {
				vrefs = append(vrefs, cdx.VulnerabilityReference{ID: a, Source: idSource(a)})
			}
			v.References = &vrefs
		}
		ratings := cdxRatings(fs)
		v.Ratings = &ratings
		if u := advisoryURL(f); u != "" {
			v.Advisories = &[]cdx.Advisory{{Title: f.ID, URL: u}}
		}

		var affects []cdx.Affects
		var recs []string
		seen := map[string]bool{}
		for _, g := range fs {
			ref := refs[g.Package]
			if seen[ref] {
				continue
			}
			seen[ref] = true
			p := &r.Packages[g.Package]
			status := cdx.VulnerabilityStatusAffected
			if g.Suppressed != nil && g.Suppressed.Kind == "vex" {
				status = cdx.VulnerabilityStatusNotAffected
			}
			affects = append(affects, cdx.Affects{Ref: ref, Range: &[]cdx.AffectedVersions{{Version: p.Version, Status: status}}})
			if g.Fixable() && g.Suppressed == nil {
				recs = append(recs, fmt.Sprintf("Upgrade %s to %s", p.Name, strings.Join(g.Fixed, " or ")))
			}
		}
		v.Affects = &affects
		v.Recommendation = strings.Join(recs, "; ")
		if f.Suppressed != nil {
			v.Analysis = cdxAnalysis(f.Suppressed)
		}
		props := []cdx.Property{{Name: propPrefix + "feed", Value: f.Feed}}
		if f.Status != "" {
			props = append(props, cdx.Property{Name: propPrefix + "status", Value: string(f.Status)})
		}
		if f.SeveritySource != "" {
			props = append(props, cdx.Property{Name: propPrefix + "severitySource", Value: f.SeveritySource})
		}
		props = append(props, cdx.Property{Name: propPrefix + "severity", Value: scan.Bucket(f.Severity)})
		v.Properties = &props
		out = append(out, v)
	}
	return out
}

// cdxRatings lists every rating known for the findings, once each; a
// finding without any gets one from its own rating.
func cdxRatings(fs []*scan.Finding) []cdx.VulnerabilityRating {
	var out []cdx.VulnerabilityRating
	seen := map[string]bool{}
	for _, f := range fs {
		for _, s := range f.Severities {
			key := strings.Join([]string{s.Source, string(s.Type), s.Vector, s.Rating}, "\x00")
			if seen[key] {
				continue
			}
			seen[key] = true
			rt := cdx.VulnerabilityRating{
				Source:   ratingSource(s.Source, f.ID),
				Severity: cdxSeverity(s.Rating),
				Method:   cdxMethod(s.Type),
				Vector:   s.Vector,
			}
			if isCVSS(s.Type) {
				score := s.Score
				rt.Score = &score
			}
			out = append(out, rt)
		}
	}
	if len(out) == 0 {
		f := fs[0]
		src := f.SeveritySource
		if src == "" {
			src = f.Feed
		}
		rt := cdx.VulnerabilityRating{Source: &cdx.Source{Name: src}, Severity: cdxSeverity(f.Severity), Method: cdx.ScoringMethodOther, Vector: f.Vector}
		if f.Score > 0 {
			score := f.Score
			rt.Score = &score
		}
		out = append(out, rt)
	}
	return out
}

// cdxAnalysis words a suppression as CycloneDX impact analysis: a VEX
// statement says the component is not affected (or the flaw is fixed in
// it), an ignore-file entry
// marks the match a false positive for this image, and ignore-unfixed
// accepts a real but unfixable flaw.
func cdxAnalysis(s *scan.Suppression) *cdx.VulnerabilityAnalysis {
	a := &cdx.VulnerabilityAnalysis{Detail: "suppressed by " + s.Kind}
	if s.Reason != "" {
		a.Detail += ": " + s.Reason
	}
	if !s.Expires.IsZero() {
		a.Detail += " (until " + s.Expires.UTC().Format(time.RFC3339) + ")"
	}
	switch s.Kind {
	case "vex":
		a.State, a.Justification = vexAnalysis(s.Reason)
	case "ignore-file":
		a.State = cdx.IASFalsePositive
	case "ignore-unfixed":
		a.State = cdx.IASExploitable
		a.Response = &[]cdx.ImpactAnalysisResponse{cdx.IARCanNotFix}
	default:
		a.State = cdx.IASInTriage
	}
	return a
}

// vexAnalysis reads the status and justification out of a VEX
// suppression's reason ("not_affected: vulnerable_code_not_in_execute_path;
// impact… (VEX by …)") and maps them to CycloneDX's words, as CISA's VEX
// mapping between OpenVEX and CycloneDX does.
func vexAnalysis(reason string) (cdx.ImpactAnalysisState, cdx.ImpactAnalysisJustification) {
	status, rest, _ := strings.Cut(reason, ":")
	status = strings.TrimSpace(status)
	if i := strings.IndexAny(status, " ;("); i >= 0 {
		status = status[:i]
	}
	if status == "fixed" {
		return cdx.IASResolved, ""
	}
	just := strings.TrimSpace(rest)
	if i := strings.IndexAny(just, " ;("); i >= 0 {
		just = just[:i]
	}
	switch just {
	case "component_not_present", "vulnerable_code_not_present":
		return cdx.IASNotAffected, cdx.IAJCodeNotPresent
	case "vulnerable_code_not_in_execute_path":
		return cdx.IASNotAffected, cdx.IAJCodeNotReachable
	case "vulnerable_code_cannot_be_controlled_by_adversary":
		return cdx.IASNotAffected, cdx.IAJRequiresEnvironment
	case "inline_mitigations_already_exist":
		return cdx.IASNotAffected, cdx.IAJProtectedByMitigatingControl
	}
	return cdx.IASNotAffected, ""
}

// vulnSource names the database a finding's advisory came from.
func vulnSource(feed, id, url string) *cdx.Source {
	name, base, _ := strings.Cut(feed, ":")
	var src cdx.Source
	switch name {
	case "nvd":
		src = cdx.Source{Name: "NVD", URL: "https://nvd.nist.gov/vuln/detail/" + id}
	case "debian":
		src = cdx.Source{Name: "Debian Security Tracker", URL: "https://security-tracker.debian.org/tracker/" + id}
	case "alpine":
		src = cdx.Source{Name: "Alpine SecDB", URL: "https://security.alpinelinux.org/vuln/" + id}
	case "wolfi", "chainguard":
		src = cdx.Source{Name: "Wolfi Security", URL: "https://images.chainguard.dev/security/" + id}
	case "ghsa":
		src = cdx.Source{Name: "GitHub Advisory Database", URL: "https://github.com/advisories/" + id}
	case "osv":
		src = cdx.Source{Name: "OSV", URL: "https://osv.dev/vulnerability/" + id}
		if base == "Go" && strings.HasPrefix(id, "GO-") {
			src = cdx.Source{Name: "Go Vulnerability Database", URL: "https://pkg.go.dev/vuln/" + id}
		}
	default:
		src = cdx.Source{Name: feed}
	}
	if url != "" {
		src.URL = url
	}
	if src.Name == "" {
		src.Name = "unknown"
	}
	return &src
}

// idSource names the database that issues an ID.
func idSource(id string) *cdx.Source {
	switch {
	case strings.HasPrefix(id, "CVE-"):
		return &cdx.Source{Name: "NVD", URL: scan.AdvisoryURL(id)}
	case strings.HasPrefix(id, "GHSA-"):
		return &cdx.Source{Name: "GitHub Advisory Database", URL: scan.AdvisoryURL(id)}
	case strings.HasPrefix(id, "GO-"):
		return &cdx.Source{Name: "Go Vulnerability Database", URL: scan.AdvisoryURL(id)}
	case strings.HasPrefix(id, "ELSA-"):
		return &cdx.Source{Name: "Oracle Linux Errata", URL: scan.AdvisoryURL(id)}
	case strings.HasPrefix(id, "ALAS"):
		return &cdx.Source{Name: "Amazon Linux Security Center", URL: scan.AdvisoryURL(id)}
	case strings.HasPrefix(id, "BRSA-"):
		return &cdx.Source{Name: "Bottlerocket Security Advisories", URL: scan.AdvisoryURL(id)}
	}
	return &cdx.Source{Name: "OSV", URL: scan.AdvisoryURL(id)}
}

// ratingSource names who gave a rating: NVD, GitHub and Debian by name,
// CNAs by the address NVD gives for them.
func ratingSource(source, id string) *cdx.Source {
	switch source {
	case "nvd@nist.gov":
		return &cdx.Source{Name: "NVD", URL: "https://nvd.nist.gov/vuln/detail/" + id}
	case "ghsa":
		return &cdx.Source{Name: "GitHub Advisory Database"}
	case "debian":
		return &cdx.Source{Name: "Debian Security Tracker"}
	case "":
		return &cdx.Source{Name: "unknown"}
	}
	return &cdx.Source{Name: source}
}

// cdxSeverity maps a rating to CycloneDX's lower-case severities.
func cdxSeverity(rating string) cdx.Severity {
	switch strings.ToUpper(rating) {
	case vulndb.Critical:
		return cdx.SeverityCritical
	case vulndb.High:
		return cdx.SeverityHigh
	case vulndb.Medium:
		return cdx.SeverityMedium
	case vulndb.Low:
		return cdx.SeverityLow
	case vulndb.None:
		return cdx.SeverityNone
	}
	return cdx.SeverityUnknown
}

// cdxMethod maps a rating's type to a CycloneDX scoring method.
func cdxMethod(t vulndb.SeverityType) cdx.ScoringMethod {
	switch t {
	case vulndb.CVSSv2:
		return cdx.ScoringMethodCVSSv2
	case vulndb.CVSSv30:
		return cdx.ScoringMethodCVSSv3
	case vulndb.CVSSv31:
		return cdx.ScoringMethodCVSSv31
	case vulndb.CVSSv40:
		return cdx.ScoringMethodCVSSv4
	}
	return cdx.ScoringMethodOther
}
