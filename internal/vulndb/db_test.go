package vulndb_test

import (
	"context"
	"testing"
	"time"

	"github.com/scangate/scangate/internal/storetest"

	"github.com/scangate/scangate/internal/store"
	"github.com/scangate/scangate/internal/vulndb"
)

func openDB(t *testing.T) (*vulndb.DB, *store.Store) {
	t.Helper()
	// SQLite, or PostgreSQL when the run says so (storetest.Env).
	st := storetest.Open(t, t.TempDir())
	return vulndb.New(st), st
}

func goAdvisory(id, pkg, fixed string) vulndb.Advisory {
	return vulndb.Advisory{
		ID: id, Aliases: []string{"CVE-" + id}, Summary: "flaw in " + pkg,
		Modified: time.Date(2024, 1, 2, 3, 4, 5, 0, time.UTC),
		Affected: []vulndb.Affected{{Ecosystem: "Go", Package: pkg, Ranges: []vulndb.Range{{
			Type: vulndb.RangeSemver, Events: []vulndb.Event{{Introduced: "0"}, {Fixed: fixed}},
		}}}},
	}
}

func affectedIDs(t *testing.T, db *vulndb.DB, eco, pkg, version string) []string {
	t.Helper()
	ms, err := db.Reader().Affected(context.Background(), eco, pkg, version)
	if err != nil {
		t.Fatal(err)
	}
	var ids []string
	for _, m := range ms {
		ids = append(ids, m.ID)
	}
	return ids
}

func TestReplaceIsAtomic(t *testing.T) {
	ctx := context.Background()
	db, _ := openDB(t)
	good := vulndb.Feed{Name: "osv:Go", Format: "osv", Source: "test", Advisories: []vulndb.Advisory{goAdvisory("GO-1", "example.com/a", "1.2.0")}}
	if err := db.Replace(ctx, []vulndb.Feed{good}, vulndb.ReplaceOptions{}); err != nil {
		t.Fatal(err)
	}
	before, err := db.Version(ctx)
	if err != nil {
		t.Fatal(err)
	}
	// The second feed holds the same id twice, which the primary key
	// refuses: the whole replacement, the first feed included, must roll back.
	next := vulndb.Feed{Name: "osv:Go", Format: "osv", Advisories: []vulndb.Advisory{goAdvisory("GO-2", "example.com/b", "2.0.0")}}
	dup := vulndb.Feed{Name: "osv:PyPI", Format: "osv", Advisories: []vulndb.Advisory{goAdvisory("PYSEC-1", "x", "1.0.0"), goAdvisory("PYSEC-1", "x", "1.0.0")}}
	if err := db.Replace(ctx, []vulndb.Feed{next, dup}, vulndb.ReplaceOptions{}); err == nil {
		t.Fatal("Replace with a duplicate id succeeded")
	}
	after, err := db.Version(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if after != before {
		t.Errorf("version changed by a failed replace: %v → %v", before, after)
	}
	if ids := affectedIDs(t, db, "Go", "example.com/a", "1.0.0"); len(ids) != 1 || ids[0] != "GO-1" {
		t.Errorf("after a failed replace, example.com/a 1.0.0 matches %v; want [GO-1]", ids)
	}
	if ids := affectedIDs(t, db, "Go", "example.com/b", "1.0.0"); len(ids) != 0 {
		t.Errorf("a failed replace left example.com/b matching %v", ids)
	}
}

func TestReplaceAndMerge(t *testing.T) {
	ctx := context.Background()
	db, _ := openDB(t)
	feed := func(merge bool, advs ...vulndb.Advisory) []vulndb.Feed {
		return []vulndb.Feed{{Name: "osv:Go", Format: "osv", Source: "test", Advisories: advs, Merge: merge}}
	}
	if err := db.Replace(ctx, feed(false, goAdvisory("GO-1", "m/a", "1.2.0"), goAdvisory("GO-2", "m/b", "1.0.0")), vulndb.ReplaceOptions{}); err != nil {
		t.Fatal(err)
	}
	// A replace drops what the new data no longer holds.
	if err := db.Replace(ctx, feed(false, goAdvisory("GO-1", "m/a", "1.3.0")), vulndb.ReplaceOptions{}); err != nil {
		t.Fatal(err)
	}
	if ids := affectedIDs(t, db, "Go", "m/b", "0.5.0"); len(ids) != 0 {
		t.Errorf("replaced feed still matches GO-2: %v", ids)
	}
	ms, err := db.Reader().Affected(ctx, "Go", "m/a", "v1.2.5")
	if err != nil || len(ms) != 1 || ms[0].Fixed[0] != "1.3.0" {
		t.Errorf("m/a v1.2.5 = %+v, %v; want GO-1 fixed in 1.3.0", ms, err)
	}
	// A merge keeps records it does not mention and updates those it does.
	withdrawn := goAdvisory("GO-1", "m/a", "1.3.0")
	withdrawn.Withdrawn = time.Date(2024, 2, 1, 0, 0, 0, 0, time.UTC)
	if err := db.Replace(ctx, feed(true, goAdvisory("GO-3", "m/c", "1.0.0"), withdrawn), vulndb.ReplaceOptions{}); err != nil {
		t.Fatal(err)
	}
	if ids := affectedIDs(t, db, "Go", "m/c", "0.1.0"); len(ids) != 1 {
		t.Errorf("merged GO-3 does not match: %v", ids)
	}
	if ids := affectedIDs(t, db, "Go", "m/a", "1.0.0"); len(ids) != 0 {
		t.Errorf("withdrawn GO-1 still matches: %v", ids)
	}
	feeds, err := db.Feeds(ctx)
	if err != nil || len(feeds) != 1 || feeds[0].Records != 2 {
		t.Errorf("Feeds() = %+v, %v; want one feed of 2 records", feeds, err)
	}
}

func TestVersionDigestFollowsContent(t *testing.T) {
	ctx := context.Background()
	db, _ := openDB(t)
	v0, err := db.Version(ctx)
	if err != nil || v0.Digest != "" {
		t.Fatalf("empty database version = %+v, %v", v0, err)
	}
	f := []vulndb.Feed{{Name: "osv:Go", Format: "osv", Advisories: []vulndb.Advisory{goAdvisory("GO-1", "m/a", "1.2.0")}}}
	if err := db.Replace(ctx, f, vulndb.ReplaceOptions{}); err != nil {
		t.Fatal(err)
	}
	v1, _ := db.Version(ctx)
	if err := db.Replace(ctx, f, vulndb.ReplaceOptions{}); err != nil {
		t.Fatal(err)
	}
	v2, _ := db.Version(ctx)
	if v1.Digest == "" || v1 != v2 {
		t.Errorf("importing the same data twice changed the version: %+v → %+v", v1, v2)
	}
	f[0].Advisories[0] = goAdvisory("GO-1", "m/a", "1.2.1")
	if err := db.Replace(ctx, f, vulndb.ReplaceOptions{}); err != nil {
		t.Fatal(err)
	}
	if v3, _ := db.Version(ctx); v3.Digest == v1.Digest {
		t.Error("changed data kept the same digest")
	}
}

func TestLookupFollowsAliases(t *testing.T) {
	db := fixtureDatabase(t)
	advs, err := db.Lookup(context.Background(), "GO-2021-0113")
	if err != nil {
		t.Fatal(err)
	}
	if len(advs) < 2 || advs[0].ID != "GO-2021-0113" {
		t.Fatalf("Lookup(GO-2021-0113) = %d advisories; want the Go record first, then its CVE's", len(advs))
	}
	var nvd *vulndb.Advisory
	for i := range advs {
		if advs[i].Feed == "nvd" && advs[i].ID == "CVE-2021-38561" {
			nvd = &advs[i]
		}
	}
	if nvd == nil {
		t.Fatal("Lookup(GO-2021-0113) did not bring NVD's CVE-2021-38561")
	}
	primary := false
	for _, s := range nvd.Severities {
		if s.Primary && s.Source == "nvd@nist.gov" && s.Rating == vulndb.High && s.Score == 7.5 {
			primary = true
		}
	}
	if !primary {
		t.Errorf("CVE-2021-38561 severities %+v; want NVD's primary CVSS 3.1 7.5 HIGH", nvd.Severities)
	}
}
