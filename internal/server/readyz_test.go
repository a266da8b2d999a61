package server

import (
	"context"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"testing"

	"github.com/scangate/scangate/internal/registry"
	"github.com/scangate/scangate/internal/store"
)

// TestReadyzStates checks /readyz's answers on a real database: 503 while
// starting, 200 when serving, 503 once the drain begins (so that a load
// balancer in front of several replicas sends the others the requests),
// and 503 when storage is gone.
func TestReadyzStates(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	st, err := store.Open(ctx, filepath.Join(dir, store.FileName))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	for _, d := range []string{"registry", "git"} {
		if err := os.MkdirAll(filepath.Join(dir, d), 0o700); err != nil {
			t.Fatal(err)
		}
	}
	reg, err := registry.New(ctx, registry.Config{Root: filepath.Join(dir, "registry")})
	if err != nil {
		t.Fatal(err)
	}
	defer reg.Close()
	p := &parts{st: st, reg: reg}
	p.cfg.DataDir = dir
	p.cfg.defaults()
	get := func() int {
		w := httptest.NewRecorder()
		p.readyz(w, httptest.NewRequest(http.MethodGet, "/readyz", nil))
		return w.Code
	}
	if c := get(); c != http.StatusServiceUnavailable {
		t.Errorf("starting: %d, want 503", c)
	}
	p.ready.Store(true)
	if c := get(); c != http.StatusOK {
		t.Errorf("serving: %d, want 200", c)
	}
	if err := os.Remove(filepath.Join(dir, "git")); err != nil {
		t.Fatal(err)
	}
	if c := get(); c != http.StatusServiceUnavailable {
		t.Errorf("git storage gone: %d, want 503", c)
	}
	if err := os.Mkdir(filepath.Join(dir, "git"), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(filepath.Join(dir, "registry"), filepath.Join(dir, "moved")); err != nil {
		t.Fatal(err)
	}
	if c := get(); c != http.StatusServiceUnavailable {
		t.Errorf("registry storage gone: %d, want 503", c)
	}
	if err := os.Rename(filepath.Join(dir, "moved"), filepath.Join(dir, "registry")); err != nil {
		t.Fatal(err)
	}
	if c := get(); c != http.StatusOK {
		t.Errorf("storage back: %d, want 200", c)
	}
	p.draining.Store(true)
	p.ready.Store(false)
	if c := get(); c != http.StatusServiceUnavailable {
		t.Errorf("draining: %d, want 503", c)
	}
}
