package console

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"path/filepath"
	"testing"
	"time"

	"github.com/scangate/scangate/internal/auth"
	"github.com/scangate/scangate/internal/deploy"
	"github.com/scangate/scangate/internal/events"
	"github.com/scangate/scangate/internal/jobs"
	"github.com/scangate/scangate/internal/pipeline"
	"github.com/scangate/scangate/internal/scan"
	"github.com/scangate/scangate/internal/scanner"
	"github.com/scangate/scangate/internal/store"
	"github.com/scangate/scangate/internal/vulndb"
)

// The stored volume of the console's benchmark: the figures.
const (
	benchImages       = 1000
	benchFindings     = 100 // per image: 100,000 in all
	benchRepositories = 50
	benchPipelines    = 10
	benchExecutions   = 50 // per pipeline
)

func digestOf(s string) string {
	sum := sha256.Sum256([]byte(s))
	return "sha256:" + hex.EncodeToString(sum[:])
}

// benchReport is image i's report: benchFindings findings over 60 Debian
// packages in 3 layers, every rating kept; CVE-2023-45853 is in every
// image, as a base image's finding is.
func benchReport(i int) *scan.Report {
	repo := fmt.Sprintf("team%02d/app", i%benchRepositories)
	layers := []string{digestOf("base"), digestOf("deps"), digestOf(fmt.Sprintf("app-%d", i))}
	r := &scan.Report{SchemaVersion: 1, CreatedAt: time.Now().UTC(),
		Image: scan.ImageInfo{Repository: repo, Digest: digestOf(fmt.Sprintf("image-%d", i)), Tags: []string{fmt.Sprintf("v%d", i), fmt.Sprintf("%040x", i)},
			ConfigDigest: digestOf(fmt.Sprintf("config-%d", i)), Layers: layers},
		OS: &scan.OS{ID: "debian", VersionID: "12", PrettyName: "Debian GNU/Linux 12 (bookworm)", Ecosystem: "Debian:12"}}
	for p := range 60 {
		r.Packages = append(r.Packages, scan.Package{Name: fmt.Sprintf("lib%02d", p), Version: fmt.Sprintf("1.%d.%d-1", p, i%7), Type: "deb",
			Ecosystem: "Debian:12", SourceName: fmt.Sprintf("src%02d", p), Path: "/var/lib/dpkg/status", Layer: layers[p%3]})
	}
	sevs := []string{"CRITICAL", "HIGH", "MEDIUM", "LOW", "UNKNOWN"}
	for f := range benchFindings {
		id := fmt.Sprintf("CVE-2024-%05d", (i*37+f*101)%20000)
		if f == 0 {
			id = "CVE-2023-45853"
		}
		sev := sevs[(i+f)%len(sevs)]
		fd := scan.Finding{ID: id, Aliases: []string{"DSA-" + id[4:]}, Feed: "debian", Package: f % 60, Status: vulndb.StatusFixed,
			Severity: sev, SeveritySource: "nvd@nist.gov", Score: 7.5, Title: "A flaw in a library that lets an attacker do something unwanted with crafted input",
			URL:        "https://security-tracker.debian.org/tracker/" + id,
			Severities: []vulndb.Severity{{Source: "debian", Type: "VENDOR", Rating: "LOW"}, {Source: "nvd@nist.gov", Type: "CVSS_V3", Score: 7.5, Rating: sev, Primary: true}}}
		if f%3 == 0 {
			fd.Fixed = []string{fmt.Sprintf("1.%d.9-1", f%60)}
		}
		r.Findings = append(r.Findings, fd)
	}
	r.Recount()
	return r
}

// benchConsole is a console over a store with the benchmark's volume, and
// a reader's session.
func benchConsole(b *testing.B) (*Console, *http.Cookie) {
	b.Helper()
	ctx := context.Background()
	dir := b.TempDir()
	st, err := store.Open(ctx, filepath.Join(dir, store.FileName))
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { st.Close() })
	if err := jobs.Migrate(ctx, st); err != nil {
		b.Fatal(err)
	}
	client, err := jobs.New(st, nil, jobs.Config{}) // inserts only: nothing runs
	if err != nil {
		b.Fatal(err)
	}
	reports := make([]*scan.Report, benchImages)
	for i := range reports {
		reports[i] = benchReport(i)
	}
	if err := scanner.Seed(ctx, st, time.Now().Add(-time.Hour), reports); err != nil {
		b.Fatal(err)
	}
	bus := events.NewBus(st, client, events.BusOptions{})
	key, err := pipeline.LoadKey(dir)
	if err != nil {
		b.Fatal(err)
	}
	pipes := pipeline.New(st, bus, client, pipeline.Options{Key: key})
	for p := range benchPipelines {
		d, err := pipeline.ParseDefinition([]byte(fmt.Sprintf(`name: pipe%d
source: {repository: pipe%d, branch: main}
build: {repository: team%02d/app}
approval:
  policy:
    thresholds: {CRITICAL: 0, HIGH: 0}
    exceptions:
      - {id: CVE-2023-45853, reason: "not reachable", expires: 2099-01-01}
`, p, p, p)))
		if err != nil {
			b.Fatal(err)
		}
		if _, err := pipes.Put(ctx, d); err != nil {
			b.Fatal(err)
		}
		for e := range benchExecutions {
			if _, err := pipes.Start(ctx, d.Name, pipeline.Trigger{Kind: "push", Commit: fmt.Sprintf("%040x", p*1000+e), Ref: "refs/heads/main"}); err != nil {
				b.Fatal(err)
			}
		}
	}
	tokens := auth.NewTokens(st)
	_, tok, err := tokens.Create(ctx, "bench", auth.RoleReader)
	if err != nil {
		b.Fatal(err)
	}
	c, err := New(Deps{Results: scanner.NewResults(st), Deploy: deploy.New(st, bus, deploy.Options{}), Tokens: tokens, Bus: bus, Pipelines: pipes})
	if err != nil {
		b.Fatal(err)
	}
	s, err := c.sessions.Create(ctx, tok, time.Hour)
	if err != nil {
		b.Fatal(err)
	}
	return c, &http.Cookie{Name: SessionCookie, Value: s.ID}
}

// BenchmarkPages measures the server time of the console's pages with
// 1,000 images and 100,000 findings stored (plus 10 pipelines with 500
// executions), and reports each page's size. The issue asks for under
// 100 ms and 200 KB:
//
//	go test -run '^$' -bench Pages -benchtime 20x ./internal/console/
func BenchmarkPages(b *testing.B) {
	c, cookie := benchConsole(b)
	img := benchReport(7).Image
	image := url.QueryEscape(img.Repository + "@" + img.Digest)
	for _, p := range []struct{ name, path string }{
		{"pipelines", "/pipelines"},
		{"pipeline", "/pipelines/pipe3"},
		{"repositories", "/repositories"},
		{"images", "/images?repository=" + url.QueryEscape(img.Repository)},
		{"findings", "/findings?image=" + image},
		{"findings-filtered", "/findings?image=" + image + "&severity=HIGH&fixable=yes&sort=package"},
		{"vulnerability-in-every-image", "/vulnerabilities/CVE-2023-45853"},
		{"policies", "/policies"},
		{"events", "/events"},
		{"rules", "/rules"},
	} {
		b.Run(p.name, func(b *testing.B) {
			var size int
			for b.Loop() {
				req := httptest.NewRequest(http.MethodGet, p.path, nil)
				req.AddCookie(cookie)
				rec := httptest.NewRecorder()
				c.ServeHTTP(rec, req)
				if rec.Code != http.StatusOK {
					b.Fatalf("%s: %d %.500s", p.path, rec.Code, rec.Body.String())
				}
				size = rec.Body.Len()
			}
			b.ReportMetric(float64(size)/1024, "KB/page")
			b.ReportMetric(float64(b.Elapsed().Milliseconds())/float64(b.N), "ms/page")
		})
	}
}
