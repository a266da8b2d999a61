package events

import (
	"context"
	"errors"
	"testing"
	"time"
)

// The per-URL limits, step by step on a clock the test moves: at most max
// deliveries at once; threshold failures in a row open the circuit, which
// defers every delivery until its cool-down has passed; then one probe
// goes, whose failure doubles the cool-down and whose success closes it; a
// stop of the server says nothing about the receiver.
func TestTargetsLimitAndBreak(t *testing.T) {
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	ts := newTargets(2, 3, time.Minute)
	ts.now = func() time.Time { return now }
	const url = "http://127.0.0.1:9/hook"
	down := errors.New("503 Service Unavailable")

	take := func(what string) func(error) {
		t.Helper()
		done, d := ts.take(url, 0)
		if d != nil {
			t.Fatalf("%s: deferred (%s), want an attempt", what, d.why)
		}
		return done
	}
	deferred := func(what string) *errDeferred {
		t.Helper()
		done, d := ts.take(url, 0)
		if d == nil {
			done(nil)
			t.Fatalf("%s: an attempt, want it deferred", what)
		}
		if d.wait <= 0 {
			t.Fatalf("%s: deferred for %s", what, d.wait)
		}
		return d
	}

	a, b := take("first"), take("second")
	deferred("a third while two are under way")
	a(down)
	b(context.Canceled) // the server stopping: not counted
	c := take("after one ended")
	c(down)
	take("third try")(down) // three failures in a row: open
	d := deferred("while open")
	if d.wait < time.Minute {
		t.Errorf("deferred for %s while open for a minute", d.wait)
	}
	now = now.Add(59 * time.Second)
	deferred("just before the cool-down ends")

	now = now.Add(2 * time.Second)
	probe := take("the probe")
	deferred("beside the probe")
	probe(down)
	now = now.Add(90 * time.Second)
	deferred("within the doubled cool-down")
	now = now.Add(31 * time.Second)
	probe = take("the second probe")
	probe(nil)
	e, f := take("closed again"), take("closed again, second")
	e(nil)
	f(nil)
	if len(ts.m) != 0 {
		t.Errorf("state kept for a healthy receiver: %+v", ts.m[url])
	}
}
