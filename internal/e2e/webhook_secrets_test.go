package e2e

import (
	"context"
	"encoding/json"
	"log/slog"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/scangate/scangate/internal/auth"
	"github.com/scangate/scangate/internal/events"
	"github.com/scangate/scangate/internal/events/eventstest"
	"github.com/scangate/scangate/internal/imagetest"
	"github.com/scangate/scangate/internal/logbuf"
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
	logs := &logbuf.Buffer{}
	s := servertest.Start(t, servertest.Options{Feeds: []string{}, Config: server.Config{
		DeliveryRetryWindow: 2 * time.Second,
		Logger:              slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug})),
	}})
	rc := eventstest.NewReceiver(t, func(int) int { return http.StatusServiceUnavailable })
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
	eventstest.WaitFor(t, 30*time.Second, "a dead letter", func() bool { return pending() > 0 })
	if status, body := s.API(t, http.MethodPost, "/api/v1/dead-letters/replay", map[string]any{}); status != http.StatusAccepted || !strings.Contains(string(body), `"replayed": 1`) {
		t.Fatalf("replay: %d %s", status, body)
	}
	// The first delivery's failures may have opened the URL's circuit: the
	// replay then waits out its cool-down (30 s, and up to half again).
	eventstest.WaitFor(t, 90*time.Second, "the replay to fail for its window", func() bool { return pending() > 0 })
	eventstest.WaitIdle(t, s.Store)
	if got := rc.Requests(); len(got) < 4 || got[0].Path != "/services/T0/tok3nPATH" {
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
	rc := eventstest.NewReceiver(t, eventstest.OK)
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
	eventstest.WaitFor(t, 30*time.Second, "a dead letter", func() bool {
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
	if n := len(rc.Requests()); n != 0 {
		t.Errorf("the receiver on 127.0.0.1 got %d requests", n)
	}
}
