package events_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/riverqueue/river"

	"github.com/scangate/scangate/internal/egress"
	"github.com/scangate/scangate/internal/events"
	"github.com/scangate/scangate/internal/events/eventstest"
	"github.com/scangate/scangate/internal/jobs"
	"github.com/scangate/scangate/internal/store"
)

// busHarness is a Bus working on River over a real SQLite database, as the
// server runs it, with the test's options and built-in handlers.
type busHarness struct {
	st  *store.Store
	bus *events.Bus

	mu       sync.Mutex
	attempts []attempt // every delivery attempt, as OnDelivery hears it
}

type attempt struct {
	rule, target string
	err          error
}

func startBus(t *testing.T, opts events.BusOptions) *busHarness {
	t.Helper()
	ctx := context.Background()
	h := &busHarness{st: openStore(t)}
	if err := jobs.Migrate(ctx, h.st); err != nil {
		t.Fatal(err)
	}
	workers := river.NewWorkers()
	queues := events.Queues()
	queues[river.QueueDefault] = 2
	client, err := jobs.New(h.st, workers, jobs.Config{
		Queues: queues,
		Poll:   50 * time.Millisecond,
	})
	if err != nil {
		t.Fatal(err)
	}
	if opts.Egress == nil {
		// The receivers of these tests run on 127.0.0.1, which a default
		// bus does not deliver to (ssrf_test.go).
		opts.Egress = egress.New(egress.Loopback)
	}
	opts.OnDelivery = func(rule, target string, err error) {
		h.mu.Lock()
		defer h.mu.Unlock()
		h.attempts = append(h.attempts, attempt{rule, target, err})
	}
	h.bus = events.NewBus(h.st, client, opts)
	h.bus.Register(workers)
	if err := client.Start(ctx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		stopCtx, cancel := context.WithTimeout(ctx, 10*time.Second)
		defer cancel()
		if err := client.Stop(stopCtx); err != nil {
			t.Errorf("stop jobs: %v", err)
		}
	})
	return h
}

func (h *busHarness) failedAttempts() int {
	h.mu.Lock()
	defer h.mu.Unlock()
	n := 0
	for _, a := range h.attempts {
		if a.err != nil {
			n++
		}
	}
	return n
}

func (h *busHarness) putRule(t *testing.T, name, pattern string, targets ...events.Target) {
	t.Helper()
	r := events.Rule{Name: name, Pattern: json.RawMessage(pattern), Targets: targets}
	if err := events.NewRules(h.st).Put(context.Background(), r); err != nil {
		t.Fatal(err)
	}
}

// publish logs an event about repo, with the time given (now if zero).
func (h *busHarness) publish(t *testing.T, detailType, repo string, at time.Time) events.Envelope {
	t.Helper()
	e, err := events.New(events.SourceScanner, detailType, []string{"registry.test/" + repo}, map[string]any{"repository-name": repo})
	if err != nil {
		t.Fatal(err)
	}
	if !at.IsZero() {
		e.Time = at
	}
	if err := h.bus.PublishNow(context.Background(), e); err != nil {
		t.Fatal(err)
	}
	return e
}

func noDeadLetters(t *testing.T, b *events.Bus) {
	t.Helper()
	dl, err := b.DeadLetters(context.Background(), false)
	if err != nil {
		t.Fatal(err)
	}
	if len(dl) != 0 {
		t.Errorf("dead letters %+v, want none", dl)
	}
}

// A receiver answering 503 at first gets the event once it answers 200,
// and nothing goes to the dead-letter list.
func TestWebhookReceiverUnavailableThenBack(t *testing.T) {
	t.Parallel()
	h := startBus(t, events.BusOptions{})
	rc := eventstest.NewReceiver(t, func(n int) int {
		if n <= 2 {
			return http.StatusServiceUnavailable
		}
		return http.StatusOK
	})
	h.putRule(t, "scans", `{"detail-type": ["Scan"]}`, events.Target{ID: "hook", Webhook: rc.URL + "/hook", Secret: "k"})
	e := h.publish(t, events.DetailTypeScan, "shop/api", time.Time{})

	eventstest.WaitFor(t, 20*time.Second, "the event to be delivered", func() bool { return len(rc.Delivered()) > 0 })
	eventstest.WaitIdle(t, h.st)
	reqs := rc.Requests()
	if len(reqs) != 3 {
		t.Fatalf("%d requests, want 2 refused and 1 accepted", len(reqs))
	}
	for i, d := range reqs {
		if got := d.Event(t).ID; got != e.ID {
			t.Errorf("request %d carried event %s, want %s", i+1, got, e.ID)
		}
		if d.Header.Get(events.HeaderSignature) != events.Sign("k", d.Body) {
			t.Errorf("request %d: bad signature", i+1)
		}
	}
	if got := eventstest.EventIDs(t, rc.Delivered()); len(got) != 1 {
		t.Errorf("delivered %v, want the event once", got)
	}
	if n := h.failedAttempts(); n != 2 {
		t.Errorf("OnDelivery heard %d failed attempts, want 2", n)
	}
	noDeadLetters(t, h.bus)
}

// A receiver whose port is closed at first gets the event once it listens.
func TestWebhookReceiverPortClosedThenOpen(t *testing.T) {
	t.Parallel()
	h := startBus(t, events.BusOptions{})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	h.putRule(t, "scans", `{"detail-type": ["Scan"]}`, events.Target{ID: "hook", Webhook: "http://" + addr + "/hook"})
	e := h.publish(t, events.DetailTypeScan, "shop/api", time.Time{})

	eventstest.WaitFor(t, 20*time.Second, "a refused attempt", func() bool { return h.failedAttempts() > 0 })
	h.mu.Lock()
	firstErr := h.attempts[0].err
	h.mu.Unlock()
	if !strings.Contains(firstErr.Error(), "refused") {
		t.Errorf("first attempt's error %q, want connection refused", firstErr)
	}

	rc := eventstest.NewHandler(eventstest.OK)
	var ln2 net.Listener
	eventstest.WaitFor(t, 5*time.Second, "to listen on "+addr+" again", func() bool {
		ln2, err = net.Listen("tcp", addr)
		return err == nil
	})
	srv := &http.Server{Handler: rc, ReadHeaderTimeout: 10 * time.Second}
	go func() { _ = srv.Serve(ln2) }()
	t.Cleanup(func() { srv.Close() })

	eventstest.WaitFor(t, 20*time.Second, "the event to be delivered", func() bool { return len(rc.Delivered()) > 0 })
	eventstest.WaitIdle(t, h.st)
	if got := eventstest.EventIDs(t, rc.Delivered()); len(got) != 1 || got[0] != e.ID {
		t.Errorf("delivered %v, want [%s]", got, e.ID)
	}
	noDeadLetters(t, h.bus)
}

// A delivery failing for its whole retry window goes to the dead-letter
// list; a replay once the receiver is back delivers it, and only once.
func TestDeadLetterAndReplay(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	h := startBus(t, events.BusOptions{RetryWindow: 1500 * time.Millisecond})
	rc := eventstest.NewReceiver(t, func(int) int { return http.StatusInternalServerError })
	h.putRule(t, "scans", `{"detail-type": ["Scan"]}`, events.Target{ID: "hook", Webhook: rc.URL + "/hook", Secret: "k"})
	e := h.publish(t, events.DetailTypeScan, "shop/api", time.Time{})

	var dl []events.DeadLetter
	eventstest.WaitFor(t, 20*time.Second, "a dead letter", func() bool {
		var err error
		dl, err = h.bus.DeadLetters(ctx, true)
		if err != nil {
			t.Fatal(err)
		}
		return len(dl) > 0
	})
	eventstest.WaitIdle(t, h.st)
	if len(dl) != 1 {
		t.Fatalf("dead letters %+v, want 1", dl)
	}
	d := dl[0]
	tried := len(rc.Requests())
	// The webhook's path may hold a token: the dead letter shows scheme
	// and host only.
	if d.EventID != e.ID || d.Rule != "scans" || d.Target.ID != "hook" || d.Target.Webhook != rc.URL+"/…" {
		t.Errorf("dead letter %+v: want event %s, rule scans, target hook at %s/…", d, e.ID, rc.URL)
	}
	if d.Attempts < 2 || d.Attempts != tried {
		t.Errorf("dead letter says %d attempts; the receiver saw %d; want the same, at least 2", d.Attempts, tried)
	}
	if !strings.Contains(d.Error, "500 Internal Server Error") || !strings.Contains(d.Error, rc.URL+"/…") || strings.Contains(d.Error, "/hook") {
		t.Errorf("dead letter error %q, want the webhook and its status", d.Error)
	}
	if d.FailedAt.IsZero() || d.ReplayedAt != nil {
		t.Errorf("dead letter failed at %v, replayed at %v", d.FailedAt, d.ReplayedAt)
	}
	if len(rc.Delivered()) != 0 {
		t.Fatal("a failing receiver accepted an event")
	}

	// Replays at once (two operators, a CLI and the API) replay the dead
	// letter once between them.
	rc.SetRespond(eventstest.OK)
	var wg sync.WaitGroup
	replayed := make([]int, 4)
	for i := range replayed {
		wg.Add(1)
		go func() {
			defer wg.Done()
			n, _, err := h.bus.ReplayDeadLetters(ctx, nil)
			if err != nil {
				t.Errorf("ReplayDeadLetters: %v", err)
			}
			replayed[i] = n
		}()
	}
	wg.Wait()
	if n := replayed[0] + replayed[1] + replayed[2] + replayed[3]; n != 1 {
		t.Fatalf("concurrent replays replayed %v, want 1 in all", replayed)
	}
	eventstest.WaitFor(t, 20*time.Second, "the replayed event", func() bool { return len(rc.Delivered()) > 0 })
	all, err := h.bus.DeadLetters(ctx, false)
	if err != nil {
		t.Fatal(err)
	}
	if len(all) != 1 || all[0].ReplayedAt == nil {
		t.Errorf("after the replay, dead letters %+v: want the one, marked replayed", all)
	}
	if pending, _ := h.bus.DeadLetters(ctx, true); len(pending) != 0 {
		t.Errorf("pending dead letters after the replay: %+v", pending)
	}
	got := rc.Delivered()[0]
	if got.Event(t).ID != e.ID || got.Header.Get(events.HeaderSignature) != events.Sign("k", got.Body) || got.Header.Get(events.HeaderRule) != "scans" {
		t.Errorf("replayed delivery: event %s, headers %v", got.Event(t).ID, got.Header)
	}

	// A second replay has nothing to do.
	if n, _, err := h.bus.ReplayDeadLetters(ctx, nil); err != nil || n != 0 {
		t.Errorf("second ReplayDeadLetters = %d, %v; want 0", n, err)
	}
	if n, _, err := h.bus.ReplayDeadLetters(ctx, []int64{d.ID}); err != nil || n != 0 {
		t.Errorf("ReplayDeadLetters of the replayed id = %d, %v; want 0", n, err)
	}
	eventstest.WaitIdle(t, h.st)
	if got := eventstest.EventIDs(t, rc.Delivered()); len(got) != 1 {
		t.Errorf("delivered %v, want the event once", got)
	}
}

// ReplayEvents routes the events logged in a time range again, to the one
// rule named.
func TestReplayEvents(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	h := startBus(t, events.BusOptions{})
	ra, rb := eventstest.NewReceiver(t, eventstest.OK), eventstest.NewReceiver(t, eventstest.OK)
	h.putRule(t, "a", `{"source": ["scangate.scanner"]}`, events.Target{ID: "hook", Webhook: ra.URL})
	h.putRule(t, "b", `{"source": ["scangate.scanner"]}`, events.Target{ID: "hook", Webhook: rb.URL})
	base := time.Date(2026, 1, 2, 10, 0, 0, 0, time.UTC)
	e1 := h.publish(t, events.DetailTypeScan, "one", base)
	e2 := h.publish(t, events.DetailTypeScan, "two", base.Add(time.Hour))
	e3 := h.publish(t, events.DetailTypeScan, "three", base.Add(2*time.Hour))
	eventstest.WaitFor(t, 20*time.Second, "the first deliveries", func() bool { return len(ra.Delivered()) == 3 && len(rb.Delivered()) == 3 })
	eventstest.WaitIdle(t, h.st)

	// From 10:30 to 12:00, both ends included: e2 and e3, to rule a only.
	n, err := h.bus.ReplayEvents(ctx, base.Add(30*time.Minute), base.Add(2*time.Hour), "a")
	if err != nil || n != 2 {
		t.Fatalf("ReplayEvents = %d, %v; want 2", n, err)
	}
	eventstest.WaitFor(t, 20*time.Second, "the replayed deliveries", func() bool { return len(ra.Delivered()) == 5 })
	eventstest.WaitIdle(t, h.st)
	again := eventstest.EventIDs(t, ra.Delivered()[3:])
	slices.Sort(again)
	want := []string{e2.ID, e3.ID}
	slices.Sort(want)
	if got, want := fmt.Sprint(again), fmt.Sprint(want); got != want {
		t.Errorf("rule a got %s again, want %s", got, want)
	}
	if got := len(rb.Delivered()); got != 3 {
		t.Errorf("rule b got %d deliveries, want its first 3 only", got)
	}

	// A range with no events replays nothing.
	if n, err := h.bus.ReplayEvents(ctx, base.Add(-2*time.Hour), base.Add(-time.Hour), ""); err != nil || n != 0 {
		t.Errorf("ReplayEvents of an empty range = %d, %v; want 0", n, err)
	}
	// A rule that does not exist is an error, not a replay to nobody.
	if n, err := h.bus.ReplayEvents(ctx, base, base.Add(3*time.Hour), "typo"); !errors.Is(err, events.ErrNoRule) {
		t.Errorf("ReplayEvents to a missing rule = %d, %v; want ErrNoRule", n, err)
	}
	// No rule named: every rule gets the event again.
	if n, err := h.bus.ReplayEvents(ctx, base, base, ""); err != nil || n != 1 {
		t.Fatalf("ReplayEvents of e1 = %d, %v; want 1", n, err)
	}
	eventstest.WaitFor(t, 20*time.Second, "e1 replayed to both rules", func() bool { return len(ra.Delivered()) == 6 && len(rb.Delivered()) == 4 })
	eventstest.WaitIdle(t, h.st)
	if ra.Delivered()[5].Event(t).ID != e1.ID || rb.Delivered()[3].Event(t).ID != e1.ID {
		t.Error("the replay of 10:00 sent another event than e1")
	}
}

// A built-in handler that fails once is called again and its event is
// not lost; running the route job of an event again (as after a crash)
// queues no second delivery to any target.
func TestBuiltinHandlerRetriedAndRoutingOnce(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	h := startBus(t, events.BusOptions{})
	var mu sync.Mutex
	calls := map[string]int{}
	handled := map[string]int{}
	err := h.bus.Handle("gate", `{"detail-type": ["Scan"]}`, func(_ context.Context, e events.Envelope) error {
		mu.Lock()
		defer mu.Unlock()
		calls[e.ID]++
		if calls[e.ID] == 1 {
			return errors.New("gate: database busy")
		}
		handled[e.ID]++
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := h.bus.Handle("bad", `{"detail-type": "Scan"}`, func(context.Context, events.Envelope) error { return nil }); err == nil {
		t.Error("Handle took a bad pattern")
	}
	if err := h.bus.Handle("gate", `{"detail-type": ["Finding"]}`, func(context.Context, events.Envelope) error { return nil }); err == nil {
		t.Error("Handle registered a second handler named gate")
	}
	rc := eventstest.NewReceiver(t, eventstest.OK)
	h.putRule(t, "hooks", `{"detail-type": ["Scan"]}`,
		events.Target{ID: "one", Webhook: rc.URL + "/one"}, events.Target{ID: "two", Webhook: rc.URL + "/two"})

	rules, err := h.bus.Rules(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(rules) != 2 || rules[0].Name != "gate" || !rules[0].Builtin || rules[1].Name != "hooks" {
		t.Errorf("Rules = %+v, want the built-in gate, then hooks", rules)
	}

	e := h.publish(t, events.DetailTypeScan, "shop/api", time.Time{})
	other := h.publish(t, events.DetailTypeFinding, "shop/api", time.Time{})
	eventstest.WaitFor(t, 20*time.Second, "the handler to succeed", func() bool {
		mu.Lock()
		defer mu.Unlock()
		return handled[e.ID] == 1
	})
	eventstest.WaitIdle(t, h.st)
	mu.Lock()
	if calls[e.ID] != 2 || calls[other.ID] != 0 {
		t.Errorf("handler calls %v, want 2 for the Scan event (one failure, one retry), none for the Finding", calls)
	}
	mu.Unlock()
	if got := len(rc.Delivered()); got != 2 {
		t.Errorf("%d webhook deliveries, want one per target", got)
	}

	// Run the event's route job again.
	d := h.st.Dialect()
	res, err := h.st.Writer().ExecContext(ctx, `UPDATE river_job SET state = 'available', finalized_at = NULL, scheduled_at = `+d.NowPlus(0)+`
		WHERE kind = 'route_event' AND `+d.JSONText("args", "event_id")+` = $1`, e.ID)
	if err != nil {
		t.Fatal(err)
	}
	if n, _ := res.RowsAffected(); n != 1 {
		t.Fatalf("%d route jobs for the event, want 1", n)
	}
	eventstest.WaitFor(t, 20*time.Second, "the route job to run again", func() bool {
		var attempt int
		var state string
		err := h.st.Reader().QueryRowContext(ctx, `SELECT attempt, state FROM river_job WHERE kind = 'route_event' AND `+d.JSONText("args", "event_id")+` = $1`, e.ID).Scan(&attempt, &state)
		if err != nil {
			t.Fatal(err)
		}
		return attempt == 2 && state == "completed"
	})
	eventstest.WaitIdle(t, h.st)
	var deliveries int
	if err := h.st.Reader().QueryRowContext(ctx, `SELECT count(*) FROM river_job WHERE kind = 'deliver_event' AND `+d.JSONText("args", "event_id")+` = $1`, e.ID).Scan(&deliveries); err != nil {
		t.Fatal(err)
	}
	if deliveries != 3 {
		t.Errorf("%d delivery jobs for the event, want 3: the handler and two webhooks", deliveries)
	}
	mu.Lock()
	if handled[e.ID] != 1 {
		t.Errorf("the handler handled the event %d times, want once", handled[e.ID])
	}
	mu.Unlock()
	paths := map[string]int{}
	for _, d := range rc.Delivered() {
		paths[d.Path]++
	}
	if paths["/one"] != 1 || paths["/two"] != 1 {
		t.Errorf("webhook deliveries by target %v, want one each", paths)
	}
	noDeadLetters(t, h.bus)
}

// A webhook answering with a redirect has not received the event: the
// client would follow a 301 or 302 with a GET and no body, and count the
// 200 at the end as a delivery. The redirect is a failed attempt.
func TestWebhookRedirectIsNoDelivery(t *testing.T) {
	t.Parallel()
	h := startBus(t, events.BusOptions{})
	rc := eventstest.NewReceiver(t, eventstest.OK)
	mux := http.NewServeMux()
	mux.HandleFunc("/old", func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, rc.URL+"/new", http.StatusMovedPermanently)
	})
	old := httptest.NewServer(mux)
	t.Cleanup(old.Close)
	h.putRule(t, "scans", `{"detail-type": ["Scan"]}`, events.Target{ID: "hook", Webhook: old.URL + "/old"})
	h.publish(t, events.DetailTypeScan, "shop/api", time.Time{})

	eventstest.WaitFor(t, 20*time.Second, "a delivery attempt", func() bool {
		h.mu.Lock()
		defer h.mu.Unlock()
		return len(h.attempts) > 0
	})
	h.mu.Lock()
	first := h.attempts[0].err
	h.mu.Unlock()
	if first == nil || !strings.Contains(first.Error(), "301") {
		t.Errorf("first attempt: %v, want a failure naming the 301", first)
	}
	if got := rc.Requests(); len(got) != 0 {
		t.Errorf("the redirect's target got %s %s with %d bytes", got[0].Method, got[0].Path, len(got[0].Body))
	}
}

// A receiver that fails every delivery opens its circuit after a few
// attempts in a row: its other deliveries are deferred to the end of the
// cool-down, without an attempt, and not dead-lettered; no more than two
// ever run at once.
func TestWebhookCircuitOpens(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	h := startBus(t, events.BusOptions{BreakerFailures: 3, BreakerCooldown: time.Hour})
	var mu sync.Mutex
	busy, most := 0, 0
	rc := eventstest.NewHandler(func(int) int { return http.StatusServiceUnavailable })
	rc.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		busy++
		most = max(most, busy)
		mu.Unlock()
		time.Sleep(50 * time.Millisecond) // long enough for deliveries to overlap
		rc.ServeHTTP(w, r)
		mu.Lock()
		busy--
		mu.Unlock()
	}))
	t.Cleanup(rc.Close)
	h.putRule(t, "scans", `{"detail-type": ["Scan"]}`, events.Target{ID: "hook", Webhook: rc.URL})
	for range 10 {
		h.publish(t, events.DetailTypeScan, "shop/api", time.Time{})
	}
	// Every delivery ends up waiting for the circuit's cool-down.
	eventstest.WaitFor(t, 30*time.Second, "the deliveries deferred to the end of the cool-down", func() bool {
		var n int
		err := h.st.Reader().QueryRowContext(ctx, `SELECT count(*) FROM river_job WHERE kind = 'deliver_event' AND state = 'scheduled'
			AND scheduled_at > `+h.st.Dialect().NowPlus(30*60)).Scan(&n)
		if err != nil {
			t.Fatal(err)
		}
		return n == 10
	})
	// Three failures open it; a fourth may have been under way beside the
	// third.
	if n := len(rc.Requests()); n < 3 || n > 4 {
		t.Errorf("the failing receiver got %d requests, want 3 or 4", n)
	}
	mu.Lock()
	if most > 2 {
		t.Errorf("%d deliveries ran at once, want at most 2", most)
	}
	mu.Unlock()
	noDeadLetters(t, h.bus)
}
