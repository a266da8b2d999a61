package events_test

import (
	"context"
	"encoding/json"
	"log/slog"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/scangate/scangate/internal/auth"
	"github.com/scangate/scangate/internal/dnstest"
	"github.com/scangate/scangate/internal/egress"
	"github.com/scangate/scangate/internal/events"
	"github.com/scangate/scangate/internal/imagetest"
	"github.com/scangate/scangate/internal/secret"
	"github.com/scangate/scangate/internal/server"
	"github.com/scangate/scangate/internal/servertest"
)

// A webhook's URL carries a token in its user information, path and query,
// as chat webhooks do, and the rule a signing secret. Through a put, failed
// deliveries, a dead letter and its replay, none of them appears in the
// server's log (at debug level), in any file of its data folder (the
// database and its WAL, with the job queue's arguments and errors, the
// dead letters and the event log), or in what a reader is shown; the
// admin sees the URL whole, and no one the secret.
func TestWebhookSecretsStaySealed(t *testing.T) {
	t.Parallel()
	logs := &servertest.LogBuffer{}
	s := servertest.Start(t, servertest.Options{Feeds: []string{}, Config: server.Config{
		DeliveryRetryWindow: 2 * time.Second,
		Logger:              slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug})),
	}})
	rc := newReceiver(t, func(int) int { return http.StatusServiceUnavailable })
	secrets := []string{"tok3nPASS", "tok3nPATH", "tok3nQUERY", "sign-s3cret"}
	hook := strings.Replace(rc.URL, "http://", "http://bot:tok3nPASS@", 1) + "/services/T0/tok3nPATH?token=tok3nQUERY"
	putRuleAPI(t, s, "chat", `{"pattern": {"detail-type": ["Image Push"]},
	  "targets": [{"id": "chat", "webhook": "`+hook+`", "secret": "sign-s3cret"}]}`)

	viewer, _, err := auth.NewTokens(s.Store).Create(context.Background(), "viewer", auth.RoleReader)
	if err != nil {
		t.Fatal(err)
	}
	rules := func(token string) events.Target {
		t.Helper()
		status, body := s.APIAs(t, token, http.MethodGet, "/api/v1/rules", nil)
		if status != http.StatusOK {
			t.Fatalf("rules: %d %s", status, body)
		}
		var out struct{ Rules []events.Rule }
		if err := json.Unmarshal(body, &out); err != nil {
			t.Fatal(err)
		}
		for _, r := range out.Rules {
			if r.Name == "chat" {
				return r.Targets[0]
			}
		}
		t.Fatalf("no rule chat in %s", body)
		return events.Target{}
	}
	if got := rules(viewer); got.Webhook != rc.URL+"/…" || got.Secret != "********" {
		t.Errorf("a reader sees the target as %+v, want webhook %s/… and the secret masked", got, rc.URL)
	}
	if got := rules(s.Token); got.Webhook != hook || got.Secret != "********" {
		t.Errorf("an admin sees the target as %+v, want the whole webhook and the secret masked", got)
	}

	img := imagetest.Build(t, imagetest.Layer(t, imagetest.Entry{Name: "hello.txt", Body: "hello\n"}))
	s.Push(t, "shop/hello:1", img)
	pending := func() int {
		dl, err := events.NewBus(s.Store, nil, events.BusOptions{}).DeadLetters(context.Background(), true)
		if err != nil {
			t.Fatal(err)
		}
		return len(dl)
	}
	waitFor(t, 30*time.Second, "a dead letter", func() bool { return pending() > 0 })
	if status, body := s.API(t, http.MethodPost, "/api/v1/dead-letters/replay", map[string]any{}); status != http.StatusAccepted || !strings.Contains(string(body), `"replayed": 1`) {
		t.Fatalf("replay: %d %s", status, body)
	}
	// The first delivery's failures may have opened the URL's circuit: the
	// replay then waits out its cool-down (30 s, and up to half again).
	waitFor(t, 90*time.Second, "the replay to fail for its window", func() bool { return pending() > 0 })
	waitIdle(t, s.Store)
	if got := rc.requests(); len(got) < 4 || got[0].path != "/services/T0/tok3nPATH" {
		t.Fatalf("the receiver saw %d requests (first %+v), want the attempts of a delivery and of its replay", len(got), got)
	}

	for _, path := range []string{"/api/v1/rules", "/api/v1/dead-letters", "/api/v1/events?limit=1000"} {
		_, body := s.APIAs(t, viewer, http.MethodGet, path, nil)
		for _, sec := range secrets {
			if strings.Contains(string(body), sec) {
				t.Errorf("a reader's %s holds %s: %s", path, sec, body)
			}
		}
	}
	for _, sec := range secrets {
		if strings.Contains(logs.String(), sec) {
			t.Errorf("the server's log holds %s", sec)
		}
	}
	if !strings.Contains(logs.String(), "dead-letter") || !strings.Contains(logs.String(), rc.URL+"/…") {
		t.Errorf("the log does not tell of the failed delivery to %s/…; the test looked at the wrong lines:\n%s", rc.URL, logs.String())
	}
	if found := servertest.FilesHolding(t, s.DataDir, nil, secrets...); len(found) > 0 {
		t.Errorf("secrets in the clear in the data folder: %v", found)
	}
}

// A default server (no --allow-private-targets) refuses, when the rule is
// put, webhooks on the cloud metadata address and on loopback, saying so;
// a rule that got past the put (stored by an older scangate) is refused
// when its delivery dials: its receiver on 127.0.0.1 gets nothing, and the
// dead letter says why.
func TestDefaultServerRefusesInternalWebhooks(t *testing.T) {
	t.Parallel()
	s := servertest.Start(t, servertest.Options{Feeds: []string{}, StrictEgress: true,
		Config: server.Config{DeliveryRetryWindow: time.Second}})
	rc := newReceiver(t, ok)
	for hook, kind := range map[string]string{
		"http://169.254.169.254/latest/meta-data/iam/security-credentials/": "cloud metadata",
		rc.URL + "/hook": "loopback",
		"http://localhost:" + rc.URL[strings.LastIndex(rc.URL, ":")+1:] + "/hook": "loopback",
		"http://10.0.0.7/hook": "private",
	} {
		status, body := s.API(t, http.MethodPut, "/api/v1/rules/internal", []byte(`{"pattern": {"detail-type": ["Image Push"]},
		  "targets": [{"id": "x", "webhook": "`+hook+`"}]}`))
		if status != http.StatusBadRequest || !strings.Contains(string(body), kind) || !strings.Contains(string(body), "--allow-private-targets") {
			t.Errorf("put a webhook to %s: %d %s, want 400 naming the %s address and the setting", hook, status, body, kind)
		}
	}
	if err := events.NewRules(s.Store).Put(context.Background(), events.Rule{Name: "old", Pattern: json.RawMessage(`{"detail-type": ["Image Push"]}`),
		Targets: []events.Target{{ID: "x", Webhook: rc.URL + "/hook"}}}); err != nil {
		t.Fatal(err)
	}
	s.Push(t, "shop/hello:1", imagetest.Build(t, imagetest.Layer(t, imagetest.Entry{Name: "hello.txt", Body: "hello\n"})))
	var dl []events.DeadLetter
	waitFor(t, 30*time.Second, "a dead letter", func() bool {
		var err error
		dl, err = events.NewBus(s.Store, nil, events.BusOptions{}).DeadLetters(context.Background(), true)
		if err != nil {
			t.Fatal(err)
		}
		return len(dl) > 0
	})
	if !strings.Contains(dl[0].Error, "127.0.0.1 is a loopback address") {
		t.Errorf("dead letter error %q, want the refusal", dl[0].Error)
	}
	if n := len(rc.requests()); n != 0 {
		t.Errorf("the receiver on 127.0.0.1 got %d requests", n)
	}
}

// DNS rebinding: a webhook's name resolves to a public address when the
// rule is put and to 127.0.0.1 when the event is delivered; the delivery
// is refused when it dials, and the receiver gets nothing.
func TestRebindingWebhookIsRefusedWhenDelivered(t *testing.T) {
	dns := dnstest.Start(t)
	rc := newReceiver(t, ok)
	h := startBus(t, events.BusOptions{Egress: egress.New(nil).WithResolver(dns.Resolver())})
	hook := "http://hooks.rebind.test:" + rc.URL[strings.LastIndex(rc.URL, ":")+1:] + "/p4th"
	dns.Set("hooks.rebind.test", "93.184.215.14")
	if err := h.bus.PutRule(context.Background(), events.Rule{Name: "scans", Pattern: json.RawMessage(`{"detail-type": ["Scan"]}`),
		Targets: []events.Target{{ID: "hook", Webhook: hook}}}); err != nil {
		t.Fatalf("put while the name is public: %v", err)
	}
	dns.Set("hooks.rebind.test", "127.0.0.1")
	h.publish(t, "Scan", "shop/api", time.Time{})
	waitFor(t, 20*time.Second, "a failed attempt", func() bool { return h.failedAttempts() > 0 })
	h.mu.Lock()
	err := h.attempts[0].err
	h.mu.Unlock()
	if err == nil || !strings.Contains(err.Error(), "127.0.0.1 is a loopback address") || strings.Contains(err.Error(), "p4th") {
		t.Errorf("attempt: %v, want the refusal of 127.0.0.1, without the URL's path", err)
	}
	if n := len(rc.requests()); n != 0 {
		t.Errorf("the receiver got %d requests", n)
	}
	// And with the name public again (a rule an admin allows), it goes.
	if err := h.bus.PutRule(context.Background(), events.Rule{Name: "scans", Pattern: json.RawMessage(`{"detail-type": ["Scan"]}`),
		Targets: []events.Target{{ID: "hook", Webhook: hook}}}); err == nil {
		t.Error("a put while the name resolves to 127.0.0.1 was taken")
	}
}

// Rules and dead letters an older scangate stored in the clear are sealed
// by the Resealer (which the server runs when it starts): the table no
// longer holds the URL or the secret, the rule still delivers to them, and
// the old dead letter shows the redacted URL and can still be replayed.
func TestRulesStoredInTheClearAreSealed(t *testing.T) {
	ctx := context.Background()
	h := startBus(t, events.BusOptions{})
	rc := newReceiver(t, ok)
	hook := rc.URL + "/services/tok3nPATH"
	if _, err := h.st.Writer().Exec(`INSERT INTO rules (name, pattern, targets, created_at, updated_at) VALUES ('old', '{"detail-type": ["Scan"]}', $1, '2026-01-01T00:00:00Z', '2026-01-01T00:00:00Z')`,
		`[{"id": "hook", "webhook": "`+hook+`", "secret": "sign-s3cret"}]`); err != nil {
		t.Fatal(err)
	}
	e := h.publish(t, "Other", "shop/api", time.Time{})
	if _, err := h.st.Writer().Exec(`INSERT INTO dead_letters (event_id, rule, target, attempts, error, failed_at) VALUES ($1, 'old', $2, 3, $3, '2026-01-01T00:00:00Z')`,
		e.ID, `{"id": "hook", "webhook": "`+hook+`", "secret": "sign-s3cret"}`, `webhook `+hook+`: 503 Service Unavailable`); err != nil {
		t.Fatal(err)
	}
	keys, err := secret.OpenIn(filepath.Dir(h.st.Path()))
	if err != nil {
		t.Fatal(err)
	}
	n, err := keys.ResealAll(ctx, h.st, events.Reseal)
	if err != nil || n != 2 {
		t.Fatalf("reseal: %d, %v; want the rule and the dead letter", n, err)
	}
	var targets, letter, letterErr string
	if err := h.st.Reader().QueryRow(`SELECT targets FROM rules WHERE name = 'old'`).Scan(&targets); err != nil {
		t.Fatal(err)
	}
	if err := h.st.Reader().QueryRow(`SELECT target, error FROM dead_letters`).Scan(&letter, &letterErr); err != nil {
		t.Fatal(err)
	}
	for _, stored := range []string{targets, letter, letterErr} {
		if strings.Contains(stored, "tok3nPATH") || strings.Contains(stored, "sign-s3cret") {
			t.Errorf("after the reseal a row holds a secret: %s", stored)
		}
	}
	r, err := events.NewRules(h.st).Get(ctx, "old")
	if err != nil || r.Targets[0].Webhook != hook || r.Targets[0].Secret != "sign-s3cret" {
		t.Fatalf("the sealed rule reads %+v, %v", r, err)
	}
	if again, err := keys.ResealAll(ctx, h.st, events.Reseal); err != nil || again != 0 {
		t.Errorf("a second reseal changed %d rows (%v), want none", again, err)
	}
	h.publish(t, "Scan", "shop/api", time.Time{})
	waitFor(t, 20*time.Second, "the delivery", func() bool { return len(rc.delivered()) == 1 })
	if got := rc.delivered()[0]; got.path != "/services/tok3nPATH" || !verify(got.header.Get(events.HeaderSignature), "sign-s3cret", got.body) {
		t.Errorf("delivered to %s with signature %q", got.path, got.header.Get(events.HeaderSignature))
	}
	dl, err := h.bus.DeadLetters(ctx, true)
	if err != nil || len(dl) != 1 || dl[0].Target.Webhook != rc.URL+"/…" || dl[0].Error != "webhook "+rc.URL+"/…: 503 Service Unavailable" {
		t.Fatalf("dead letters %+v, %v", dl, err)
	}
	// The old letter's event no longer matches the rule's pattern: the
	// replay refuses it for that reason, not for a changed target.
	_, refused, err := h.bus.ReplayDeadLetters(ctx, nil)
	if err != nil || len(refused) != 1 || !strings.Contains(refused[0].Reason, "no longer matches") {
		t.Errorf("replay: %+v, %v; want it refused as not matching", refused, err)
	}
}
