package report

import (
	"bufio"
	"fmt"
	"io"
	"slices"
	"strings"
	"text/tabwriter"
	"time"
	"unicode/utf8"

	"github.com/scangate/scangate/internal/scan"
	"github.com/scangate/scangate/internal/vulndb"
)

// titleWidth bounds the TITLE column, in runes.
const titleWidth = 60

// ANSI colours for severities. Every code, and the neutral one the header
// gets, is five bytes: text/tabwriter counts escape bytes as width, so the
// SEVERITY column lines up only if every cell in it carries as many.
const (
	ansiReset   = "\x1b[0m"
	ansiNeutral = "\x1b[39m" // default foreground
)

var severityColor = map[string]string{
	vulndb.Critical: "\x1b[31m", // red
	vulndb.High:     "\x1b[91m", // bright red
	vulndb.Medium:   "\x1b[33m", // yellow
	vulndb.Low:      "\x1b[34m", // blue
	vulndb.Unknown:  "\x1b[90m", // grey
}

// writeTable writes the report the way `trivy image` does: a header, a
// table of findings per target, a summary of counts and of suppressions.
func writeTable(w io.Writer, r *scan.Report, opts Options) error {
	bw := bufio.NewWriter(w)
	fmt.Fprintln(bw, tableHeader(r))

	targets := tableTargets(r)
	if len(targets) == 0 {
		fmt.Fprintln(bw)
		fmt.Fprintln(bw, "No vulnerabilities found.")
	}
	for _, t := range targets {
		fmt.Fprintln(bw)
		fmt.Fprintln(bw, t.title)
		fmt.Fprintln(bw, strings.Repeat("=", utf8.RuneCountInString(t.title)))
		tw := tabwriter.NewWriter(bw, 0, 0, 2, ' ', 0)
		fmt.Fprintln(tw, strings.Join([]string{"PACKAGE", "ID", colorize(opts, "SEVERITY", ansiNeutral), "STATUS", "INSTALLED", "FIXED", "TITLE"}, "\t"))
		for _, i := range t.findings {
			f := &r.Findings[i]
			p := &r.Packages[f.Package]
			sev := scan.Bucket(f.Severity)
			title := f.Title
			if title == "" {
				title = advisoryURL(f)
			}
			fmt.Fprintln(tw, strings.Join([]string{
				cell(p.Name),
				cell(f.ID),
				colorize(opts, sev, severityColor[sev]),
				cell(tableStatus(f)),
				cell(p.Version),
				cell(strings.Join(f.Fixed, ", ")),
				truncate(cell(title), titleWidth),
			}, "\t"))
		}
		if err := tw.Flush(); err != nil {
			return err
		}
	}

	var visible, fixable scan.Counts
	for i := range r.Findings {
		f := &r.Findings[i]
		if f.Suppressed != nil {
			continue
		}
		visible.Add(f.Severity)
		if f.Fixable() {
			fixable.Add(f.Severity)
		}
	}
	fmt.Fprintln(bw)
	fmt.Fprintf(bw, "Total: %d (CRITICAL: %d, HIGH: %d, MEDIUM: %d, LOW: %d, UNKNOWN: %d) — fixable: %d\n",
		visible.Total, visible.Critical, visible.High, visible.Medium, visible.Low, visible.Unknown, fixable.Total)
	if n, kinds := suppressedKinds(r); n > 0 {
		parts := make([]string, len(kinds))
		for i, k := range kinds {
			parts[i] = fmt.Sprintf("%d %s", k.n, k.kind)
		}
		fmt.Fprintf(bw, "%d suppressed: %s\n", n, strings.Join(parts, ", "))
	}
	return bw.Flush()
}

// tableHeader names the image, its OS and the database the scan used.
func tableHeader(r *scan.Report) string {
	osName := "unknown OS"
	if o := r.OS; o != nil && o.ID != "" {
		osName = strings.TrimSpace(o.ID + " " + o.VersionID)
	}
	db := "vulnerability DB unknown"
	switch v := r.VulnDB; {
	case !v.Built.IsZero() && v.Digest != "":
		db = fmt.Sprintf("vulnerability DB built %s (%s)", v.Built.UTC().Format(time.RFC3339), shortDigest(v.Digest))
	case !v.Built.IsZero():
		db = "vulnerability DB built " + v.Built.UTC().Format(time.RFC3339)
	case v.Digest != "":
		db = "vulnerability DB " + shortDigest(v.Digest)
	}
	return fmt.Sprintf("%s (%s) — %s", cell(r.Image.Ref), cell(osName), db)
}

type tableTarget struct {
	key, title string
	findings   []int // indexes into Report.Findings, in display order
}

// tableTargets groups the findings that count by where their package came
// from: the OS's packages together, Go and Rust modules per binary, npm,
// Python and Java packages per ecosystem, anything else per file. The OS
// comes first, then targets by title.
func tableTargets(r *scan.Report) []tableTarget {
	byKey := map[string]*tableTarget{}
	var order []*tableTarget
	for _, i := range sortedFindings(r) {
		f := &r.Findings[i]
		if f.Suppressed != nil {
			continue
		}
		key, title := targetOf(r, &r.Packages[f.Package])
		t := byKey[key]
		if t == nil {
			t = &tableTarget{key: key, title: title}
			byKey[key] = t
			order = append(order, t)
		}
		t.findings = append(t.findings, i)
	}
	slices.SortFunc(order, func(a, b *tableTarget) int { return strings.Compare(a.key, b.key) })
	out := make([]tableTarget, len(order))
	for i, t := range order {
		out[i] = *t
	}
	return out
}

// targetOf returns a sort key and a title for the target p belongs to.
func targetOf(r *scan.Report, p *scan.Package) (key, title string) {
	if isOSPackage(p) {
		name := p.Type + " packages"
		if o := r.OS; o != nil && o.ID != "" {
			name = strings.TrimSpace(o.ID+" "+o.VersionID) + " (" + p.Type + ")"
		}
		return "0\x00" + p.Type, cell(name)
	}
	switch p.Type {
	case "go-module", "go-stdlib":
		title = p.Path + " (go)"
	case "cargo":
		title = p.Path + " (rust)"
	case "npm":
		title = "Node.js (npm)"
	case "python":
		title = "Python (pypi)"
	case "java":
		title = "Java (maven)"
	default:
		title = p.Path + " (" + p.Type + ")"
	}
	title = cell(strings.TrimSpace(title))
	return "1\x00" + title, title
}

// tableStatus words a finding's status the way scanners' tables do: the
// distribution's verdict where there is one, else whether a fix exists.
func tableStatus(f *scan.Finding) string {
	if f.Status != "" {
		return string(f.Status)
	}
	if f.Fixable() {
		return string(vulndb.StatusFixed)
	}
	return "affected"
}

// colorize wraps s in an ANSI colour when colours are on.
func colorize(opts Options, s, code string) string {
	if !opts.Color || code == "" {
		return s
	}
	return code + s + ansiReset
}

// cell makes s safe for one table cell: no tabs, newlines or control
// characters (which could also smuggle escape sequences to a terminal).
func cell(s string) string {
	return strings.Map(func(r rune) rune {
		switch {
		case r == '\t' || r == '\n' || r == '\r':
			return ' '
		case r < 0x20 || r == 0x7f || (r >= 0x80 && r < 0xa0):
			return -1
		}
		return r
	}, s)
}

// truncate shortens s to at most n runes, ending it with "…" when cut.
func truncate(s string, n int) string {
	if utf8.RuneCountInString(s) <= n {
		return s
	}
	runes := []rune(s)
	return strings.TrimRight(string(runes[:n-1]), " ") + "…"
}
