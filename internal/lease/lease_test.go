package lease_test

import (
	"context"
	"errors"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/scangate/scangate/internal/lease"
	"github.com/scangate/scangate/internal/store"
	"github.com/scangate/scangate/internal/storetest"
)

// Two replicas on one database are played by two store handles, each with
// its own connections, on the test run's database (storetest): one SQLite
// file in WAL mode, where each statement of the package is one statement
// on a shared database as it would be on PostgreSQL, or one PostgreSQL
// database, whose concurrent writers the one-statement upsert keeps apart.
func twoStores(t *testing.T) (*store.Store, *store.Store) {
	t.Helper()
	database, dir := storetest.Database(t), t.TempDir()
	var sts []*store.Store
	for range 2 {
		st, err := store.OpenDatabase(context.Background(), database, dir)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { st.Close() })
		sts = append(sts, st)
	}
	return sts[0], sts[1]
}

// clock is a wall clock a test moves.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) add(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

func TestOneHolderAtATime(t *testing.T) {
	ctx := context.Background()
	s1, s2 := twoStores(t)
	c := &clock{t: time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)}
	a := lease.New(s1, lease.Options{Holder: "a", TTL: time.Minute, Now: c.now})
	b := lease.New(s2, lease.Options{Holder: "b", TTL: time.Minute, Now: c.now})

	if ok, err := a.TryAcquire(ctx, "x"); err != nil || !ok {
		t.Fatalf("a takes a free lease: %v, %v", ok, err)
	}
	if ok, err := b.TryAcquire(ctx, "x"); err != nil || ok {
		t.Fatalf("b takes a's live lease: %v, %v", ok, err)
	}
	if ok, err := a.TryAcquire(ctx, "x"); err != nil || !ok {
		t.Fatalf("a takes its own lease again: %v, %v", ok, err)
	}
	if ok, err := b.TryAcquire(ctx, "y"); err != nil || !ok {
		t.Fatalf("b takes another name: %v, %v", ok, err)
	}
	if err := b.Renew(ctx, "x"); !errors.Is(err, lease.ErrLost) {
		t.Fatalf("b renews a's lease: %v", err)
	}
	if err := b.Release(ctx, "x"); err != nil {
		t.Fatal(err)
	}
	if info, ok, err := a.Get(ctx, "x"); err != nil || !ok || info.Holder != "a" {
		t.Fatalf("b's release of a lease it does not hold changed it: %+v %v %v", info, ok, err)
	}

	// Expiry hands over: renewals keep it, their absence frees it.
	c.add(50 * time.Second)
	if err := a.Renew(ctx, "x"); err != nil {
		t.Fatal(err)
	}
	c.add(50 * time.Second)
	if ok, _ := b.TryAcquire(ctx, "x"); ok {
		t.Fatal("b took a lease renewed 50 s ago with a 1 min TTL")
	}
	c.add(11 * time.Second)
	if ok, err := b.TryAcquire(ctx, "x"); err != nil || !ok {
		t.Fatalf("b takes the expired lease: %v, %v", ok, err)
	}
	if err := a.Renew(ctx, "x"); !errors.Is(err, lease.ErrLost) {
		t.Fatalf("a renews a lease b took: %v", err)
	}

	// Release hands over at once.
	if err := b.Release(ctx, "x"); err != nil {
		t.Fatal(err)
	}
	if ok, err := a.TryAcquire(ctx, "x"); err != nil || !ok {
		t.Fatalf("a takes the released lease: %v, %v", ok, err)
	}
	// ReleaseAll gives up only its own.
	if err := a.ReleaseAll(ctx); err != nil {
		t.Fatal(err)
	}
	if _, ok, _ := a.Get(ctx, "x"); ok {
		t.Fatal("x still held after a's ReleaseAll")
	}
	if info, ok, _ := a.Get(ctx, "y"); !ok || info.Holder != "b" {
		t.Fatalf("a's ReleaseAll took b's lease: %+v", info)
	}
}

func TestBadNames(t *testing.T) {
	s1, _ := twoStores(t)
	l := lease.New(s1, lease.Options{Holder: "a"})
	for _, name := range []string{"", strings.Repeat("n", 1025)} {
		if _, err := l.TryAcquire(context.Background(), name); err == nil {
			t.Errorf("TryAcquire(%.10q…) took a bad name", name)
		}
		if _, _, err := l.Lock(context.Background(), name); err == nil {
			t.Errorf("Lock(%.10q…) took a bad name", name)
		}
	}
}

func TestHoldersAreDistinct(t *testing.T) {
	a, b := lease.Holder(), lease.Holder()
	if a == b || a == "" {
		t.Fatalf("Holder() gave %q twice", a)
	}
}

// leader runs RunWhileLeader for l, reporting each term on terms and
// counting the terms running now.
type leader struct {
	name    string
	running *atomic.Int32
	max     *atomic.Int32
	terms   chan string
	ended   chan error // each term's end cause
	stop    context.CancelFunc
	done    chan struct{}
}

func startLeader(t *testing.T, l *lease.Leases, name string, running, maxRunning *atomic.Int32) *leader {
	ctx, cancel := context.WithCancel(context.Background())
	ld := &leader{name: name, running: running, max: maxRunning, terms: make(chan string, 10), ended: make(chan error, 10),
		stop: cancel, done: make(chan struct{})}
	go func() {
		defer close(ld.done)
		l.RunWhileLeader(ctx, "controller", func(ctx context.Context) {
			n := running.Add(1)
			for {
				m := maxRunning.Load()
				if n <= m || maxRunning.CompareAndSwap(m, n) {
					break
				}
			}
			ld.terms <- name
			<-ctx.Done()
			running.Add(-1)
			ld.ended <- context.Cause(ctx)
		})
	}()
	t.Cleanup(func() { cancel(); <-ld.done })
	return ld
}

func TestRunWhileLeaderHandsOverOnStop(t *testing.T) {
	s1, s2 := twoStores(t)
	opts := func(h string) lease.Options {
		return lease.Options{Holder: h, TTL: 30 * time.Second, Renew: 100 * time.Millisecond, Retry: 20 * time.Millisecond}
	}
	var running, maxRunning atomic.Int32
	a := startLeader(t, lease.New(s1, opts("a")), "a", &running, &maxRunning)
	<-a.terms
	b := startLeader(t, lease.New(s2, opts("b")), "b", &running, &maxRunning)
	// b waits while a leads and renews (several renewals pass).
	time.Sleep(500 * time.Millisecond)
	select {
	case <-b.terms:
		t.Fatal("b leads while a does")
	default:
	}
	// a stops: its release hands over at once, long before the 30 s TTL.
	a.stop()
	<-a.done
	select {
	case <-b.terms:
	case <-time.After(20 * time.Second):
		t.Fatal("b did not lead after a released the lease")
	}
	if m := maxRunning.Load(); m != 1 {
		t.Fatalf("%d leaders at once", m)
	}
}

func TestLeaderThatLosesTheLeaseIsCancelled(t *testing.T) {
	ctx := context.Background()
	s1, s2 := twoStores(t)
	var running, maxRunning atomic.Int32
	a := startLeader(t, lease.New(s1, lease.Options{Holder: "a", TTL: time.Minute, Renew: 50 * time.Millisecond}), "a", &running, &maxRunning)
	<-a.terms
	// b's clock is two minutes ahead: a's lease looks expired to it, as
	// it would after a stalled a missed its renewals.
	b := lease.New(s2, lease.Options{Holder: "b", TTL: time.Minute, Now: func() time.Time { return time.Now().Add(2 * time.Minute) }})
	if ok, err := b.TryAcquire(ctx, "controller"); err != nil || !ok {
		t.Fatalf("b takes the lease: %v %v", ok, err)
	}
	select {
	case cause := <-a.ended:
		if !errors.Is(cause, lease.ErrLost) {
			t.Fatalf("a's term ended by %v, want ErrLost", cause)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("a kept leading after b took the lease")
	}
	if info, _, _ := b.Get(ctx, "controller"); info.Holder != "b" {
		t.Fatalf("a's step-down released b's lease: %+v", info)
	}
}

func TestLeaderCancelledWhenRenewalsFail(t *testing.T) {
	s1, _ := twoStores(t)
	var running, maxRunning atomic.Int32
	a := startLeader(t, lease.New(s1, lease.Options{Holder: "a", TTL: 300 * time.Millisecond, Renew: 100 * time.Millisecond}), "a", &running, &maxRunning)
	<-a.terms
	// The database goes away: renewals fail, and a stops at its lease's
	// end, before any other process could take it.
	s1.Writer().Close()
	select {
	case cause := <-a.ended:
		if !errors.Is(cause, lease.ErrLost) {
			t.Fatalf("a's term ended by %v, want ErrLost", cause)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("a kept leading with no database")
	}
}

func TestLockSerializesProcessesAndGoroutines(t *testing.T) {
	ctx := context.Background()
	s1, s2 := twoStores(t)
	ls := []*lease.Leases{
		lease.New(s1, lease.Options{Holder: "a", TTL: 30 * time.Second}),
		lease.New(s2, lease.Options{Holder: "b", TTL: 30 * time.Second}),
	}
	var inside, overlaps atomic.Int32
	var wg sync.WaitGroup
	for i := range 8 { // four goroutines in each of two processes
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range 3 {
				_, unlock, err := ls[i%2].Lock(ctx, "git:repo")
				if err != nil {
					t.Error(err)
					return
				}
				if inside.Add(1) > 1 {
					overlaps.Add(1)
				}
				time.Sleep(2 * time.Millisecond)
				inside.Add(-1)
				unlock()
			}
		}()
	}
	wg.Wait()
	if n := overlaps.Load(); n > 0 {
		t.Fatalf("%d overlapping holders", n)
	}
	if _, ok, _ := ls[0].Get(ctx, "git:repo"); ok {
		t.Fatal("the lease is still held after every unlock")
	}
	// A waiter gives up with its context.
	_, unlock, err := ls[0].Lock(ctx, "k")
	if err != nil {
		t.Fatal(err)
	}
	defer unlock()
	wctx, cancel := context.WithTimeout(ctx, 200*time.Millisecond)
	defer cancel()
	if _, _, err := ls[1].Lock(wctx, "k"); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Lock of a held lease: %v, want the context's end", err)
	}
}

func TestRecoverFreesEveryLease(t *testing.T) {
	ctx := context.Background()
	s1, s2 := twoStores(t)
	a := lease.New(s1, lease.Options{Holder: "a"})
	for _, name := range []string{"x", "y"} {
		if ok, err := a.TryAcquire(ctx, name); err != nil || !ok {
			t.Fatal(ok, err)
		}
	}
	if storetest.OnPostgres() {
		// Servers share a PostgreSQL database: none may free the
		// others' leases, which expire instead.
		if n, err := lease.Recover(ctx, s2); err != nil || n != 0 {
			t.Fatalf("Recover on PostgreSQL: %d, %v; want 0", n, err)
		}
		if ok, err := lease.New(s2, lease.Options{Holder: "b"}).TryAcquire(ctx, "x"); err != nil || ok {
			t.Fatalf("b takes a's live lease after Recover on PostgreSQL: %v %v", ok, err)
		}
		return
	}
	if n, err := lease.Recover(ctx, s2); err != nil || n != 2 {
		t.Fatalf("Recover: %d, %v; want 2", n, err)
	}
	if ok, err := lease.New(s2, lease.Options{Holder: "b"}).TryAcquire(ctx, "x"); err != nil || !ok {
		t.Fatalf("b takes x after Recover: %v %v", ok, err)
	}
}
