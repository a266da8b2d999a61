package vulndb_test

import (
	"context"
	"fmt"
	"reflect"
	"testing"
)

// TestLookupAll: for every id of the fixture database (and ids no record
// has), LookupAll gives what Lookup gives, in the same order, across more
// ids than one query takes.
func TestLookupAll(t *testing.T) {
	ctx := context.Background()
	db := fixtureDatabase(t)
	ids := []string{"GO-2021-0113", "CVE-2021-38561", "NO-SUCH-ID", ""}
	for _, eco := range []string{"Go", "npm", "PyPI", "Debian:12"} {
		for _, pkg := range []string{"golang.org/x/text", "golang.org/x/net", "lodash", "minimist", "requests", "urllib3", "zlib", "openssl", "glibc"} {
			for _, v := range []string{"0.0.1", "1.0.0", "0.3.5", "4.17.15", "1.2.0", "2.25.0", "1:1.2.13.dfsg-1", "3.0.11-1~deb12u2", "2.36-9+deb12u4"} {
				ms, err := db.Reader().Affected(ctx, eco, pkg, v)
				if err != nil {
					t.Fatal(err)
				}
				for _, m := range ms {
					ids = append(ids, m.ID)
					ids = append(ids, m.Aliases...)
				}
			}
		}
	}
	for i := range 600 {
		ids = append(ids, fmt.Sprintf("CVE-1999-%04d", i)) // past one query's 500
	}
	if len(ids) < 620 {
		t.Fatalf("only %d ids: the fixture should match some", len(ids))
	}
	got, err := db.LookupAll(ctx, ids)
	if err != nil {
		t.Fatal(err)
	}
	found := 0
	for _, id := range ids {
		want, err := db.Lookup(ctx, id)
		if err != nil {
			t.Fatal(err)
		}
		if len(want) == 0 && len(got[id]) == 0 {
			continue
		}
		found++
		if !reflect.DeepEqual(got[id], want) {
			t.Errorf("LookupAll[%s] = %d advisories, Lookup %d (or another order)", id, len(got[id]), len(want))
		}
	}
	t.Logf("%d ids, %d found advisories", len(ids), found)
	if found < 10 {
		t.Fatalf("only %d ids found anything: the test compares too little", found)
	}
}
