package build

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"
)

func TestKeyedMutex(t *testing.T) {
	var k keyedMutex
	ctx := context.Background()
	unlock, err := k.lock(ctx, "a")
	if err != nil {
		t.Fatal(err)
	}
	// Another key is free while "a" is held.
	unlockB, err := k.lock(ctx, "b")
	if err != nil {
		t.Fatal(err)
	}
	unlockB()

	// A waiter for "a" gives up with its context.
	short, cancel := context.WithTimeout(ctx, 50*time.Millisecond)
	defer cancel()
	if _, err := k.lock(short, "a"); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("lock on a held key = %v, want the context's error", err)
	}

	// Holders of one key never overlap.
	var mu sync.Mutex
	inside, most := 0, 0
	var wg sync.WaitGroup
	for range 20 {
		wg.Go(func() {
			u, err := k.lock(ctx, "a")
			if err != nil {
				t.Error(err)
				return
			}
			mu.Lock()
			inside++
			most = max(most, inside)
			mu.Unlock()
			time.Sleep(time.Millisecond)
			mu.Lock()
			inside--
			mu.Unlock()
			u()
		})
	}
	unlock()
	unlock() // a second call is harmless
	wg.Wait()
	if most != 1 {
		t.Errorf("%d holders at once", most)
	}
	if len(k.locks) != 0 {
		t.Errorf("%d locks kept after use", len(k.locks))
	}
}
