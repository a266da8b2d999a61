package console

import (
	"fmt"
	"net/http"
	"time"

	"github.com/scangate/scangate/internal/events"
)

// Live topics: the server-sent event names pages listen for (hx-trigger
// "sse:pipeline"); each re-fetches its changing part when one arrives.
const (
	TopicPipeline = "pipeline" // executions, stages, approvals, scans
	TopicDeploy   = "deploy"   // services, deployments, tasks
)

// topicOf is the topic an event concerns, or "".
func topicOf(e events.Envelope) string {
	switch e.Source {
	case events.SourcePipeline, events.SourceScanner:
		return TopicPipeline
	case events.SourceDeploy:
		return TopicDeploy
	}
	return ""
}

// live streams, as server-sent events, one message per logged event that
// changes what pages show, named by its topic; the data is the event's
// sequence number, never its detail (a reader's page needs no more than
// the nudge to reload its part, which its own role then decides). The
// stream follows the log from its end when it opens; the browser's
// EventSource reconnects by itself, with Last-Event-ID.
func (c *Console) live(w http.ResponseWriter, r *http.Request, s *session) {
	ctx := r.Context()
	rc := http.NewResponseController(w)
	after, err := c.Bus.LastSeq(ctx)
	if err != nil {
		c.fail(w, r, s, statusOf(err), err)
		return
	}
	if id := r.Header.Get("Last-Event-ID"); id != "" {
		var n int64
		if _, err := fmt.Sscan(id, &n); err == nil && n > 0 && n <= after && after-n < 1000 {
			after = n
		}
	}
	h := w.Header()
	h.Set("Content-Type", "text/event-stream")
	h.Set("Cache-Control", "no-store")
	h.Set("X-Accel-Buffering", "no") // nginx: pass each message on at once
	w.WriteHeader(http.StatusOK)
	write := func(format string, args ...any) error {
		// The server sets one write deadline per request; a stream
		// renews it for each message instead.
		_ = rc.SetWriteDeadline(time.Now().Add(c.WriteTimeout))
		if _, err := fmt.Fprintf(w, format, args...); err != nil {
			return err
		}
		return rc.Flush()
	}
	if write("retry: 3000\n\n") != nil {
		return
	}
	tick := time.NewTicker(c.LivePoll)
	defer tick.Stop()
	idle := 0
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		// The session may have ended (logout, a revoked token).
		if s, err := c.current(r); s == nil || err != nil {
			return
		}
		list, err := c.Bus.Log(ctx, after, 500)
		if err != nil {
			return
		}
		sent := map[string]bool{}
		for _, l := range list {
			after = l.Seq
			if t := topicOf(l.Event); t != "" && !sent[t] {
				sent[t] = true // one nudge per topic per poll is enough
				if write("id: %d\nevent: %s\ndata: %d\n\n", l.Seq, t, l.Seq) != nil {
					return
				}
			}
		}
		if len(sent) == 0 {
			// A comment now and then keeps proxies from closing an idle
			// stream.
			if idle++; idle >= 15 {
				idle = 0
				if write(": keep-alive\n\n") != nil {
					return
				}
			}
		}
	}
}
