package events

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"sync"
	"time"
)

// targets holds, per webhook URL, the deliveries under way and a circuit
// breaker. A receiver that is slow or down would otherwise take every
// webhook worker: each attempt may wait for the client's whole timeout.
// So at most max deliveries to one URL run at once, and after threshold
// failed attempts in a row the circuit opens: the URL's deliveries are
// deferred, without an attempt and without holding a worker, until a
// cool-down has passed; then one probe goes, whose success closes the
// circuit and whose failure opens it again for twice as long (up to 16
// times the first cool-down).
//
// The state is in memory: one server works a data folder, and one that
// starts again with a receiver still down opens the circuit again after
// threshold attempts.
type targets struct {
	max, threshold int
	cooldown       time.Duration
	now            func() time.Time

	mu sync.Mutex
	m  map[string]*targetState
}

type targetState struct {
	busy      int           // deliveries under way
	latency   time.Duration // of the last attempt that ended
	failures  int           // failed attempts in a row
	lastErr   error         // the last failure
	openUntil time.Time     // while the circuit is open; zero when closed
	cooldown  time.Duration // how long it opened for last
	probing   bool          // a probe of the open circuit is under way
}

// maxCooldownFactor bounds the growth of an open circuit's cool-down.
const maxCooldownFactor = 16

func newTargets(max, threshold int, cooldown time.Duration) *targets {
	return &targets{max: max, threshold: threshold, cooldown: cooldown, now: time.Now, m: map[string]*targetState{}}
}

// errDeferred tells why a delivery was not attempted now.
type errDeferred struct {
	wait time.Duration // how long to wait before trying again
	why  string
}

func (e *errDeferred) Error() string { return e.why }

// take reserves one delivery to url. It returns done, which the caller
// calls with the attempt's outcome, or, when the delivery must wait, an
// *errDeferred. snoozes is how often the delivery has waited already:
// waits for a busy URL grow with it, so that a large backlog for one
// receiver does not churn through the queue.
func (ts *targets) take(url string, snoozes int) (done func(error), deferred *errDeferred) {
	ts.mu.Lock()
	defer ts.mu.Unlock()
	s := ts.m[url]
	if s == nil {
		s = &targetState{}
		ts.m[url] = s
	}
	now := ts.now()
	probe := false
	switch {
	case !s.openUntil.IsZero() && now.Before(s.openUntil):
		return nil, &errDeferred{wait: s.openUntil.Sub(now) + spread(s.cooldown/2),
			why: fmt.Sprintf("circuit open after %d failed attempts in a row (last: %v); next try after %s", s.failures, s.lastErr, s.openUntil.Format(time.RFC3339))}
	case !s.openUntil.IsZero() && s.probing:
		return nil, &errDeferred{wait: s.cooldown + spread(s.cooldown/2), why: "circuit open: a probe is under way"}
	case !s.openUntil.IsZero():
		probe = true
		s.probing = true
	case s.busy >= ts.max:
		wait := max(s.latency, 500*time.Millisecond) << min(snoozes, 8)
		wait = min(wait, 5*time.Minute)
		return nil, &errDeferred{wait: wait/2 + spread(wait), why: fmt.Sprintf("%d deliveries to it under way", s.busy)}
	}
	s.busy++
	start := now
	return func(err error) { ts.done(url, s, probe, start, err) }, nil
}

// done records the outcome of an attempt take allowed.
func (ts *targets) done(url string, s *targetState, probe bool, start time.Time, err error) {
	ts.mu.Lock()
	defer ts.mu.Unlock()
	now := ts.now()
	s.busy--
	if probe {
		s.probing = false
	}
	switch {
	case err == nil:
		s.latency = now.Sub(start)
		s.failures, s.lastErr, s.openUntil, s.cooldown = 0, nil, time.Time{}, 0
	case errors.Is(err, context.Canceled):
		// The server is stopping: no word about the receiver.
	default:
		s.latency = now.Sub(start)
		s.failures++
		s.lastErr = err
		switch {
		case probe:
			s.cooldown = min(2*s.cooldown, maxCooldownFactor*ts.cooldown)
			s.openUntil = now.Add(s.cooldown)
		case s.openUntil.IsZero() && s.failures >= ts.threshold:
			s.cooldown = ts.cooldown
			s.openUntil = now.Add(s.cooldown)
		}
	}
	if s.busy == 0 && s.failures == 0 && s.openUntil.IsZero() {
		delete(ts.m, url) // a healthy receiver needs no state: the map stays small
	}
}

// spread returns a random duration in [0, d], so that deliveries deferred
// together do not all come back at once.
func spread(d time.Duration) time.Duration {
	if d <= 0 {
		return 0
	}
	return rand.N(d + 1)
}
