package api_test

import (
	"encoding/json"
	"net/http"
	"testing"

	"github.com/scangate/scangate/internal/servertest"
	"github.com/scangate/scangate/internal/stack"
)

// The stack records and the deletes scangate down needs: admin only,
// checked, and as openapi.yaml says.
func TestStackRoutes(t *testing.T) {
	s := servertest.Start(t, servertest.Options{Feeds: []string{}})
	c := newClient(t, s)
	admin := s.Token
	status, body := c.do(admin, "POST", "/api/v1/tokens", map[string]string{"name": "dep", "role": "deployer"})
	if status != http.StatusCreated {
		t.Fatalf("token: %d %s", status, body)
	}
	var dep struct{ Secret string }
	if err := json.Unmarshal(body, &dep); err != nil {
		t.Fatal(err)
	}

	rec := stack.Record{Name: "seed", Resources: []stack.Entry{{Kind: stack.KindCluster, Name: "c", Digest: "sha256:00"}}}
	for _, call := range []struct{ method, path string }{
		{"GET", "/api/v1/stacks/seed"}, {"DELETE", "/api/v1/stacks/seed"}, {"DELETE", "/api/v1/repositories/r"}, {"DELETE", "/api/v1/pipelines/p"},
	} {
		if status, _ := c.do(dep.Secret, call.method, call.path, nil); status != http.StatusForbidden {
			t.Errorf("deployer: %s %s: %d, want 403", call.method, call.path, status)
		}
	}
	if status, _ := c.do(dep.Secret, "PUT", "/api/v1/stacks/seed", rec); status != http.StatusForbidden {
		t.Errorf("deployer saves a record: %d, want 403", status)
	}
	if status, _ := c.do(admin, "GET", "/api/v1/stacks/seed", nil); status != http.StatusNotFound {
		t.Errorf("no record yet: %d, want 404", status)
	}
	if status, body := c.do(admin, "PUT", "/api/v1/stacks/seed", rec); status != http.StatusOK {
		t.Fatalf("save: %d %s", status, body)
	}
	status, body = c.do(admin, "GET", "/api/v1/stacks/seed", nil)
	var got stack.Record
	if err := json.Unmarshal(body, &got); err != nil || status != http.StatusOK || len(got.Resources) != 1 || got.Resources[0].Name != "c" {
		t.Errorf("get: %d %s", status, body)
	}
	for _, bad := range []stack.Record{
		{Name: "other"}, // not the path's
		{Name: "seed", Resources: []stack.Entry{{Kind: "volcano", Name: "v"}}},
	} {
		if status, body := c.do(admin, "PUT", "/api/v1/stacks/seed", bad); status != http.StatusBadRequest {
			t.Errorf("save %+v: %d %s, want 400", bad, status, body)
		}
	}
	if status, _ := c.do(admin, "DELETE", "/api/v1/stacks/seed", nil); status != http.StatusNoContent {
		t.Errorf("delete: %d, want 204", status)
	}
	if status, _ := c.do(admin, "DELETE", "/api/v1/stacks/seed", nil); status != http.StatusNotFound {
		t.Errorf("delete again: %d, want 404", status)
	}

	if status, body := c.do(admin, "POST", "/api/v1/repositories", map[string]string{"name": "shop"}); status != http.StatusCreated {
		t.Fatalf("create repository: %d %s", status, body)
	}
	if status, _ := c.do(admin, "DELETE", "/api/v1/repositories/shop", nil); status != http.StatusNoContent {
		t.Errorf("delete repository: %d, want 204", status)
	}
	if status, _ := c.do(admin, "DELETE", "/api/v1/repositories/shop", nil); status != http.StatusNotFound {
		t.Errorf("delete repository again: %d, want 404", status)
	}
	if status, body := c.do(admin, "POST", "/api/v1/repositories", map[string]string{"name": "shop"}); status != http.StatusCreated {
		t.Fatalf("create repository again: %d %s", status, body)
	}
	def := "name: shop\nsource: {repository: shop, branch: main}\nbuild: {repository: shop/api}\napproval:\n  policy: {thresholds: {CRITICAL: 0}}\n"
	if status, body := c.doRaw(admin, "PUT", "/api/v1/pipelines/shop", "application/yaml", []byte(def)); status != http.StatusOK {
		t.Fatalf("put pipeline: %d %s", status, body)
	}
	if status, _ := c.do(admin, "DELETE", "/api/v1/pipelines/shop?purge=true", nil); status != http.StatusNoContent {
		t.Errorf("delete pipeline: %d, want 204", status)
	}
	if status, _ := c.do(admin, "GET", "/api/v1/pipelines/shop", nil); status != http.StatusNotFound {
		t.Errorf("pipeline after delete: %d, want 404", status)
	}
	if status, _ := c.do(admin, "DELETE", "/api/v1/pipelines/shop", nil); status != http.StatusNotFound {
		t.Errorf("delete pipeline again: %d, want 404", status)
	}
}
