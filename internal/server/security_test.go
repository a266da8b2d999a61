package server_test

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"database/sql"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/http"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/scangate/scangate/internal/auth"
	"github.com/scangate/scangate/internal/events"
	"github.com/scangate/scangate/internal/imagetest"
	sgserver "github.com/scangate/scangate/internal/server"
	"github.com/scangate/scangate/internal/servertest"
)

// X-Forwarded-* are believed from the proxies the operator names and
// removed from everyone else's requests: the registry builds its upload
// URLs from them, and the failed-authentication limit keys clients by the
// address they give.
func TestForwardedHeadersOnlyFromTrustedProxies(t *testing.T) {
	forged := http.Header{"X-Forwarded-Host": {"evil.example"}, "X-Forwarded-Proto": {"https"}, "X-Forwarded-For": {"203.0.113.7"}}
	var logs logBuffer
	s := servertest.Start(t, servertest.Options{Feeds: []string{}, Config: sgserver.Config{Logger: logs.logger()}})
	resp, body := do(t, http.DefaultClient, http.MethodPost, "http://"+s.Addr+"/v2/fwd/app/blobs/uploads/", s.Token, nil, forged)
	if loc := resp.Header.Get("Location"); resp.StatusCode != http.StatusAccepted || !strings.HasPrefix(loc, "http://"+s.Addr+"/v2/fwd/app/") {
		t.Errorf("an upload started with forged X-Forwarded-*: %d %s, Location %q; want the server's own address", resp.StatusCode, body, loc)
	}
	do(t, http.DefaultClient, http.MethodGet, "http://"+s.Addr+"/api/v1/images", "sgt_forged", nil, forged)
	if recs := logs.records("authentication failed"); len(recs) != 1 || recs[0]["client"] != "127.0.0.1" {
		t.Errorf("a failed authentication with a forged X-Forwarded-For logged as %v; want client 127.0.0.1", recs)
	}

	proxied := servertest.Start(t, servertest.Options{Feeds: []string{}, Config: sgserver.Config{
		TrustedProxies: []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")}}})
	resp, body = do(t, http.DefaultClient, http.MethodPost, "http://"+proxied.Addr+"/v2/fwd/app/blobs/uploads/", proxied.Token, nil, forged)
	if loc := resp.Header.Get("Location"); resp.StatusCode != http.StatusAccepted || !strings.HasPrefix(loc, "https://evil.example/v2/fwd/app/") {
		t.Errorf("an upload through a trusted proxy: %d %s, Location %q; want the proxy's https://evil.example", resp.StatusCode, body, loc)
	}
}

// Failed authentications are logged, without the credentials, and limited
// per client: past the burst a client's credentials, even valid ones, are
// refused with 429 until it earns an attempt back, on every route; other
// clients, and requests without credentials, go on.
func TestFailedAuthenticationsLimited(t *testing.T) {
	var logs logBuffer
	s := servertest.Start(t, servertest.Options{Feeds: []string{}, Config: sgserver.Config{
		Logger:         logs.logger(),
		TrustedProxies: []netip.Prefix{netip.MustParsePrefix("127.0.0.1/32")},
		Limits:         sgserver.Limits{AuthFailures: 3, AuthFailureInterval: time.Hour},
	}})
	base := "http://" + s.Addr
	from := func(ip string) http.Header { return http.Header{"X-Forwarded-For": {ip}} }
	guesses := []string{"sgt_guess-one", "sgt_guess-two", "sgt_guess-three"}
	for i, path := range []string{"/api/v1/images", "/v2/", "/metrics"} {
		if resp, body := do(t, http.DefaultClient, http.MethodGet, base+path, guesses[i], nil, from("203.0.113.7")); resp.StatusCode != http.StatusUnauthorized {
			t.Fatalf("guess %d at %s: %d %s, want 401", i+1, path, resp.StatusCode, body)
		}
	}
	for _, path := range []string{"/api/v1/images", "/v2/"} {
		resp, body := do(t, http.DefaultClient, http.MethodGet, base+path, s.Token, nil, from("203.0.113.7"))
		if resp.StatusCode != http.StatusTooManyRequests || resp.Header.Get("Retry-After") == "" {
			t.Errorf("a valid token from the client past its limit at %s: %d %s (Retry-After %q), want 429 with Retry-After",
				path, resp.StatusCode, body, resp.Header.Get("Retry-After"))
		}
	}
	if resp, body := do(t, http.DefaultClient, http.MethodGet, base+"/api/v1/images", s.Token, nil, from("198.51.100.9")); resp.StatusCode != http.StatusOK {
		t.Errorf("another client's valid token: %d %s, want 200", resp.StatusCode, body)
	}
	if resp, _ := do(t, http.DefaultClient, http.MethodGet, base+"/readyz", "", nil, from("203.0.113.7")); resp.StatusCode != http.StatusOK {
		t.Errorf("a request without credentials from the limited client: %d, want 200", resp.StatusCode)
	}
	recs := logs.records("authentication failed")
	if len(recs) != 3 {
		t.Fatalf("%d failed authentications logged, want 3:\n%s", len(recs), logs.String())
	}
	for _, r := range recs {
		if r["client"] != "203.0.113.7" || r["path"] == "" {
			t.Errorf("logged %v; want the client 203.0.113.7 and the path", r)
		}
	}
	if n := len(logs.records("too many failed authentications: the client's credentials are refused for a while")); n != 1 {
		t.Errorf("the block logged %d times, want once", n)
	}
	for _, g := range append(guesses, s.Token) {
		if strings.Contains(logs.String(), g) {
			t.Errorf("the log holds a credential (%s)", g)
		}
	}
}

// /metrics needs a token, any role's, unless --metrics-public.
func TestMetricsNeedAToken(t *testing.T) {
	s := servertest.Start(t, servertest.Options{Feeds: []string{}})
	reader, _, err := auth.NewTokens(s.Store).Create(context.Background(), "prometheus", auth.RoleReader)
	if err != nil {
		t.Fatal(err)
	}
	url := "http://" + s.Addr + "/metrics"
	if resp, _ := do(t, http.DefaultClient, http.MethodGet, url, "", nil, nil); resp.StatusCode != http.StatusUnauthorized {
		t.Errorf("/metrics without a token: %d, want 401", resp.StatusCode)
	}
	if resp, body := do(t, http.DefaultClient, http.MethodGet, url, reader, nil, nil); resp.StatusCode != http.StatusOK || !strings.Contains(string(body), "scangate_jobs_pending") {
		t.Errorf("/metrics with a reader token: %d, want 200 and the metrics", resp.StatusCode)
	}
	public := servertest.Start(t, servertest.Options{Feeds: []string{}, Config: sgserver.Config{MetricsPublic: true}})
	if resp, _ := do(t, http.DefaultClient, http.MethodGet, "http://"+public.Addr+"/metrics", "", nil, nil); resp.StatusCode != http.StatusOK {
		t.Errorf("/metrics with --metrics-public: %d, want 200", resp.StatusCode)
	}
}

// /hooks/git answers a push for a repository no pipeline watches exactly
// as it answers an unsigned push for one a pipeline watches: nobody learns
// which repositories scangate builds by asking.
func TestGitHookAnswersUnknownAsUnsigned(t *testing.T) {
	s := servertest.Start(t, servertest.Options{Feeds: []string{}})
	watched := "http://" + s.Addr + "/git/upstream.git"
	def := fmt.Sprintf(`name: hooked
source: {url: '%s', branch: main, webhook-secret: the-secret}
build: {context: ., dockerfile: Dockerfile, repository: apps/hooked}
approval: {policy: {thresholds: {CRITICAL: 0}}}
`, watched)
	if code, body := s.API(t, http.MethodPut, "/api/v1/pipelines/hooked", []byte(def)); code != http.StatusOK {
		t.Fatalf("put the pipeline: %d %s", code, body)
	}
	hook := func(cloneURL, secret string) (int, string) {
		body := fmt.Sprintf(`{"ref": "refs/heads/main", "before": "%s", "after": "%s", "repository": {"clone_url": %q}}`,
			strings.Repeat("0", 40), strings.Repeat("a", 40), cloneURL)
		m := hmac.New(sha256.New, []byte(secret))
		m.Write([]byte(body))
		resp, msg := do(t, http.DefaultClient, http.MethodPost, "http://"+s.Addr+"/hooks/git", "", []byte(body), http.Header{
			"Content-Type": {"application/json"}, "X-GitHub-Event": {"push"},
			"X-Hub-Signature-256": {"sha256=" + hex.EncodeToString(m.Sum(nil))}})
		return resp.StatusCode, string(msg)
	}
	unknownStatus, unknownBody := hook("http://"+s.Addr+"/git/nobody.git", "any-secret")
	unsignedStatus, unsignedBody := hook(watched, "not-the-secret")
	if unknownStatus != http.StatusForbidden || unknownStatus != unsignedStatus || unknownBody != unsignedBody {
		t.Errorf("unknown repository: %d %q; unsigned push: %d %q; want the same 403", unknownStatus, unknownBody, unsignedStatus, unsignedBody)
	}
}

// A token with an expiry works until then, and is refused after it by the
// API, the registry and git alike, as an unknown token is.
func TestTokenExpiry(t *testing.T) {
	s := servertest.Start(t, servertest.Options{Feeds: []string{}})
	base := "http://" + s.Addr
	expires := time.Now().Add(30 * 24 * time.Hour).UTC().Truncate(time.Second)
	code, body := s.API(t, http.MethodPost, "/api/v1/tokens", map[string]any{"name": "ci", "role": "pusher", "expiresAt": expires})
	var created struct {
		Secret string     `json:"secret"`
		Token  auth.Token `json:"token"`
	}
	if err := json.Unmarshal(body, &created); err != nil || code != http.StatusCreated || created.Token.ExpiresAt == nil || !created.Token.ExpiresAt.Equal(expires) {
		t.Fatalf("create a token with an expiry: %d %s", code, body)
	}
	secret := created.Secret
	if code, body := s.API(t, http.MethodPost, "/api/v1/tokens", map[string]any{"name": "late", "role": "reader", "expiresAt": time.Now().Add(-time.Hour)}); code != http.StatusBadRequest {
		t.Errorf("a token that expired before it was made: %d %s, want 400", code, body)
	}
	if code, body := s.APIAs(t, secret, http.MethodPost, "/api/v1/repositories", nil); code == http.StatusUnauthorized {
		t.Fatalf("the token before its expiry: %d %s", code, body)
	}
	s.Push(t, "expiry/app:1", imagetest.Build(t, imagetest.Layer(t, imagetest.Entry{Name: "a", Body: "a"})))

	// A month on: the expiry passed.
	if _, err := s.Store.Writer().Exec(`UPDATE tokens SET expires_at = $1 WHERE name = 'ci'`, time.Now().Add(-time.Minute).UTC().Format(time.RFC3339)); err != nil {
		t.Fatal(err)
	}
	for _, path := range []string{"/api/v1/images", "/v2/expiry/app/manifests/1", "/git/any.git/info/refs?service=git-upload-pack"} {
		if resp, body := do(t, http.DefaultClient, http.MethodGet, base+path, secret, nil, nil); resp.StatusCode != http.StatusUnauthorized {
			t.Errorf("an expired token at %s: %d %s, want 401", path, resp.StatusCode, body)
		}
	}
	if _, err := auth.NewTokens(s.Store).Verify(context.Background(), secret); err == nil || err.Error() != "invalid token: expired" {
		t.Errorf("Verify of the expired token: %v", err)
	}
}

// The server deletes what is older than its retention: events (not those
// a dead letter names), dead letters, and ended executions (not those
// whose approval decided, which lose their build log).
func TestRetention(t *testing.T) {
	s := servertest.Start(t, servertest.Options{Feeds: []string{}, Config: sgserver.Config{
		Retention: sgserver.Retention{Events: 30 * 24 * time.Hour, Executions: 30 * 24 * time.Hour, DeadLetters: 7 * 24 * time.Hour, Every: 200 * time.Millisecond}}})
	digest := s.Push(t, "retention/app:1", imagetest.Build(t, imagetest.Layer(t, imagetest.Entry{Name: "a", Body: "a"})))
	s.WaitScan(t, "retention/app", digest, 30*time.Second)
	// The rows are made in one transaction: the server's sweep runs every
	// 200 ms, and one between two inserts deleted an old execution before
	// its stage was inserted (seen on PostgreSQL in CI).
	tx, err := s.Store.Writer().Begin()
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Rollback()
	exec := func(q string, args ...any) {
		t.Helper()
		if _, err := tx.Exec(q, args...); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
	old, recent := "2020-01-01T00:00:00Z", time.Now().UTC().Format(time.RFC3339)
	oldNano, recentNano := "2020-01-01T00:00:00.000000000Z", time.Now().UTC().Format("2006-01-02T15:04:05.000000000Z07:00")
	log, err := events.ListLog(context.Background(), s.Store, 0, 100)
	if err != nil || len(log) < 2 {
		t.Fatalf("the event log: %d events, %v", len(log), err)
	}
	// The push's event is old and a dead letter names it; the scan's is
	// old; a third is recent.
	exec(`UPDATE events SET time = $1 WHERE id IN ($2, $3)`, old, log[0].Event.ID, log[1].Event.ID)
	exec(`INSERT INTO dead_letters (event_id, rule, target, attempts, error, failed_at) VALUES ($1, 'r', '{}', 3, 'down', $2)`, log[0].Event.ID, recent)
	exec(`INSERT INTO dead_letters (event_id, rule, target, attempts, error, failed_at) VALUES ('gone', 'r', '{}', 3, 'down', $1)`, old)
	exec(`INSERT INTO pipelines (name, version, created_at, updated_at) VALUES ('p', 1, $1, $1)`, oldNano)
	exec(`INSERT INTO pipeline_versions (name, version, doc, created_at) VALUES ('p', 1, '{}', $1)`, oldNano)
	for _, e := range []struct{ id, status, ended string }{
		{"old-failed", "Failed", oldNano}, {"old-approved", "Succeeded", oldNano}, {"old-rejected", "Failed", oldNano},
		{"recent-failed", "Failed", recentNano}, {"running", "InProgress", ""},
	} {
		var ended sql.NullString
		if e.ended != "" {
			ended = sql.NullString{String: e.ended, Valid: true}
		}
		exec(`INSERT INTO executions (id, pipeline, version, status, trigger, commit_sha, ref, build_log, started_at, ended_at)
			VALUES ($1, 'p', 1, $2, 'push', $3, 'refs/heads/main', 'step 1/3', $4, $5)`, e.id, e.status, strings.Repeat("c", 40), oldNano, ended)
		exec(`INSERT INTO stages (execution_id, name, position, status) VALUES ($1, 'Build', 1, 'Succeeded')`, e.id)
	}
	for id, status := range map[string]string{"old-approved": "Approved", "old-rejected": "Rejected", "old-failed": "Expired"} {
		exec(`INSERT INTO approvals (id, execution_id, pipeline, stage, action, token_hash, repository, image_digest, status, created_at, expires_at, decided_at)
			VALUES ($1, $2, 'p', 'Approval', 'Approve', 'h', 'retention/app', $3, $4, $5, $5, $5)`, "a-"+id, id, digest, status, oldNano)
	}
	if err := tx.Commit(); err != nil {
		t.Fatal(err)
	}

	count := func(q string) int {
		var n int
		if err := s.Store.Reader().QueryRow(q).Scan(&n); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
		return n
	}
	waitUntil(t, time.Minute, "the old rows to go", func() bool {
		return count(`SELECT count(*) FROM dead_letters WHERE event_id = 'gone'`) == 0 &&
			count(`SELECT count(*) FROM executions WHERE id = 'old-failed'`) == 0 &&
			count(`SELECT count(*) FROM events WHERE id = '`+log[1].Event.ID+`'`) == 0
	})
	if n := count(`SELECT count(*) FROM events WHERE id = '` + log[0].Event.ID + `'`); n != 1 {
		t.Errorf("the old event a dead letter names was deleted")
	}
	if n := count(`SELECT count(*) FROM dead_letters`); n != 1 {
		t.Errorf("%d dead letters left, want the recent one", n)
	}
	if n := count(`SELECT count(*) FROM stages WHERE execution_id = 'old-failed'`); n != 0 {
		t.Errorf("the deleted execution's stages are left")
	}
	rows, err := s.Store.Reader().Query(`SELECT id, build_log FROM executions ORDER BY id`)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	got := map[string]string{}
	for rows.Next() {
		var id, logText string
		if err := rows.Scan(&id, &logText); err != nil {
			t.Fatal(err)
		}
		got[id] = logText
	}
	want := map[string]string{"old-approved": "", "old-rejected": "", "recent-failed": "step 1/3", "running": "step 1/3"}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("executions left (id: build log): %v, want %v", got, want)
	}
}
