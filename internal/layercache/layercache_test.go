package layercache_test

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/scangate/scangate/internal/layercache"
)

func put(t *testing.T, c *layercache.Cache, key string, size int) {
	t.Helper()
	if err := c.Put(key, func(w io.Writer) error {
		_, err := w.Write(bytes.Repeat([]byte{'x'}, size))
		return err
	}); err != nil {
		t.Fatal(err)
	}
}

func has(t *testing.T, c *layercache.Cache, key string) bool {
	t.Helper()
	f, err := c.Get(key)
	if errors.Is(err, layercache.ErrMiss) {
		return false
	}
	if err != nil {
		t.Fatal(err)
	}
	f.Close()
	return true
}

// setUsed ages a record, as if it had been read at when: file times are
// what the cache orders by, and a test should not sleep for seconds.
func setUsed(t *testing.T, dir, key string, when time.Time) {
	t.Helper()
	if err := os.Chtimes(filepath.Join(dir, key+".rec"), when, when); err != nil {
		t.Fatal(err)
	}
}

// TestEvictsLeastRecentlyUsed: past its bound, the cache removes the
// records read least recently, and a record read lately stays.
func TestEvictsLeastRecentlyUsed(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "layercache")
	c, err := layercache.Open(dir, 3000)
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now().Add(-time.Hour)
	for i, k := range []string{"aa", "bb", "cc"} {
		put(t, c, k, 1000)
		setUsed(t, dir, k, start.Add(time.Duration(i)*time.Minute))
	}
	if !has(t, c, "aa") { // aa is now the most recently used
		t.Fatal("aa missing before any eviction")
	}
	put(t, c, "dd", 1000) // 4000 > 3000: the least recently used (bb) goes
	for k, want := range map[string]bool{"aa": true, "bb": false, "cc": true, "dd": true} {
		if got := has(t, c, k); got != want {
			t.Errorf("%s cached: %v, want %v", k, got, want)
		}
	}
	u, err := c.Usage()
	if err != nil || u.Records != 3 || u.Bytes != 3000 {
		t.Errorf("usage %+v (%v); want 3 records, 3000 bytes", u, err)
	}
	removed, err := c.Prune(0)
	if err != nil || removed.Records != 3 {
		t.Errorf("Prune(0) removed %+v (%v); want all 3", removed, err)
	}
	if u, _ := c.Usage(); u.Records != 0 {
		t.Errorf("%d records after Prune(0)", u.Records)
	}
}

// TestFailedWriteLeavesNothing: a write that fails leaves no record and no
// temporary file; keys are names, never paths.
func TestFailedWriteLeavesNothing(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "layercache")
	c, err := layercache.Open(dir, 0)
	if err != nil {
		t.Fatal(err)
	}
	err = c.Put("ab", func(w io.Writer) error {
		w.Write([]byte("half a rec"))
		return errors.New("disk full")
	})
	if err == nil || !strings.Contains(err.Error(), "disk full") {
		t.Errorf("Put: %v; want the write's error", err)
	}
	if ents, _ := os.ReadDir(dir); len(ents) != 0 {
		t.Errorf("left behind: %v", ents)
	}
	// What a killed writer leaves goes at the next eviction once stale.
	stale := filepath.Join(dir, ".tmp-123")
	if err := os.WriteFile(stale, []byte("half"), 0o600); err != nil {
		t.Fatal(err)
	}
	old := time.Now().Add(-2 * time.Hour)
	os.Chtimes(stale, old, old)
	put(t, c, "cd", 10)
	if _, err := os.Stat(stale); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("a stale temporary file is still there: %v", err)
	}
	for _, bad := range []string{"", "../x", "AB", "a/b", strings.Repeat("a", 200)} {
		if err := c.Put(bad, func(io.Writer) error { return nil }); err == nil {
			t.Errorf("Put(%q): no error", bad)
		}
		if _, err := c.Get(bad); err == nil || errors.Is(err, layercache.ErrMiss) {
			t.Errorf("Get(%q): %v; want a bad key", bad, err)
		}
	}
}

// TestConcurrentWriters: two processes' worth of writers and readers on
// one folder; every read sees a whole record and the bound holds.
func TestConcurrentWriters(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "layercache")
	a, err := layercache.Open(dir, 20_000)
	if err != nil {
		t.Fatal(err)
	}
	b, err := layercache.Open(dir, 20_000)
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	for w, c := range []*layercache.Cache{a, b, a, b} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 50 {
				key := fmt.Sprintf("%02x", (w*50+i)%16)
				body := bytes.Repeat([]byte{byte('a' + w)}, 1000)
				if err := c.Put(key, func(wr io.Writer) error { _, err := wr.Write(body); return err }); err != nil {
					t.Error(err)
					return
				}
				f, err := c.Get(key)
				if errors.Is(err, layercache.ErrMiss) {
					continue // evicted or replaced meanwhile
				}
				if err != nil {
					t.Error(err)
					return
				}
				got, err := io.ReadAll(f)
				f.Close()
				if err != nil || len(got) != 1000 || bytes.Count(got, got[:1]) != 1000 {
					t.Errorf("read %d bytes (%v), not one whole record", len(got), err)
				}
			}
		}()
	}
	wg.Wait()
	if u, err := a.Usage(); err != nil || u.Bytes > 20_000 {
		t.Errorf("usage %+v (%v); bound 20000", u, err)
	}
}
