package lease_test

import (
	"context"
	"path/filepath"
	"testing"

	"github.com/scangate/scangate/internal/lease"
	"github.com/scangate/scangate/internal/store"
)

// BenchmarkLock is the cost a push pays for its cross-server lock (a git
// push's repository, a tag push's repository:tag): Lock and unlock of a
// free lease on a real SQLite file, two writes.
func BenchmarkLock(b *testing.B) {
	ctx := context.Background()
	st, err := store.Open(ctx, filepath.Join(b.TempDir(), store.FileName))
	if err != nil {
		b.Fatal(err)
	}
	defer st.Close()
	l := lease.New(st, lease.Options{Holder: "bench"})
	for b.Loop() {
		_, unlock, err := l.Lock(ctx, "git:shop/app.git")
		if err != nil {
			b.Fatal(err)
		}
		unlock()
	}
}
