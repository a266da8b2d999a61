package console

import (
	"cmp"
	"context"
	"encoding/csv"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/scangate/scangate/internal/deploy"
	"github.com/scangate/scangate/internal/report"
	"github.com/scangate/scangate/internal/scan"
	"github.com/scangate/scangate/internal/scanner"
	"github.com/scangate/scangate/internal/vulndb"
)

func (c *Console) repositoriesPage(w http.ResponseWriter, r *http.Request, s *session) {
	rows, err := c.Results.Repositories(r.Context())
	if err != nil {
		c.fail(w, r, s, statusOf(err), err)
		return
	}
	c.render(w, r, s, http.StatusOK, "repositories", &view{Title: "Repositories", Nav: "repositories", Data: rows})
}

type imageRow struct {
	deploy.ImageUse
	// Change is the difference of its counts against the image pushed
	// before it to the same repository: "CRITICAL −1, HIGH +2".
	Change string
}

func change(now, before scan.Counts) string {
	var parts []string
	for _, x := range []struct {
		name string
		a, b int
	}{{"CRITICAL", now.Critical, before.Critical}, {"HIGH", now.High, before.High}, {"MEDIUM", now.Medium, before.Medium},
		{"LOW", now.Low, before.Low}, {"UNKNOWN", now.Unknown, before.Unknown}} {
		if d := x.a - x.b; d != 0 {
			sign := "+"
			if d < 0 {
				sign, d = "−", -d
			}
			parts = append(parts, fmt.Sprintf("%s %s%d", x.name, sign, d))
		}
	}
	if len(parts) == 0 {
		return "no change"
	}
	return strings.Join(parts, ", ")
}

type imagesData struct {
	Repository string
	Images     []imageRow
}

func (c *Console) imagesPage(w http.ResponseWriter, r *http.Request, s *session) {
	repo := r.URL.Query().Get("repository")
	if repo == "" {
		http.Redirect(w, r, "/repositories", http.StatusSeeOther)
		return
	}
	imgs, err := c.Results.ListImages(r.Context(), repo)
	if err != nil {
		c.fail(w, r, s, statusOf(err), err)
		return
	}
	used, err := c.Deploy.WithUse(r.Context(), imgs)
	if err != nil {
		c.fail(w, r, s, statusOf(err), err)
		return
	}
	data := imagesData{Repository: repo}
	for i, im := range used {
		row := imageRow{ImageUse: im}
		// Newest first: the previous push is the next one.
		if i+1 < len(used) && im.ScanStatus == "COMPLETE" && used[i+1].ScanStatus == "COMPLETE" {
			row.Change = change(im.Summary, used[i+1].Summary)
		}
		data.Images = append(data.Images, row)
	}
	c.render(w, r, s, http.StatusOK, "images", &view{Title: "Images of " + repo, Nav: "repositories", Data: data})
}

// findingRow is a finding as the findings table shows it.
type findingRow struct {
	scan.Finding
	Pkg        scan.Package
	LayerIndex int // 1-based; 0 when unknown
	// Instruction is the Dockerfile instruction that made the layer, from
	// the image's history.
	Instruction string
	// Counted is the index in Severities of the rating that counts, or -1.
	Counted int
}

// FixedText is the fixed versions, or "no fix".
func (f findingRow) FixedText() string {
	if len(f.Fixed) == 0 {
		return ""
	}
	return strings.Join(f.Fixed, ", ")
}

// findingFilter is the findings page's query.
type findingFilter struct {
	Severity, Fixable, Type, Layer, Text, Sort string
	Page                                       int
}

// pageSize is the findings a page shows; 100,000 findings take pages.
const pageSize = 200

type findingsData struct {
	Image   string
	Report  *scan.Report
	Filter  findingFilter
	Rows    []findingRow
	Matched int
	Pages   int
	// PrevURL and NextURL page through the matched findings.
	PrevURL, NextURL string
	Types            []string
	Layers           []string
	Severities       []string
	Use              *deploy.Use
	Formats          []string
}

func parseFilter(q url.Values) (findingFilter, error) {
	f := findingFilter{Severity: q.Get("severity"), Fixable: q.Get("fixable"), Type: q.Get("type"), Layer: q.Get("layer"),
		Text: strings.TrimSpace(q.Get("q")), Sort: q.Get("sort"), Page: 1}
	if f.Severity != "" && sevRank(f.Severity) == len(severities) {
		return f, badInput("severity %q: want CRITICAL, HIGH, MEDIUM, LOW or UNKNOWN", f.Severity)
	}
	if f.Fixable != "" && f.Fixable != "yes" && f.Fixable != "no" {
		return f, badInput("fixable %q: want yes or no", f.Fixable)
	}
	switch f.Sort {
	case "", "severity", "package", "id", "layer":
	default:
		return f, badInput("sort %q: want severity, package, id or layer", f.Sort)
	}
	if len(f.Text) > 200 {
		return f, badInput("the search text is over 200 characters")
	}
	if p := q.Get("page"); p != "" {
		n, err := strconv.Atoi(p)
		if err != nil || n < 1 || n > 100000 {
			return f, badInput("page %q: want a page number", p)
		}
		f.Page = n
	}
	return f, nil
}

// rows filters and sorts a report's findings.
func rows(rep *scan.Report, f findingFilter) []findingRow {
	layerIdx := map[string]int{}
	for i, l := range rep.Image.Layers {
		layerIdx[l] = i + 1
	}
	text := strings.ToLower(f.Text)
	var out []findingRow
	for _, fd := range rep.Findings {
		if fd.Package < 0 || fd.Package >= len(rep.Packages) {
			continue
		}
		p := rep.Packages[fd.Package]
		switch {
		case f.Severity != "" && fd.Severity != f.Severity,
			f.Fixable == "yes" && !fd.Fixable(), f.Fixable == "no" && fd.Fixable(),
			f.Type != "" && p.Type != f.Type,
			f.Layer != "" && strconv.Itoa(layerIdx[p.Layer]) != f.Layer:
			continue
		}
		if text != "" && !strings.Contains(strings.ToLower(fd.ID+" "+strings.Join(fd.Aliases, " ")+" "+p.Name+" "+p.Version+" "+fd.Title+" "+p.Path), text) {
			continue
		}
		row := findingRow{Finding: fd, Pkg: p, LayerIndex: layerIdx[p.Layer], Counted: -1}
		for i, sv := range fd.Severities {
			if sv.Source == fd.SeveritySource && sv.Rating == fd.Severity && row.Counted < 0 {
				row.Counted = i
			}
		}
		out = append(out, row)
	}
	bySev := func(a, b findingRow) int {
		return cmp.Or(cmp.Compare(sevRank(a.Severity), sevRank(b.Severity)), cmp.Compare(b.Score, a.Score), cmp.Compare(a.Pkg.Name, b.Pkg.Name), cmp.Compare(a.ID, b.ID))
	}
	switch f.Sort {
	case "package":
		slices.SortStableFunc(out, func(a, b findingRow) int { return cmp.Or(cmp.Compare(a.Pkg.Name, b.Pkg.Name), bySev(a, b)) })
	case "id":
		slices.SortStableFunc(out, func(a, b findingRow) int { return cmp.Or(cmp.Compare(a.ID, b.ID), bySev(a, b)) })
	case "layer":
		slices.SortStableFunc(out, func(a, b findingRow) int { return cmp.Or(cmp.Compare(a.LayerIndex, b.LayerIndex), bySev(a, b)) })
	default:
		slices.SortStableFunc(out, bySev)
	}
	return out
}

func (c *Console) findingsPage(w http.ResponseWriter, r *http.Request, s *session) {
	ctx := r.Context()
	q := r.URL.Query()
	name := q.Get("image")
	if name == "" {
		c.fail(w, r, s, http.StatusBadRequest, badInput("give the image: ?image=REPOSITORY@DIGEST"))
		return
	}
	f, err := parseFilter(q)
	if err != nil {
		c.fail(w, r, s, http.StatusBadRequest, err)
		return
	}
	rep, err := c.Results.Findings(ctx, name)
	if err != nil {
		c.fail(w, r, s, findingsStatus(err), err)
		return
	}
	data := findingsData{Image: name, Report: rep, Filter: f, Severities: severities,
		Formats: []string{string(report.JSON), string(report.SARIF), string(report.CycloneDX), string(report.SPDX), "csv"}}
	all := rows(rep, f)
	data.Matched = len(all)
	data.Pages = max(1, (len(all)+pageSize-1)/pageSize)
	if f.Page > data.Pages {
		f.Page = data.Pages
	}
	lo := (f.Page - 1) * pageSize
	data.Rows = all[lo:min(lo+pageSize, len(all))]
	pageURL := func(p int) string {
		v := url.Values{}
		for k, vs := range q {
			v[k] = vs
		}
		v.Set("page", strconv.Itoa(p))
		return "/findings?" + v.Encode()
	}
	if f.Page > 1 {
		data.PrevURL = pageURL(f.Page - 1)
	}
	if f.Page < data.Pages {
		data.NextURL = pageURL(f.Page + 1)
	}
	types := map[string]bool{}
	for _, p := range rep.Packages {
		types[p.Type] = true
	}
	for t := range types {
		data.Types = append(data.Types, t)
	}
	slices.Sort(data.Types)
	for i := range rep.Image.Layers {
		data.Layers = append(data.Layers, strconv.Itoa(i+1))
	}
	if inUse, err := c.Deploy.InUse(ctx); err == nil {
		data.Use = inUse[rep.Image.Digest]
	}
	if steps := c.layerSteps(ctx, rep.Image.Repository, rep.Image.Digest); len(steps) > 0 {
		for i := range data.Rows {
			if n := data.Rows[i].LayerIndex; n > 0 && n <= len(steps) {
				data.Rows[i].Instruction = steps[n-1]
			}
		}
	}
	c.render(w, r, s, http.StatusOK, "findings", &view{Title: "Findings of " + name, Nav: "repositories", Data: data})
}

func findingsStatus(err error) int {
	if errors.Is(err, scanner.ErrNoImage) || errors.Is(err, scanner.ErrNotScanned) {
		return http.StatusNotFound
	}
	return statusOf(err)
}

// download writes the image's report in a format of package report, or as
// CSV.
func (c *Console) download(w http.ResponseWriter, r *http.Request, s *session) {
	q := r.URL.Query()
	name := q.Get("image")
	format := q.Get("format")
	rep, err := c.Results.Findings(r.Context(), name)
	if err != nil {
		c.fail(w, r, s, findingsStatus(err), err)
		return
	}
	// The file's name comes from the stored report, not from the query.
	base := strings.ReplaceAll(rep.Image.Repository, "/", "_") + "_" + short(rep.Image.Digest)
	if format == "csv" {
		w.Header().Set("Content-Type", "text/csv; charset=utf-8")
		w.Header().Set("Content-Disposition", `attachment; filename="`+base+`.csv"`)
		_ = writeCSV(w, rep)
		return
	}
	f, err := report.ParseFormat(format)
	if err != nil || f == report.Table {
		c.fail(w, r, s, http.StatusBadRequest, badInput("format %q: want json, sarif, cyclonedx, spdx or csv", format))
		return
	}
	ext := map[report.Format]string{report.JSON: ".json", report.SARIF: ".sarif", report.CycloneDX: ".cdx.json", report.SPDX: ".spdx.json"}[f]
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Content-Disposition", `attachment; filename="`+base+ext+`"`)
	if err := report.Write(w, rep, f, report.Options{ToolVersion: c.Version}); err != nil {
		c.Logger.Error("console: download", "image", name, "format", f, "err", err)
	}
}

// writeCSV writes one line per finding, with the image's tags, for
// spreadsheets.
func writeCSV(w io.Writer, rep *scan.Report) error {
	cw := csv.NewWriter(w)
	_ = cw.Write([]string{"image", "tags", "id", "aliases", "severity", "severity_source", "score", "package", "type", "installed", "fixed", "status", "layer", "path", "suppressed", "title", "url"})
	for _, f := range rows(rep, findingFilter{}) {
		sup := ""
		if f.Suppressed != nil {
			sup = f.Suppressed.Kind + ": " + f.Suppressed.Reason
		}
		score := ""
		if f.Score > 0 {
			score = strconv.FormatFloat(f.Score, 'f', 1, 64)
		}
		_ = cw.Write(csvSafe([]string{rep.Image.Repository + "@" + rep.Image.Digest, strings.Join(rep.Image.Tags, " "), f.ID, strings.Join(f.Aliases, " "),
			f.Severity, f.SeveritySource, score, f.Pkg.Name, f.Pkg.Type, f.Pkg.Version, strings.Join(f.Fixed, " "), string(f.Status),
			f.Pkg.Layer, f.Pkg.Path, sup, f.Title, f.URL}))
	}
	cw.Flush()
	return cw.Error()
}

// csvSafe keeps a spreadsheet from running a cell as a formula: text from
// advisories is outside data.
func csvSafe(rec []string) []string {
	for i, v := range rec {
		if v != "" && strings.ContainsRune("=+-@\t\r", rune(v[0])) {
			rec[i] = "'" + v
		}
	}
	return rec
}

type vulnData struct {
	ID       string
	Affected []affectedRow
	Title    string
	URL      string
	Ratings  []vulndb.Severity
	// MoreURL lists the next images, when there may be more.
	MoreURL string
}

type affectedRow struct {
	scanner.Affected
	Use *deploy.Use
}

// vulnPage is how many images an advisory's page lists at once.
const vulnPage = 50

func (c *Console) vulnerabilityPage(w http.ResponseWriter, r *http.Request, s *session) {
	id := r.PathValue("id")
	offset := 0
	if o := r.URL.Query().Get("offset"); o != "" {
		n, err := strconv.Atoi(o)
		if err != nil || n < 0 || n > 1_000_000 {
			c.fail(w, r, s, http.StatusBadRequest, badInput("offset %q: want a number", o))
			return
		}
		offset = n
	}
	aff, err := c.Results.AffectedBy(r.Context(), id, offset, vulnPage)
	if err != nil {
		c.fail(w, r, s, http.StatusBadRequest, err)
		return
	}
	inUse, err := c.Deploy.InUse(r.Context())
	if err != nil {
		c.fail(w, r, s, statusOf(err), err)
		return
	}
	data := vulnData{ID: id}
	for _, a := range aff {
		data.Affected = append(data.Affected, affectedRow{Affected: a, Use: inUse[a.Digest]})
		if data.Title == "" && len(a.Findings) > 0 {
			data.Title, data.URL, data.Ratings = a.Findings[0].Title, a.Findings[0].URL, a.Findings[0].Severities
		}
	}
	if len(aff) == vulnPage {
		data.MoreURL = fmt.Sprintf("/vulnerabilities/%s?offset=%d", url.PathEscape(id), offset+vulnPage)
	}
	c.render(w, r, s, http.StatusOK, "vulnerability", &view{Title: id, Nav: "repositories", Data: data})
}

// historyCache keeps each image's layer instructions: an image never
// changes under its digest.
type historyCache struct {
	mu sync.Mutex
	m  map[string][]string
}

// layerSteps returns, for each layer of the image (bottom first), the
// build instruction that made it, as its configuration's history records
// it; nil when unknown.
func (c *Console) layerSteps(ctx context.Context, repository, digest string) []string {
	if c.Images == nil || repository == "" || digest == "" {
		return nil
	}
	c.history.mu.Lock()
	steps, ok := c.history.m[digest]
	c.history.mu.Unlock()
	if ok {
		return steps
	}
	img, err := c.Images.Image(ctx, repository, digest)
	if err != nil {
		return nil
	}
	cfg, err := img.ConfigFile()
	if err != nil {
		return nil
	}
	steps = historySteps(cfg.History)
	if len(steps) != len(cfg.RootFS.DiffIDs) {
		steps = nil // a history that does not cover every layer cannot be matched to them
	}
	c.history.mu.Lock()
	if len(c.history.m) > 4096 {
		clear(c.history.m)
	}
	c.history.m[digest] = steps
	c.history.mu.Unlock()
	return steps
}

// historySteps turns an image's history into one instruction per layer
// (entries that made no layer, such as ENV, are passed over).
func historySteps(h []v1.History) []string {
	var out []string
	for _, e := range h {
		if e.EmptyLayer {
			continue
		}
		step := strings.TrimSpace(e.CreatedBy)
		// The classic builder writes "/bin/sh -c #(nop) COPY …" for its own
		// instructions and "/bin/sh -c cmd" for RUN.
		if rest, ok := strings.CutPrefix(step, "/bin/sh -c #(nop)"); ok {
			step = strings.TrimSpace(rest)
		} else if rest, ok := strings.CutPrefix(step, "/bin/sh -c "); ok {
			step = "RUN " + strings.TrimSpace(rest)
		}
		out = append(out, clip(step))
	}
	return out
}
