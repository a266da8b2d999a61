package server_test

import (
	"context"
	"database/sql"
	"fmt"
	"net"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/scangate/scangate/internal/events"
	"github.com/scangate/scangate/internal/imagetest"
	"github.com/scangate/scangate/internal/jobs"
	"github.com/scangate/scangate/internal/pipeline"
	"github.com/scangate/scangate/internal/servertest"
)

// tarpit is a webhook receiver that accepts connections and never answers,
// holding each until the client gives up.
type tarpit struct {
	ln net.Listener

	mu      sync.Mutex
	open    int // connections held now
	maxOpen int // the most held at once
	total   int
}

func newTarpit(t *testing.T) *tarpit {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	tp := &tarpit{ln: ln}
	var wg sync.WaitGroup
	t.Cleanup(func() {
		ln.Close()
		wg.Wait()
	})
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			tp.mu.Lock()
			tp.open++
			tp.total++
			tp.maxOpen = max(tp.maxOpen, tp.open)
			tp.mu.Unlock()
			wg.Add(1)
			go func() {
				defer wg.Done()
				// Read the request and whatever follows, answering nothing,
				// until the client closes the connection.
				buf := make([]byte, 4096)
				for {
					if _, err := c.Read(buf); err != nil {
						break
					}
				}
				c.Close()
				tp.mu.Lock()
				tp.open--
				tp.mu.Unlock()
			}()
		}
	}()
	return tp
}

func (tp *tarpit) counts() (total, maxOpen int) {
	tp.mu.Lock()
	defer tp.mu.Unlock()
	return tp.total, tp.maxOpen
}

func (tp *tarpit) URL() string { return "http://" + tp.ln.Addr().String() + "/hook" }

// A user's webhook that never answers, on a rule matching every event,
// and a replay of 1,000 events to it: the built-in approval evaluator
// still gets the Scan event of an image pushed after, at once, while the
// tarpit holds at most a few of the webhook workers.
func TestSlowWebhookDoesNotStallBuiltinHandlers(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s := servertest.Start(t, servertest.Options{})

	// 1,000 events in the log, routed to nobody yet.
	client, err := jobs.New(s.Store, nil, jobs.Config{})
	if err != nil {
		t.Fatal(err)
	}
	bus := events.NewBus(s.Store, client, events.BusOptions{})
	backlog := make([]events.Envelope, 1000)
	for i := range backlog {
		if backlog[i], err = events.New("test.backlog", "Backlog Event", nil, map[string]any{"n": i}); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.Store.InTx(ctx, func(tx *sql.Tx) error { return bus.PublishMany(ctx, tx, backlog) }); err != nil {
		t.Fatal(err)
	}
	waitJobs(t, s, "the backlog's routing", 60*time.Second, func(p map[string]int) bool { return p["route_event"] == 0 })

	tp := newTarpit(t)
	status, body := s.API(t, http.MethodPut, "/api/v1/rules/everything", []byte(`{"pattern": {"version": ["0"]}, "targets": [{"id": "slow", "webhook": "`+tp.URL()+`"}]}`))
	if status != http.StatusNoContent {
		t.Fatalf("put rule: %d %s", status, body)
	}
	status, body = s.API(t, http.MethodPost, "/api/v1/events/replay", map[string]any{"since": time.Now().Add(-time.Hour)})
	if status != http.StatusAccepted {
		t.Fatalf("replay: %d %s", status, body)
	}
	waitUntil(t, 60*time.Second, "the tarpit to hold a delivery", func() bool { n, _ := tp.counts(); return n > 0 })

	img := imagetest.Build(t, imagetest.Layer(t, imagetest.Entry{Name: "etc/id", Body: fmt.Sprint(time.Now().UnixNano())}))
	digest := s.Push(t, "shop/after:1", img)
	s.WaitScan(t, "shop/after", digest, 60*time.Second)
	var scanEvent string
	d := s.Store.Dialect()
	waitUntil(t, 30*time.Second, "the Scan event", func() bool {
		err := s.Store.Reader().QueryRow(`SELECT id FROM events WHERE detail_type = 'Scan' AND `+d.JSONText("doc", "detail", "image-digest")+` = $1`, digest).Scan(&scanEvent)
		return err == nil
	})
	// The evaluator's delivery of it is done within 30 s; behind the
	// tarpit's deliveries it would wait for hours.
	waitUntil(t, 30*time.Second, "the built-in evaluator to handle the Scan event", func() bool {
		var state string
		err := s.Store.Reader().QueryRow(`SELECT state FROM river_job WHERE kind = 'deliver_event' AND `+d.JSONText("args", "event_id")+` = $1
			AND `+d.JSONText("args", "target", "handler")+` = $2`, scanEvent, pipeline.HandlerName).Scan(&state)
		return err == nil && state == "completed"
	})
	if _, maxOpen := tp.counts(); maxOpen > 2 {
		t.Errorf("the tarpit held %d deliveries at once, want at most 2 (one target's share of the webhook workers)", maxOpen)
	}
}

func waitJobs(t *testing.T, s *servertest.Server, what string, timeout time.Duration, done func(map[string]int) bool) {
	t.Helper()
	waitUntil(t, timeout, what, func() bool {
		p, err := jobs.Pending(context.Background(), s.Store)
		if err != nil {
			t.Fatal(err)
		}
		return done(p)
	})
}

// waitUntil polls cond until it holds, failing the test after timeout.
func waitUntil(t *testing.T, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("gave up after %s waiting for %s", timeout, what)
		}
		time.Sleep(50 * time.Millisecond)
	}
}
