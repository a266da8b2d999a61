// Package eventstest gives tests of the event bus, and of whole servers
// that deliver events, a real webhook receiver to deliver to: an
// httptest.Server that records every request and answers with the status
// the test chooses, as net/http/httptest gives handlers a recorder.
package eventstest

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/scangate/scangate/internal/events"
	"github.com/scangate/scangate/internal/jobs"
	"github.com/scangate/scangate/internal/store"
)

// Receiver is a webhook endpoint that records what it is sent and answers
// with the status Respond chooses for the nth request (from 1).
type Receiver struct {
	*httptest.Server
	mu      sync.Mutex
	got     []Delivery
	respond func(n int) int
}

// Delivery is one request a Receiver got, and the status it answered.
type Delivery struct {
	Method string
	Path   string
	Header http.Header
	Body   []byte
	Status int
}

// NewReceiver starts a receiver, closed when the test ends; respond nil
// answers 200 to everything.
func NewReceiver(t testing.TB, respond func(n int) int) *Receiver {
	t.Helper()
	r := &Receiver{respond: respond}
	r.Server = httptest.NewServer(r)
	t.Cleanup(r.Close)
	return r
}

// NewHandler is a Receiver that the test serves itself, on a listener of
// its choosing.
func NewHandler(respond func(n int) int) *Receiver { return &Receiver{respond: respond} }

// OK answers every request with 200.
func OK(int) int { return http.StatusOK }

// ServeHTTP records the request and answers it.
func (rc *Receiver) ServeHTTP(w http.ResponseWriter, req *http.Request) {
	body, _ := io.ReadAll(req.Body)
	rc.mu.Lock()
	status := http.StatusOK
	if rc.respond != nil {
		status = rc.respond(len(rc.got) + 1)
	}
	rc.got = append(rc.got, Delivery{req.Method, req.URL.Path, req.Header.Clone(), body, status})
	rc.mu.Unlock()
	w.WriteHeader(status)
}

// SetRespond changes how the receiver answers from now on.
func (rc *Receiver) SetRespond(f func(int) int) {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	rc.respond = f
}

// Delivered returns the requests answered with 2xx.
func (rc *Receiver) Delivered() []Delivery {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	var out []Delivery
	for _, d := range rc.got {
		if d.Status/100 == 2 {
			out = append(out, d)
		}
	}
	return out
}

// Requests returns every request, in order.
func (rc *Receiver) Requests() []Delivery {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	return append([]Delivery{}, rc.got...)
}

// Event is the event a delivery carried.
func (d Delivery) Event(t testing.TB) events.Envelope {
	t.Helper()
	e, err := events.Parse(d.Body)
	if err != nil {
		t.Fatalf("delivered body is no event: %v\n%s", err, d.Body)
	}
	return e
}

// EventIDs lists the event ids of deliveries, in order.
func EventIDs(t testing.TB, ds []Delivery) []string {
	t.Helper()
	var out []string
	for _, d := range ds {
		out = append(out, d.Event(t).ID)
	}
	return out
}

// Verify checks a delivery's signature header as a receiver would: an
// HMAC-SHA256 of the body with the target's secret, "sha256=<hex>".
func Verify(header, secret string, body []byte) bool {
	hexSum, ok := strings.CutPrefix(header, "sha256=")
	if !ok {
		return false
	}
	got, err := hex.DecodeString(hexSum)
	if err != nil {
		return false
	}
	m := hmac.New(sha256.New, []byte(secret))
	m.Write(body)
	return hmac.Equal(got, m.Sum(nil))
}

// WaitFor polls cond until it holds, failing the test after timeout.
func WaitFor(t testing.TB, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("gave up after %s waiting for %s", timeout, what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// WaitIdle waits until no routing or delivery job of the bus waits or runs.
func WaitIdle(t testing.TB, st *store.Store) {
	t.Helper()
	WaitFor(t, 20*time.Second, "the event jobs to finish", func() bool {
		p, err := jobs.Pending(context.Background(), st)
		if err != nil {
			t.Fatal(err)
		}
		return p[events.KindRoute] == 0 && p[events.KindDeliver] == 0
	})
}
