package jobs_test

import (
	"context"
	"database/sql"
	"sync"
	"testing"
	"time"

	"github.com/riverqueue/river"

	"github.com/scangate/scangate/internal/jobs"
	"github.com/scangate/scangate/internal/store"
	"github.com/scangate/scangate/internal/storetest"
)

type noteArgs struct{ N int }

func (noteArgs) Kind() string { return "test_note" }

type noteWorker struct {
	river.WorkerDefaults[noteArgs]
	mu   sync.Mutex
	seen map[int]int
}

func (w *noteWorker) Work(_ context.Context, j *river.Job[noteArgs]) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.seen[j.Args.N]++
	return nil
}

// TestRiverOnPostgres inserts jobs in the transaction that writes an
// application row, as the store's code does, and two clients (two
// replicas) on the same PostgreSQL database work them all, each once.
func TestRiverOnPostgres(t *testing.T) {
	ctx := context.Background()
	url := storetest.Postgres(t)
	var sts []*store.Store
	for range 2 {
		st, err := store.OpenPostgres(ctx, url, t.TempDir())
		if err != nil {
			t.Fatal(err)
		}
		defer st.Close()
		if err := jobs.Migrate(ctx, st); err != nil {
			t.Fatal(err)
		}
		sts = append(sts, st)
	}
	// Recover is SQLite's: on PostgreSQL a running job may be another
	// replica's.
	if n, err := jobs.Recover(ctx, sts[0]); err != nil || n != 0 {
		t.Fatalf("Recover = %d, %v", n, err)
	}
	w := &noteWorker{seen: map[int]int{}}
	workers := river.NewWorkers()
	river.AddWorker(workers, w)
	var clients []*jobs.Client
	for _, st := range sts {
		c, err := jobs.New(st, workers, jobs.Config{Queues: map[string]int{river.QueueDefault: 4}, Poll: time.Second})
		if err != nil {
			t.Fatal(err)
		}
		if err := c.Start(ctx); err != nil {
			t.Fatal(err)
		}
		defer c.Stop(context.Background())
		clients = append(clients, c)
	}
	const n = 200
	err := sts[0].InTx(ctx, func(tx *sql.Tx) error {
		if _, err := tx.ExecContext(ctx, `INSERT INTO vuln_meta (key, value) VALUES ($1, $2)`, "k", "v"); err != nil {
			return err
		}
		params := make([]river.InsertManyParams, n)
		for i := range params {
			params[i] = river.InsertManyParams{Args: noteArgs{N: i}}
		}
		_, err := clients[0].InsertManyTx(ctx, tx, params)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(60 * time.Second)
	for {
		w.mu.Lock()
		done := len(w.seen)
		w.mu.Unlock()
		if done == n {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d of %d jobs worked in 60 s", done, n)
		}
		time.Sleep(50 * time.Millisecond)
	}
	for i, c := range w.seen {
		if c != 1 {
			t.Errorf("job %d worked %d times", i, c)
		}
	}
	// River records completions in batches: wait for them.
	for {
		pending, err := jobs.Pending(ctx, sts[1])
		if err != nil {
			t.Fatal(err)
		}
		if len(pending) == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("still pending: %v", pending)
		}
		time.Sleep(50 * time.Millisecond)
	}
}
