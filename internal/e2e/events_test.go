package e2e

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/scangate/scangate/internal/events"
	"github.com/scangate/scangate/internal/events/eventstest"
	"github.com/scangate/scangate/internal/imagetest"
	"github.com/scangate/scangate/internal/jobs"
	"github.com/scangate/scangate/internal/scanner"
	"github.com/scangate/scangate/internal/server"
	"github.com/scangate/scangate/internal/servertest"
)

// putRuleAPI puts a rule through the REST API, as `scangate rules put`
// does.
func putRuleAPI(t *testing.T, s *servertest.Server, name, body string) {
	t.Helper()
	status, resp := s.API(t, http.MethodPut, "/api/v1/rules/"+name, []byte(body))
	if status != http.StatusNoContent {
		t.Fatalf("put rule %s: %d %s", name, status, resp)
	}
}

func mustJSON(t *testing.T, v any) string {
	t.Helper()
	data, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return string(data)
}

// A user's rules route scan events by their severity counts to signed
// webhooks: the receiver of the matching rule gets exactly the scan of the
// image with HIGH findings, as an envelope signed with its secret; the
// other receiver gets nothing.
func TestServerRoutesScanEventsToWebhooks(t *testing.T) {
	t.Parallel()
	s := servertest.Start(t, servertest.Options{})
	severe, other := eventstest.NewReceiver(t, eventstest.OK), eventstest.NewReceiver(t, eventstest.OK)
	const secret = "receiver-secret"
	putRuleAPI(t, s, "severe-scans", `{
	  "pattern": {"source": ["scangate.scanner"], "detail-type": ["Scan"], "detail": {"$or": [
	    {"finding-severity-counts": {"CRITICAL": [{"numeric": [">", 0]}]}},
	    {"finding-severity-counts": {"HIGH": [{"numeric": [">", 0]}]}}]}},
	  "targets": [{"id": "pager", "webhook": "`+severe.URL+`/hook", "secret": "`+secret+`"}]}`)
	putRuleAPI(t, s, "other-team", `{
	  "pattern": {"detail-type": ["Scan"], "detail": {"repository-name": [{"prefix": "other/"}]}},
	  "targets": [{"webhook": "`+other.URL+`/hook"}]}`)

	img, _ := imagetest.BookwormApp(t)
	digest := s.Push(t, "shop/api:1", img)
	clean := imagetest.Build(t, imagetest.Layer(t,
		imagetest.Entry{Name: "app/node_modules/left-pad/package.json", Body: `{"name": "left-pad", "version": "1.3.0"}`},
		imagetest.Entry{Name: "app/index.js", Body: "console.log('hi')\n"}))
	cleanDigest := s.Push(t, "shop/clean:1", clean)
	if im := s.WaitScan(t, "shop/api", digest, 30*time.Second); im.Summary.High == 0 {
		t.Fatalf("shop/api summary %+v: want HIGH findings", im.Summary)
	}
	if im := s.WaitScan(t, "shop/clean", cleanDigest, 30*time.Second); im.Summary.Critical+im.Summary.High != 0 {
		t.Fatalf("shop/clean summary %+v: want no CRITICAL or HIGH findings", im.Summary)
	}
	eventstest.WaitFor(t, 20*time.Second, "the severe scan to be delivered", func() bool { return len(severe.Delivered()) > 0 })
	eventstest.WaitIdle(t, s.Store)

	// Two pushes and two scans are logged; one event matched.
	log, err := events.ListLog(context.Background(), s.Store, 0, 100)
	if err != nil {
		t.Fatal(err)
	}
	var kinds []string
	for _, l := range log {
		kinds = append(kinds, l.Event.DetailType)
	}
	slices.Sort(kinds)
	if !slices.Equal(kinds, []string{"Image Push", "Image Push", "Scan", "Scan"}) {
		t.Errorf("event log %v, want two pushes and two scans", kinds)
	}
	if got := len(other.Requests()); got != 0 {
		t.Errorf("the other team's receiver got %d requests, want none", got)
	}
	got := severe.Requests()
	if len(got) != 1 {
		t.Fatalf("the severe receiver got %d requests, want 1", len(got))
	}
	d := got[0]
	e := d.Event(t)
	var detail scanner.ScanDetail
	if err := json.Unmarshal(e.Detail, &detail); err != nil {
		t.Fatal(err)
	}
	if e.DetailType != events.DetailTypeScan || e.Source != events.SourceScanner || detail.ImageDigest != digest ||
		detail.RepositoryName != "shop/api" || detail.Counts.High == 0 {
		t.Errorf("delivered %s from %s about %s@%s, counts %+v; want the scan of shop/api@%s", e.DetailType, e.Source,
			detail.RepositoryName, detail.ImageDigest, detail.Counts, digest)
	}
	if d.Path != "/hook" {
		t.Errorf("posted to %s", d.Path)
	}
	if ct := d.Header.Get("Content-Type"); ct != "application/json" {
		t.Errorf("content type %q", ct)
	}
	if d.Header.Get(events.HeaderEventID) != e.ID || d.Header.Get(events.HeaderRule) != "severe-scans" {
		t.Errorf("headers event id %q, rule %q; want %s, severe-scans", d.Header.Get(events.HeaderEventID), d.Header.Get(events.HeaderRule), e.ID)
	}
	sig := d.Header.Get(events.HeaderSignature)
	if !eventstest.Verify(sig, secret, d.Body) {
		t.Errorf("signature %q does not verify with the rule's secret", sig)
	}
	if eventstest.Verify(sig, "another-secret", d.Body) {
		t.Error("the signature verifies with another secret")
	}
	if eventstest.Verify(sig, secret, append(d.Body, ' ')) {
		t.Error("the signature verifies for another body")
	}
	// The logged event is the one delivered.
	logged, err := events.NewBus(s.Store, nil, events.BusOptions{}).Event(context.Background(), e.ID)
	if err != nil {
		t.Fatal(err)
	}
	if a, b := mustJSON(t, logged), mustJSON(t, e); a != b {
		t.Errorf("delivered event %s, logged %s", b, a)
	}
}

// A receiver that fails for the whole (short) retry window leaves its
// event in the dead-letter list, which the API lists and replays.
func TestServerDeadLetterReplay(t *testing.T) {
	t.Parallel()
	s := servertest.Start(t, servertest.Options{Feeds: []string{}, Config: server.Config{DeliveryRetryWindow: 2 * time.Second}})
	rc := eventstest.NewReceiver(t, func(int) int { return http.StatusServiceUnavailable })
	putRuleAPI(t, s, "pushes", `{"pattern": {"detail-type": ["Image Push"]},
	  "targets": [{"id": "ci", "webhook": "`+rc.URL+`/push", "secret": "k"}]}`)
	img := imagetest.Build(t, imagetest.Layer(t, imagetest.Entry{Name: "hello.txt", Body: "hello\n"}))
	s.Push(t, "shop/hello:1", img)

	type deadLetters struct {
		DeadLetters []events.DeadLetter `json:"deadLetters"`
	}
	list := func(query string) []events.DeadLetter {
		t.Helper()
		status, body := s.API(t, http.MethodGet, "/api/v1/dead-letters"+query, nil)
		if status != http.StatusOK {
			t.Fatalf("dead letters: %d %s", status, body)
		}
		var dl deadLetters
		if err := json.Unmarshal(body, &dl); err != nil {
			t.Fatal(err)
		}
		return dl.DeadLetters
	}
	eventstest.WaitFor(t, 30*time.Second, "a dead letter", func() bool { return len(list("?pending=true")) > 0 })
	dl := list("")
	if len(dl) != 1 {
		t.Fatalf("dead letters %+v, want 1", dl)
	}
	d := dl[0]
	if d.Rule != "pushes" || d.Target.ID != "ci" || d.Target.Secret != "" || d.Attempts < 2 || d.Attempts != len(rc.Requests()) {
		t.Errorf("dead letter %+v (receiver saw %d requests): want rule pushes, target ci, no secret kept, every attempt counted", d, len(rc.Requests()))
	}
	e := rc.Requests()[0].Event(t)
	if d.EventID != e.ID || e.DetailType != events.DetailTypeImagePush {
		t.Errorf("dead letter of event %s; the receiver was sent %s (%s)", d.EventID, e.ID, e.DetailType)
	}

	rc.SetRespond(eventstest.OK)
	replay := func() int {
		t.Helper()
		status, body := s.API(t, http.MethodPost, "/api/v1/dead-letters/replay", map[string]any{})
		if status != http.StatusAccepted {
			t.Fatalf("replay: %d %s", status, body)
		}
		var r struct{ Replayed int }
		if err := json.Unmarshal(body, &r); err != nil {
			t.Fatal(err)
		}
		return r.Replayed
	}
	if n := replay(); n != 1 {
		t.Fatalf("replayed %d, want 1", n)
	}
	eventstest.WaitFor(t, 20*time.Second, "the replayed event", func() bool { return len(rc.Delivered()) > 0 })
	if n := replay(); n != 0 {
		t.Errorf("second replay replayed %d, want 0", n)
	}
	eventstest.WaitIdle(t, s.Store)
	if got := eventstest.EventIDs(t, rc.Delivered()); len(got) != 1 || got[0] != e.ID {
		t.Errorf("delivered %v, want [%s] once", got, e.ID)
	}
	if got := rc.Delivered()[0]; !eventstest.Verify(got.Header.Get(events.HeaderSignature), "k", got.Body) {
		t.Error("the replayed delivery is not signed with the target's secret")
	}
	if dl := list(""); len(dl) != 1 || dl[0].ReplayedAt == nil {
		t.Errorf("dead letters after the replay %+v: want the one, replayed", dl)
	}
	if dl := list("?pending=true"); len(dl) != 0 {
		t.Errorf("pending dead letters after the replay: %+v", dl)
	}
	if p, err := jobs.Pending(context.Background(), s.Store); err != nil || p["deliver_event"] != 0 {
		t.Errorf("pending jobs %v, %v", p, err)
	}
}

// heldReceiver is a webhook endpoint that holds its first request until
// the test lets it go, and answers every request with status.
type heldReceiver struct {
	*httptest.Server
	status  int
	arrived chan struct{} // closed when the first request arrives
	release chan struct{} // closed by the test to answer it
	once    sync.Once
	n       atomic.Int32
}

func newHeldReceiver(t *testing.T, status int) *heldReceiver {
	t.Helper()
	h := &heldReceiver{status: status, arrived: make(chan struct{}), release: make(chan struct{})}
	h.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		if h.n.Add(1) == 1 {
			close(h.arrived)
			<-h.release
		}
		w.WriteHeader(h.status)
	}))
	t.Cleanup(func() {
		h.once.Do(func() { close(h.release) })
		h.Close()
	})
	return h
}

func (h *heldReceiver) let() { h.once.Do(func() { close(h.release) }) }

func (h *heldReceiver) waitArrived(t *testing.T) {
	t.Helper()
	select {
	case <-h.arrived:
	case <-time.After(30 * time.Second):
		t.Fatal("no delivery attempt within 30 s")
	}
}

// deliveryJobs returns the state and recorded errors of every delivery
// job of rule.
func deliveryJobs(t *testing.T, s *servertest.Server, rule string) map[string]string {
	t.Helper()
	rows, err := s.Store.Reader().Query(`SELECT id, state, CAST(errors AS TEXT) FROM river_job WHERE kind = 'deliver_event' AND `+
		s.Store.Dialect().JSONText("args", "rule")+` = $1`, rule)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	out := map[string]string{}
	for rows.Next() {
		var id int64
		var state string
		var errs sql.NullString
		if err := rows.Scan(&id, &state, &errs); err != nil {
			t.Fatal(err)
		}
		out[fmt.Sprint(id)] = state + " " + errs.String
	}
	return out
}

// A rule deleted, or whose target moves to another URL, while a delivery
// to it fails and waits for its retry: the delivery ends, dropped, and
// the old URL hears nothing more (nor does the new one: the event was
// routed to the old target).
func TestDeletedOrChangedRuleStopsPendingDeliveries(t *testing.T) {
	t.Parallel()
	s := servertest.Start(t, servertest.Options{Feeds: []string{}})
	gone, moved := newHeldReceiver(t, http.StatusServiceUnavailable), newHeldReceiver(t, http.StatusServiceUnavailable)
	moveTo := eventstest.NewReceiver(t, eventstest.OK)
	putRuleAPI(t, s, "gone", `{"pattern": {"detail-type": ["Image Push"]}, "targets": [{"id": "ci", "webhook": "`+gone.URL+`/hook", "secret": "k"}]}`)
	putRuleAPI(t, s, "moved", `{"pattern": {"detail-type": ["Image Push"]}, "targets": [{"id": "ci", "webhook": "`+moved.URL+`/hook", "secret": "k"}]}`)
	s.Push(t, "shop/hello:1", imagetest.Build(t, imagetest.Layer(t, imagetest.Entry{Name: "hello.txt", Body: "hello\n"})))

	// Both first attempts are under way; the rules change before they
	// fail.
	gone.waitArrived(t)
	moved.waitArrived(t)
	if status, body := s.API(t, http.MethodDelete, "/api/v1/rules/gone", nil); status != http.StatusNoContent {
		t.Fatalf("delete rule: %d %s", status, body)
	}
	putRuleAPI(t, s, "moved", `{"pattern": {"detail-type": ["Image Push"]}, "targets": [{"id": "ci", "webhook": "`+moveTo.URL+`/hook", "secret": "k2"}]}`)
	gone.let()
	moved.let()

	eventstest.WaitFor(t, 30*time.Second, "the pending deliveries to end", func() bool {
		p, err := jobs.Pending(context.Background(), s.Store)
		if err != nil {
			t.Fatal(err)
		}
		return p["deliver_event"] == 0
	})
	if n, m := gone.n.Load(), moved.n.Load(); n != 1 || m != 1 {
		t.Errorf("the old URLs got %d and %d requests, want the one attempt each made before the change", n, m)
	}
	if n := len(moveTo.Requests()); n != 0 {
		t.Errorf("the new URL got %d requests for an event routed to the old one", n)
	}
	for rule, why := range map[string]string{"gone": "rule gone no longer exists", "moved": "target ci of rule moved has changed"} {
		js := deliveryJobs(t, s, rule)
		if len(js) != 1 {
			t.Fatalf("rule %s: delivery jobs %v, want 1", rule, js)
		}
		for id, st := range js {
			if !strings.HasPrefix(st, "cancelled ") || !strings.Contains(st, why) {
				t.Errorf("rule %s: delivery job %s: %s; want cancelled, saying %q", rule, id, st, why)
			}
		}
	}
	if dl, err := events.NewBus(s.Store, nil, events.BusOptions{}).DeadLetters(context.Background(), false); err != nil || len(dl) != 0 {
		t.Errorf("dead letters %+v, %v; want none: a dropped delivery is no failure", dl, err)
	}
}

// A dead letter of a rule deleted since is refused by a replay, with the
// reason, and its old URL hears nothing more; the job arguments and the
// dead letter never hold the target's secret.
func TestDeadLetterOfDeletedRuleRefused(t *testing.T) {
	t.Parallel()
	s := servertest.Start(t, servertest.Options{Feeds: []string{}, Config: server.Config{DeliveryRetryWindow: 2 * time.Second}})
	rc := eventstest.NewReceiver(t, func(int) int { return http.StatusServiceUnavailable })
	const secret = "never-in-job-args"
	putRuleAPI(t, s, "pushes", `{"pattern": {"detail-type": ["Image Push"]}, "targets": [{"id": "ci", "webhook": "`+rc.URL+`/push", "secret": "`+secret+`"}]}`)
	s.Push(t, "shop/hello:1", imagetest.Build(t, imagetest.Layer(t, imagetest.Entry{Name: "hello.txt", Body: "hello\n"})))
	bus := events.NewBus(s.Store, nil, events.BusOptions{})
	var dl []events.DeadLetter
	eventstest.WaitFor(t, 30*time.Second, "a dead letter", func() bool {
		var err error
		dl, err = bus.DeadLetters(context.Background(), true)
		if err != nil {
			t.Fatal(err)
		}
		return len(dl) > 0
	})
	var leaked int
	if err := s.Store.Reader().QueryRow(`SELECT count(*) FROM river_job WHERE CAST(args AS TEXT) LIKE '%' || $1 || '%'`, secret).Scan(&leaked); err != nil {
		t.Fatal(err)
	}
	if leaked != 0 || dl[0].Target.Secret != "" {
		t.Errorf("the secret is in %d jobs' arguments; the dead letter's target %+v", leaked, dl[0].Target)
	}
	tried := len(rc.Requests())

	if status, body := s.API(t, http.MethodDelete, "/api/v1/rules/pushes", nil); status != http.StatusNoContent {
		t.Fatalf("delete rule: %d %s", status, body)
	}
	status, body := s.API(t, http.MethodPost, "/api/v1/dead-letters/replay", map[string]any{})
	if status != http.StatusAccepted {
		t.Fatalf("replay: %d %s", status, body)
	}
	var res struct {
		Replayed int
		Refused  []struct {
			ID     int64
			Reason string
		}
	}
	if err := json.Unmarshal(body, &res); err != nil {
		t.Fatal(err)
	}
	if res.Replayed != 0 || len(res.Refused) != 1 || res.Refused[0].ID != dl[0].ID || !strings.Contains(res.Refused[0].Reason, "rule pushes no longer exists") {
		t.Errorf("replay after the rule was deleted: %s; want dead letter %d refused, saying the rule no longer exists", body, dl[0].ID)
	}
	eventstest.WaitIdle(t, s.Store)
	if n := len(rc.Requests()); n != tried {
		t.Errorf("the deleted rule's URL got %d more requests", n-tried)
	}
}
