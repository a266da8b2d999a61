package events_test

import (
	"context"
	"database/sql"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/scangate/scangate/internal/events"
)

// A follower of the log ("events after N", as events tail -f and the
// console's live updates read it) sees every event, though publishers'
// transactions run at once and end in any order: on PostgreSQL a number
// taken by a transaction that commits later must not be passed over. Here
// the first publisher holds its transaction open while others publish;
// the follower must still get its event.
func TestFollowerMissesNoEvent(t *testing.T) {
	ctx := context.Background()
	h := startBus(t, events.BusOptions{})
	publishIn := func(tx *sql.Tx, i int) {
		e, err := events.New(events.SourceScanner, "Scan", []string{fmt.Sprintf("registry.test/order@%d", i)}, map[string]any{"n": i})
		if err != nil {
			t.Error(err)
			return
		}
		if err := h.bus.Publish(ctx, tx, e); err != nil {
			t.Error(err)
		}
	}

	const writers = 8
	seen := map[string]bool{}
	var after int64
	follow := func() {
		list, err := h.bus.Log(ctx, after, 500)
		if err != nil {
			t.Fatal(err)
		}
		for _, l := range list {
			after = l.Seq
			seen[l.Event.ID] = true
		}
	}

	// The slow one: it publishes first, and commits last.
	slow, err := h.st.Writer().BeginTx(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	slowDone := make(chan struct{})
	go func() {
		defer close(slowDone)
		publishIn(slow, 0)
		time.Sleep(500 * time.Millisecond) // the others try to publish meanwhile
		if err := slow.Commit(); err != nil {
			t.Error(err)
		}
	}()
	time.Sleep(100 * time.Millisecond)
	var wg sync.WaitGroup
	for i := 1; i <= writers; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := h.st.InTx(ctx, func(tx *sql.Tx) error { publishIn(tx, i); return nil }); err != nil {
				t.Error(err)
			}
		}()
	}
	// Follow while they commit, as a live view does.
	all := make(chan struct{})
	go func() { wg.Wait(); <-slowDone; close(all) }()
	for done := false; !done; {
		select {
		case <-all:
			done = true
		case <-time.After(20 * time.Millisecond):
		}
		follow()
	}
	follow()
	if len(seen) != writers+1 {
		t.Errorf("the follower saw %d of the %d events published: it passed over a number committed late", len(seen), writers+1)
	}
}
