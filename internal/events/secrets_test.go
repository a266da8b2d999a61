package events_test

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/scangate/scangate/internal/dnstest"
	"github.com/scangate/scangate/internal/egress"
	"github.com/scangate/scangate/internal/events"
	"github.com/scangate/scangate/internal/events/eventstest"
	"github.com/scangate/scangate/internal/secret"
)

// DNS rebinding: a webhook's name resolves to a public address when the
// rule is put and to 127.0.0.1 when the event is delivered; the delivery
// is refused when it dials, and the receiver gets nothing.
func TestRebindingWebhookIsRefusedWhenDelivered(t *testing.T) {
	dns := dnstest.Start(t)
	rc := eventstest.NewReceiver(t, eventstest.OK)
	h := startBus(t, events.BusOptions{Egress: egress.New(nil).WithResolver(dns.Resolver())})
	hook := "http://hooks.rebind.test:" + rc.URL[strings.LastIndex(rc.URL, ":")+1:] + "/p4th"
	dns.Set("hooks.rebind.test", "93.184.215.14")
	if err := h.bus.PutRule(context.Background(), events.Rule{Name: "scans", Pattern: json.RawMessage(`{"detail-type": ["Scan"]}`),
		Targets: []events.Target{{ID: "hook", Webhook: hook}}}); err != nil {
		t.Fatalf("put while the name is public: %v", err)
	}
	dns.Set("hooks.rebind.test", "127.0.0.1")
	h.publish(t, "Scan", "shop/api", time.Time{})
	eventstest.WaitFor(t, 20*time.Second, "a failed attempt", func() bool { return h.failedAttempts() > 0 })
	h.mu.Lock()
	err := h.attempts[0].err
	h.mu.Unlock()
	if err == nil || !strings.Contains(err.Error(), "127.0.0.1 is a loopback address") || strings.Contains(err.Error(), "p4th") {
		t.Errorf("attempt: %v, want the refusal of 127.0.0.1, without the URL's path", err)
	}
	if n := len(rc.Requests()); n != 0 {
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
	rc := eventstest.NewReceiver(t, eventstest.OK)
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
	keys, err := secret.OpenIn(h.st.DataDir())
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
	eventstest.WaitFor(t, 20*time.Second, "the delivery", func() bool { return len(rc.Delivered()) == 1 })
	if got := rc.Delivered()[0]; got.Path != "/services/tok3nPATH" || !eventstest.Verify(got.Header.Get(events.HeaderSignature), "sign-s3cret", got.Body) {
		t.Errorf("delivered to %s with signature %q", got.Path, got.Header.Get(events.HeaderSignature))
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
