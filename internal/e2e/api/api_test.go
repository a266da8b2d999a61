package api_test

import (
	"bytes"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/scangate/scangate/internal/imagetest"
	"github.com/scangate/scangate/internal/logbuf"
	"github.com/scangate/scangate/internal/server"
	"github.com/scangate/scangate/internal/servertest"
)

// client calls the API; servertest checks every request and answer
// against openapi.yaml, so the document and the server cannot drift apart.
type client struct {
	t *testing.T
	s *servertest.Server
}

func newClient(t *testing.T, s *servertest.Server) *client { return &client{t: t, s: s} }

func (c *client) do(token, method, path string, body any) (int, []byte) {
	c.t.Helper()
	return c.s.APIAs(c.t, token, method, path, body)
}

// doRaw sends body as it is, with its content type ("" for no body).
func (c *client) doRaw(token, method, path, contentType string, raw []byte) (int, []byte) {
	c.t.Helper()
	req, err := http.NewRequest(method, "http://"+c.s.Addr+path, bytes.NewReader(raw))
	if err != nil {
		c.t.Fatal(err)
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		c.t.Fatal(err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	if err != nil {
		c.t.Fatal(err)
	}
	servertest.CheckOpenAPI(c.t, c.s.Addr, req, raw, resp, data)
	return resp.StatusCode, data
}

func TestAPI(t *testing.T) {
	s := servertest.Start(t, servertest.Options{})
	c := newClient(t, s)
	admin := s.Token

	img, _ := imagetest.BookwormApp(t)
	digest := s.Push(t, "shop/web:2", img)
	s.WaitScan(t, "shop/web", digest, 30*time.Second)

	t.Run("tokens and roles", func(t *testing.T) {
		if status, _ := c.do("", "GET", "/api/v1/images", nil); status != http.StatusUnauthorized {
			t.Errorf("no token: %d, want 401", status)
		}
		if status, _ := c.do("sgt_"+strings.Repeat("0", 64), "GET", "/api/v1/images", nil); status != http.StatusUnauthorized {
			t.Errorf("unknown token: %d, want 401", status)
		}
		status, body := c.do(admin, "POST", "/api/v1/tokens", map[string]string{"name": "viewer", "role": "reader"})
		if status != http.StatusCreated {
			t.Fatalf("create token: %d %s", status, body)
		}
		var created struct{ Secret string }
		if err := json.Unmarshal(body, &created); err != nil {
			t.Fatal(err)
		}
		if status, _ := c.do(created.Secret, "GET", "/api/v1/images", nil); status != http.StatusOK {
			t.Errorf("reader reads: %d, want 200", status)
		}
		if status, _ := c.do(created.Secret, "DELETE", "/api/v1/rules/x", nil); status != http.StatusForbidden {
			t.Errorf("reader deletes a rule: %d, want 403", status)
		}
		if status, _ := c.do(admin, "POST", "/api/v1/tokens", map[string]string{"name": "viewer", "role": "reader"}); status != http.StatusConflict {
			t.Errorf("same name again: %d, want 409", status)
		}
		if status, _ := c.do(admin, "POST", "/api/v1/tokens", map[string]string{"name": "x", "role": "root"}); status != http.StatusBadRequest {
			t.Errorf("unknown role: %d, want 400", status)
		}
		if status, _ := c.do(admin, "DELETE", "/api/v1/tokens/viewer", nil); status != http.StatusNoContent {
			t.Errorf("revoke: %d, want 204", status)
		}
		if status, _ := c.do(created.Secret, "GET", "/api/v1/images", nil); status != http.StatusUnauthorized {
			t.Errorf("revoked token: %d, want 401", status)
		}
	})

	t.Run("images and findings", func(t *testing.T) {
		status, body := c.do(admin, "GET", "/api/v1/images?repository=shop/web", nil)
		if status != http.StatusOK || !strings.Contains(string(body), digest) {
			t.Fatalf("images: %d %s", status, body)
		}
		for _, name := range []string{"shop/web:2", "shop/web@" + digest} {
			status, body = c.do(admin, "GET", "/api/v1/findings?image="+name, nil)
			if status != http.StatusOK || !strings.Contains(string(body), "lodash") {
				t.Errorf("findings of %s: %d %.200s", name, status, body)
			}
		}
		if status, _ := c.do(admin, "GET", "/api/v1/findings?image=shop/web:nope", nil); status != http.StatusNotFound {
			t.Errorf("unknown tag: %d, want 404", status)
		}
		if status, _ := c.do(admin, "GET", "/api/v1/findings", nil); status != http.StatusBadRequest {
			t.Errorf("no image: %d, want 400", status)
		}
	})

	t.Run("rules", func(t *testing.T) {
		rule := map[string]any{
			"pattern": map[string]any{"detail-type": []string{"Scan"}},
			"targets": []map[string]string{{"id": "hook", "webhook": "http://127.0.0.1:1/hook", "secret": "s3cret"}},
		}
		if status, body := c.do(admin, "PUT", "/api/v1/rules/scans", rule); status != http.StatusNoContent {
			t.Fatalf("put: %d %s", status, body)
		}
		status, body := c.do(admin, "GET", "/api/v1/rules", nil)
		if status != http.StatusOK || !strings.Contains(string(body), `"scans"`) || strings.Contains(string(body), "s3cret") {
			t.Errorf("list (secret must be masked): %d %s", status, body)
		}
		bad := map[string]any{"pattern": map[string]any{"detail-type": "Scan"}, "targets": rule["targets"]}
		if status, body := c.do(admin, "PUT", "/api/v1/rules/bad", bad); status != http.StatusBadRequest || !strings.Contains(string(body), "detail-type") {
			t.Errorf("bad pattern: %d %s, want 400 naming the field", status, body)
		}
		nohandler := map[string]any{"pattern": rule["pattern"], "targets": []map[string]string{{"handler": "nope"}}}
		if status, body := c.do(admin, "PUT", "/api/v1/rules/h", nohandler); status != http.StatusBadRequest || !strings.Contains(string(body), "no built-in handler") {
			t.Errorf("unknown handler: %d %s, want 400", status, body)
		}
		if status, _ := c.do(admin, "DELETE", "/api/v1/rules/scans", nil); status != http.StatusNoContent {
			t.Errorf("delete: %d", status)
		}
		if status, _ := c.do(admin, "DELETE", "/api/v1/rules/scans", nil); status != http.StatusNotFound {
			t.Errorf("delete again: %d, want 404", status)
		}
	})

	t.Run("events", func(t *testing.T) {
		status, body := c.do(admin, "GET", "/api/v1/events?limit=10", nil)
		if status != http.StatusOK || !strings.Contains(string(body), `"Scan"`) {
			t.Fatalf("events: %d %.300s", status, body)
		}
		if status, _ := c.do(admin, "GET", "/api/v1/events?limit=0", nil); status != http.StatusBadRequest {
			t.Errorf("limit 0: %d, want 400", status)
		}
		// The server filters: the last event of a type, since a time.
		var page struct {
			Events []struct {
				Seq   int64
				Event struct {
					DetailType string `json:"detail-type"`
				}
			}
		}
		since := url.QueryEscape(time.Now().Add(-time.Hour).UTC().Format(time.RFC3339))
		status, body = c.do(admin, "GET", "/api/v1/events?tail=true&limit=1&type=Image+Push&type=Scan&since="+since, nil)
		if err := json.Unmarshal(body, &page); status != http.StatusOK || err != nil || len(page.Events) != 1 || page.Events[0].Event.DetailType != "Scan" {
			t.Errorf("the last Image Push or Scan: %d %s", status, body)
		}
		status, body = c.do(admin, "GET", "/api/v1/events?type=Image+Push", nil)
		if err := json.Unmarshal(body, &page); status != http.StatusOK || err != nil || len(page.Events) != 1 || page.Events[0].Event.DetailType != "Image Push" {
			t.Errorf("Image Push events: %d %s", status, body)
		}
		future := url.QueryEscape(time.Now().Add(time.Hour).UTC().Format(time.RFC3339))
		status, body = c.do(admin, "GET", "/api/v1/events?since="+future, nil)
		if err := json.Unmarshal(body, &page); status != http.StatusOK || err != nil || len(page.Events) != 0 {
			t.Errorf("events of the next hour: %d %s", status, body)
		}
		if status, _ := c.do(admin, "GET", "/api/v1/events?since=yesterday", nil); status != http.StatusBadRequest {
			t.Errorf("since=yesterday: %d, want 400", status)
		}
		status, body = c.do(admin, "POST", "/api/v1/events/replay", map[string]any{"since": time.Now().Add(-time.Hour)})
		if status != http.StatusAccepted || !strings.Contains(string(body), `"replayed": 2`) {
			t.Errorf("replay: %d %s, want the push and the scan", status, body)
		}
		if status, _ := c.do(admin, "POST", "/api/v1/events/replay", map[string]any{"since": time.Now().Add(-time.Hour), "rule": "nope"}); status != http.StatusNotFound {
			t.Errorf("replay to a missing rule: %d, want 404", status)
		}
		status, body = c.do(admin, "GET", "/api/v1/dead-letters", nil)
		if status != http.StatusOK {
			t.Errorf("dead letters: %d %s", status, body)
		}
		status, body = c.do(admin, "POST", "/api/v1/dead-letters/replay", map[string]any{})
		if status != http.StatusAccepted || !strings.Contains(string(body), `"replayed": 0`) || !strings.Contains(string(body), `"refused": []`) {
			t.Errorf("replay of no dead letters: %d %s", status, body)
		}
	})
}

// Bodies that are not what the API takes are refused with a reason.
func TestBadBodies(t *testing.T) {
	s := servertest.Start(t, servertest.Options{Feeds: []string{}})
	for _, tc := range []struct{ name, path, body, want string }{
		{"unknown field", "/api/v1/tokens", `{"name": "a", "role": "reader", "admin": true}`, "unknown field"},
		{"two values", "/api/v1/tokens", `{"name": "a", "role": "reader"} {}`, "more than one"},
		{"not JSON", "/api/v1/tokens", `name=a`, "invalid character"},
		{"too big", "/api/v1/tokens", `{"name": "` + strings.Repeat("a", 2<<20) + `"}`, "over"},
		{"rule too big", "/api/v1/rules/r", `{"pattern": {"source": ["` + strings.Repeat("a", 70<<10) + `"]}}`, "over"},
	} {
		method := "POST"
		if strings.Contains(tc.path, "rules") {
			method = "PUT"
		}
		status, body := s.API(t, method, tc.path, []byte(tc.body))
		if status != http.StatusBadRequest || !strings.Contains(string(body), tc.want) {
			t.Errorf("%s: %d %.200s, want 400 with %q", tc.name, status, body, tc.want)
		}
	}
}

// whoami names the token a request carries, whatever its role, and never
// its secret; a pipeline naming a hosted repository that is not there is
// refused at put, one whose branch has no commit yet is stored with a
// warning.
func TestWhoamiAndPipelineSource(t *testing.T) {
	var log logbuf.Buffer
	s := servertest.Start(t, servertest.Options{Feeds: []string{}, Config: server.Config{Logger: slog.New(slog.NewTextHandler(&log, nil))}})
	c := newClient(t, s)
	status, body := c.do(s.Token, "POST", "/api/v1/tokens", map[string]string{"name": "ci", "role": "pusher"})
	if status != http.StatusCreated {
		t.Fatalf("create token: %d %s", status, body)
	}
	var created struct{ Secret string }
	if err := json.Unmarshal(body, &created); err != nil {
		t.Fatal(err)
	}
	status, body = c.do(created.Secret, "GET", "/api/v1/whoami", nil)
	if status != http.StatusOK || !strings.Contains(string(body), `"name": "ci"`) || !strings.Contains(string(body), `"role": "pusher"`) ||
		strings.Contains(string(body), created.Secret) {
		t.Errorf("whoami: %d %s", status, body)
	}
	if status, _ := c.do("", "GET", "/api/v1/whoami", nil); status != http.StatusUnauthorized {
		t.Errorf("whoami without a token: %d", status)
	}
	def := "name: app\nsource: {repository: app, branch: main}\nbuild: {repository: shop/app}\napproval: {mode: person}\n"
	status, body = c.doRaw(s.Token, "PUT", "/api/v1/pipelines/app", "application/yaml", []byte(def))
	if status != http.StatusBadRequest || !strings.Contains(string(body), "scangate repo create app") {
		t.Errorf("a pipeline of a repository that is not there: %d %s", status, body)
	}
	if status, body := c.do(s.Token, "POST", "/api/v1/repositories", map[string]string{"name": "app"}); status != http.StatusCreated {
		t.Fatalf("create repository: %d %s", status, body)
	}
	status, body = c.doRaw(s.Token, "PUT", "/api/v1/pipelines/app", "application/yaml", []byte(def))
	if status != http.StatusOK || !strings.Contains(string(body), "branch main of repository app has no commit yet") {
		t.Errorf("a pipeline of an empty repository: %d %s", status, body)
	}
	// Each change is in the audit log with who made it; a secret never is.
	logged := log.String()
	for _, want := range []string{`audit: create token" component=api token=test-admin name=ci role=pusher`, `audit: create repository" component=api token=test-admin repository=app`,
		`audit: put pipeline" component=api token=test-admin pipeline=app version=1`} {
		if !strings.Contains(logged, want) {
			t.Errorf("the audit log lacks %s:\n%s", want, logged)
		}
	}
	if strings.Contains(logged, created.Secret) {
		t.Errorf("the log holds a token's secret")
	}
}
