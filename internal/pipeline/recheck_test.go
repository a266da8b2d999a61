package pipeline

import (
	"context"
	"database/sql"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/scangate/scangate/internal/events"
	"github.com/scangate/scangate/internal/jobs"
	"github.com/scangate/scangate/internal/scan"
	"github.com/scangate/scangate/internal/store"
	"github.com/scangate/scangate/internal/storetest"
)

// The deploy stage weighs the approved image against today's database: a
// finding over the thresholds that the approval did not see blocks the
// deploy, naming it; on-new-findings: warn and an approval younger than its
// grace let it through with a warning; findings the approval saw do not
// block. The store is a real SQLite file; the scan results are written as
// the scanner writes them (a report in the scans table), before and after
// a database change.
func TestDeployRecheck(t *testing.T) {
	ctx := context.Background()
	st, err := store.OpenDatabase(ctx, storetest.Database(t), t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	if err := jobs.Migrate(ctx, st); err != nil {
		t.Fatal(err)
	}
	client, err := jobs.New(st, nil, jobs.Config{})
	if err != nil {
		t.Fatal(err)
	}
	now := time.Date(2026, 12, 4, 12, 0, 0, 0, time.UTC)
	s := New(st, events.NewBus(st, client, events.BusOptions{}), client, Options{Key: make([]byte, 32), Now: func() time.Time { return now }})

	d, err := ParseDefinition([]byte(`name: shop
source: {repository: shop}
build: {repository: shop/api}
approval:
  policy:
    thresholds: {CRITICAL: 0}
deploy: {cluster: default, service: shop, container: api}
`))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Put(ctx, d); err != nil {
		t.Fatal(err)
	}
	const digest = "sha256:1111111111111111111111111111111111111111111111111111111111111111"
	report := func(findings ...scan.Finding) *scan.Report {
		r := &scan.Report{SchemaVersion: 1, Packages: []scan.Package{{Name: "zlib1g", Version: "1:1.2.13.dfsg-1", Type: "deb"},
			{Name: "libc6", Version: "2.36-9", Type: "deb"}}, Findings: findings}
		r.Recount()
		return r
	}
	writeScan := func(r *scan.Report) {
		t.Helper()
		doc, err := json.Marshal(r)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := st.Writer().ExecContext(ctx, `INSERT INTO scans (repository, digest, status, report, first_scanned_at, scanned_at)
			VALUES ('shop/api', $1, 'COMPLETE', $2, 'x', 'x') ON CONFLICT (repository, digest) DO UPDATE SET report = excluded.report`, digest, string(doc)); err != nil {
			t.Fatal(err)
		}
	}
	high := scan.Finding{ID: "CVE-2023-1", Package: 1, Severity: "HIGH"}
	critical := scan.Finding{ID: "CVE-2023-45853", Package: 0, Severity: "CRITICAL", Fixed: []string{"1:1.2.13.dfsg-2"}}

	// The image has a HIGH, which the thresholds allow.
	writeScan(report(high))
	var a *Approval
	err = st.InTx(ctx, func(tx *sql.Tx) error {
		id, err := s.start(ctx, tx, "shop", Trigger{Kind: "manual", Commit: strings.Repeat("a", 40), Ref: "refs/heads/main"})
		if err != nil {
			return err
		}
		ex, err := loadExecution(ctx, tx, id)
		if err != nil {
			return err
		}
		ex.ImageURI = "127.0.0.1:5000/shop/api@" + digest
		return s.requestApproval(ctx, tx, ex, d, "shop/api", digest)
	})
	if err != nil {
		t.Fatal(err)
	}
	// The evaluator approves: no CRITICAL yet.
	exs, err := s.Executions(ctx, "shop", 1)
	if err != nil || len(exs) != 1 {
		t.Fatal(exs, err)
	}
	if a, err = s.approvalOf(ctx, st.Reader(), exs[0].ID); err != nil {
		t.Fatal(err)
	}
	if err := s.Evaluate(ctx, a.ID); err != nil {
		t.Fatal(err)
	}
	if a, err = loadApproval(ctx, st.Reader(), a.ID); err != nil || a.Status != StateApproved {
		t.Fatalf("approval %+v, %v", a, err)
	}

	recheck := func(d *Definition, at time.Time) (string, string) {
		t.Helper()
		now = at
		var block, warning string
		err := st.InTx(ctx, func(tx *sql.Tx) (err error) {
			block, warning, err = s.recheck(ctx, tx, a, d)
			return err
		})
		if err != nil {
			t.Fatal(err)
		}
		return block, warning
	}
	// Nothing new: the deploy goes on.
	if block, warning := recheck(d, now); block != "" || warning != "" {
		t.Fatalf("unchanged findings: block %q, warning %q", block, warning)
	}
	// Today's database finds a CRITICAL: blocked, naming it.
	writeScan(report(high, critical))
	block, _ := recheck(d, now.Add(time.Hour))
	if !strings.Contains(block, "deploy blocked: new findings since the approval: CRITICAL CVE-2023-45853 in zlib1g 1:1.2.13.dfsg-1 (fixed in 1:1.2.13.dfsg-2)") ||
		strings.Contains(block, "CVE-2023-1") {
		t.Errorf("block: %q", block)
	}
	// Within the approval's grace, or with on-new-findings: warn, a warning.
	graced := *d
	graced.Approval.Policy.Grace = Duration(72 * time.Hour)
	if block, warning := recheck(&graced, a.DecidedAt.Add(time.Hour)); block != "" || !strings.Contains(warning, "within the approval's grace of 72h0m0s") {
		t.Errorf("in grace: block %q, warning %q", block, warning)
	}
	if block, _ := recheck(&graced, a.DecidedAt.Add(73*time.Hour)); block == "" {
		t.Error("past the grace: not blocked")
	}
	warned := *d
	warned.Approval.Policy.OnNewFindings = OnNewFindingsWarn
	if block, warning := recheck(&warned, now); block != "" || !strings.Contains(warning, "warning: new findings since the approval: CRITICAL CVE-2023-45853") {
		t.Errorf("warn: block %q, warning %q", block, warning)
	}
}
