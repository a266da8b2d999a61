package scanner

import (
	"context"
	"encoding/json"
	"path/filepath"
	"testing"

	"github.com/scangate/scangate/internal/events"
	"github.com/scangate/scangate/internal/store"
	"github.com/scangate/scangate/internal/vulndb"
)

// A re-evaluation gives new results, SCAN_COMPLETE and Finding events only
// to the images whose findings changed; an image already matched against
// the database is not read again, and a change of the database that
// changes no finding publishes nothing but still records the version.
func TestReevaluateEventsOnlyForChanges(t *testing.T) {
	ctx := context.Background()
	const images = 6
	dir := t.TempDir()
	template := benchStore(t, filepath.Join(dir, "template.db"), images, benchInventory(t), []string{"debian"}, "ghsa")
	s, st := benchScanner(t, template, filepath.Join(dir, "run"))
	t.Cleanup(func() { st.Close() })

	// The GitHub advisories are new: every image gains npm findings.
	res, err := s.Reevaluate(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if res.Images != images || res.Changed != images || res.Created == 0 || res.Closed != 0 || res.Rescans != 0 {
		t.Fatalf("first re-evaluation %+v: want all %d images changed, findings created, none closed", res, images)
	}
	scans, findings := countEvents(t, st)
	if scans[StatusScanComplete] != images || findings[FindingCreated] != res.Created || findings[FindingClosed] != 0 {
		t.Fatalf("events: scans %v, findings %v; want %d SCAN_COMPLETE and %d CREATED", scans, findings, images, res.Created)
	}
	checkVersions(t, st, images)

	// Nothing changed since: nothing to do, nothing published.
	if res, err = s.Reevaluate(ctx); err != nil {
		t.Fatal(err)
	}
	if res.Images != images || res.Changed != 0 || res.Created+res.Closed != 0 {
		t.Fatalf("second re-evaluation %+v: want no change", res)
	}
	if again, _ := countEvents(t, st); again[StatusScanComplete] != images {
		t.Fatalf("scan events after a re-evaluation that changed nothing: %v", again)
	}

	// A feed no image has packages of: a new version, the same findings.
	importFeeds(t, st, "alpine")
	if res, err = s.Reevaluate(ctx); err != nil {
		t.Fatal(err)
	}
	if res.Changed != 0 || res.Created+res.Closed != 0 {
		t.Fatalf("re-evaluation after an unrelated feed %+v: want no change", res)
	}
	if again, f := countEvents(t, st); again[StatusScanComplete] != images || f[FindingCreated] != findings[FindingCreated] {
		t.Fatalf("events after an unrelated feed: scans %v, findings %v", again, f)
	}
	checkVersions(t, st, images)

	// The GitHub advisories withdrawn: their findings are closed.
	if err := vulndb.New(st).Replace(ctx, []vulndb.Feed{{Name: "ghsa:npm", Format: "ghsa", Source: "test"}}, vulndb.ReplaceOptions{}); err != nil {
		t.Fatal(err)
	}
	if res, err = s.Reevaluate(ctx); err != nil {
		t.Fatal(err)
	}
	if res.Changed != images || res.Closed != findings[FindingCreated] || res.Created != 0 {
		t.Fatalf("re-evaluation after the withdrawal %+v: want %d findings closed", res, findings[FindingCreated])
	}
	scans, findings = countEvents(t, st)
	if scans[StatusScanComplete] != 2*images || findings[FindingClosed] != res.Closed {
		t.Fatalf("events after the withdrawal: scans %v, findings %v", scans, findings)
	}
}

// countEvents counts the logged Scan events by status and Finding events
// by finding status.
func countEvents(t *testing.T, st *store.Store) (scans, findings map[string]int) {
	t.Helper()
	log, err := events.ListLog(context.Background(), st, 0, 100000)
	if err != nil {
		t.Fatal(err)
	}
	scans, findings = map[string]int{}, map[string]int{}
	for _, l := range log {
		switch l.Event.DetailType {
		case events.DetailTypeScan:
			var d ScanDetail
			if err := json.Unmarshal(l.Event.Detail, &d); err != nil {
				t.Fatal(err)
			}
			scans[d.ScanStatus]++
		case events.DetailTypeFinding:
			var d FindingDetail
			if err := json.Unmarshal(l.Event.Detail, &d); err != nil {
				t.Fatal(err)
			}
			findings[d.FindingStatus]++
		}
	}
	return scans, findings
}

// checkVersions checks that every image's result names the database as it
// is, in its columns and in its report.
func checkVersions(t *testing.T, st *store.Store, images int) {
	t.Helper()
	v, err := vulndb.New(st).Version(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	var n int
	err = st.Reader().QueryRow(`SELECT count(*) FROM scans WHERE vulndb_digest = $1 AND json_extract(report, '$.vulndb.digest') = $1`, v.Digest).Scan(&n)
	if err != nil {
		t.Fatal(err)
	}
	if n != images {
		t.Fatalf("%d of %d results name the database %s", n, images, v.Digest)
	}
}
