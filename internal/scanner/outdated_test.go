package scanner

import (
	"context"
	"path/filepath"
	"testing"
)

// An inventory stored by another extractor set (an older scangate's, or
// one that did not record it) is cataloged again, not matched as it was:
// the new extractors may find packages the old ones missed.
func TestReevaluateRecatalogsOutdatedInventory(t *testing.T) {
	ctx := context.Background()
	const images = 3
	dir := t.TempDir()
	inv := benchInventory(t)
	if inv.Cataloger == nil {
		t.Fatal("a new inventory records no cataloger")
	}
	old := *inv.Cataloger
	old.Scalibr = "v0.4.0"
	inv.Cataloger = &old
	template := benchStore(t, filepath.Join(dir, "template.db"), images, inv, []string{"debian"}, "ghsa")
	s, st := benchScanner(t, template, filepath.Join(dir, "run"))
	t.Cleanup(func() { st.Close() })
	res, err := s.Reevaluate(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if res.Rescans != images || res.Changed != 0 {
		t.Fatalf("re-evaluation %+v: want all %d images queued to be cataloged again, none matched as stored", res, images)
	}
}
