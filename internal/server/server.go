// Package server runs scangate's long-lived process: the embedded registry,
// the REST API, the event bus and the scanner, over one SQLite database and
// one River job queue, on one listener (127.0.0.1 by default).
package server

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/riverqueue/river"

	"github.com/scangate/scangate/internal/api"
	"github.com/scangate/scangate/internal/auth"
	"github.com/scangate/scangate/internal/events"
	"github.com/scangate/scangate/internal/jobs"
	"github.com/scangate/scangate/internal/pipeline"
	"github.com/scangate/scangate/internal/registry"
	"github.com/scangate/scangate/internal/scan"
	"github.com/scangate/scangate/internal/scanner"
	"github.com/scangate/scangate/internal/store"
)

// Config is the server's configuration; zero values take the defaults.
type Config struct {
	// Addr is the address to listen on (127.0.0.1:5000).
	Addr string
	// DataDir holds the database and the registry's storage.
	DataDir string
	// ScanConcurrency is how many scans run at once (2).
	ScanConcurrency int
	// BuildConcurrency is how many pipeline builds run at once (2).
	BuildConcurrency int
	// AnonymousPull lets clients without a token pull images.
	AnonymousPull bool
	// RescanWindow keeps images pushed or pulled within it re-evaluated
	// when the database changes (30 days).
	RescanWindow time.Duration
	// DeliveryRetryWindow is how long a failing webhook is retried before
	// its event goes to the dead-letter list (24 hours).
	DeliveryRetryWindow time.Duration
	// MaxCatalog and MaxTags bound a page of the catalog and of a tag list.
	MaxCatalog, MaxTags int
	// SeverityOrder chooses whose rating counts (nvd).
	SeverityOrder scan.SeverityOrder
	// ShutdownTimeout bounds how long a stop waits for requests and
	// running jobs before cancelling the jobs, which run again at the next
	// start (30 s).
	ShutdownTimeout time.Duration
	Logger          *slog.Logger
	// Ready, if not nil, receives the address served once the server is
	// listening.
	Ready chan<- string
}

func (c *Config) defaults() {
	if c.Addr == "" {
		c.Addr = "127.0.0.1:5000"
	}
	if c.ScanConcurrency <= 0 {
		c.ScanConcurrency = 2
	}
	if c.BuildConcurrency <= 0 {
		c.BuildConcurrency = 2
	}
	if c.ShutdownTimeout == 0 {
		c.ShutdownTimeout = 30 * time.Second
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	if c.MaxCatalog == 0 {
		c.MaxCatalog = 1000
	}
	if c.MaxTags == 0 {
		c.MaxTags = 1000
	}
}

// Run serves until ctx is done, then drains: it stops accepting, lets
// requests and running jobs finish within ShutdownTimeout, and cancels
// what is left, whose jobs run again at the next start.
func Run(ctx context.Context, cfg Config) error {
	cfg.defaults()
	log := cfg.Logger
	scan.SetLogger(log)
	unlock, err := lockDataDir(cfg.DataDir)
	if err != nil {
		return err
	}
	defer unlock()

	st, err := store.Open(ctx, filepath.Join(cfg.DataDir, store.FileName))
	if err != nil {
		return err
	}
	defer st.Close()
	if err := jobs.Migrate(ctx, st); err != nil {
		return err
	}
	if n, err := jobs.Recover(ctx, st); err != nil {
		return err
	} else if n > 0 {
		log.Info("jobs left running by the last server are queued again", "jobs", n)
	}

	ln, err := net.Listen("tcp", cfg.Addr)
	if err != nil {
		return fmt.Errorf("listen: %w", err)
	}
	defer ln.Close()
	host := loopbackHost(ln.Addr())

	m := newMetrics(st)
	workers := river.NewWorkers()
	client, err := jobs.New(st, workers, jobs.Config{
		Queues: map[string]int{river.QueueDefault: 2, "events": 4, scanner.Queue: cfg.ScanConcurrency, pipeline.Queue: cfg.BuildConcurrency},
		Logger: log.With("component", "jobs"),
	})
	if err != nil {
		return err
	}
	bus := events.NewBus(st, client, events.BusOptions{
		RetryWindow: cfg.DeliveryRetryWindow,
		OnDelivery:  m.delivered,
		Logger:      log.With("component", "events"),
	})
	bus.Register(workers)
	tokens := auth.NewTokens(st)
	reg, err := registry.New(ctx, registry.Config{
		Root:          filepath.Join(cfg.DataDir, "registry"),
		MaxCatalog:    cfg.MaxCatalog,
		MaxTags:       cfg.MaxTags,
		AnonymousPull: cfg.AnonymousPull,
		Tokens:        tokens,
		Logger:        log.With("component", "registry"),
	})
	if err != nil {
		return err
	}
	defer reg.Close()
	sc := scanner.New(st, reg, bus, client, scanner.Options{
		Host:         host,
		Order:        cfg.SeverityOrder,
		RescanWindow: cfg.RescanWindow,
		OnScan:       m.scanned,
		Logger:       log.With("component", "scanner"),
	})
	sc.Register(workers)
	reg.SetHooks(sc)

	key, err := pipeline.LoadKey(cfg.DataDir)
	if err != nil {
		return err
	}
	srcs, err := newSources(cfg.DataDir, tokens, log.With("component", "source"))
	if err != nil {
		return err
	}
	builder, err := newBuilder(ctx, tokens, host)
	if err != nil {
		return err
	}
	defer builder.Close()
	if v, err := builder.Ping(ctx); err != nil {
		log.Warn("no Docker Engine: pipeline builds will wait for one", "err", err)
	} else {
		log.Info("Docker Engine", "api", v)
	}
	pipes := pipeline.New(st, bus, client, pipeline.Options{
		Key: key, Source: pipelineSource{srcs.repos}, Builder: pipelineBuilder{builder}, Logger: log.With("component", "pipeline"),
	})
	srcs.setPipelines(pipes)
	pipes.Register(workers)
	if err := bus.Handle(pipeline.HandlerName, pipeline.ScanPattern, pipes.HandleScan); err != nil {
		return err
	}

	var ready atomic.Bool
	mux := http.NewServeMux()
	mux.Handle("/v2/", reg)
	mux.Handle("/git/", srcs.repos)
	mux.Handle("/hooks/git", srcs.repos.WebhookHandler(srcs.webhookSecret))
	mux.Handle("/api/v1/", api.New(api.Deps{Store: st, Tokens: tokens, Bus: bus, Scanner: sc, Pipelines: pipes, Heads: srcs.head, Repos: srcs.repos}))
	mux.HandleFunc("/healthz", func(w http.ResponseWriter, _ *http.Request) { _, _ = w.Write([]byte("ok\n")) })
	mux.HandleFunc("/readyz", func(w http.ResponseWriter, r *http.Request) {
		if !ready.Load() {
			http.Error(w, "starting", http.StatusServiceUnavailable)
			return
		}
		if err := st.Reader().PingContext(r.Context()); err != nil {
			http.Error(w, "database: "+err.Error(), http.StatusServiceUnavailable)
			return
		}
		_, _ = w.Write([]byte("ok\n"))
	})
	mux.Handle("/metrics", m.handler())
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 30 * time.Second, ErrorLog: slog.NewLogLogger(log.Handler(), slog.LevelDebug)}

	// Jobs run on their own context: the server's ends at the signal, and
	// the jobs must outlive it to drain.
	jobCtx, cancelJobs := context.WithCancel(context.WithoutCancel(ctx))
	defer cancelJobs()
	if err := client.Start(jobCtx); err != nil {
		return fmt.Errorf("start jobs: %w", err)
	}
	serveErr := make(chan error, 1)
	go func() { serveErr <- srv.Serve(ln) }()

	if n, err := sc.Reconcile(ctx); err != nil {
		log.Error("reconcile the registry", "err", err)
	} else if n > 0 {
		log.Info("manifests without a scan queued", "manifests", n)
	}
	if err := srcs.reconcile(ctx); err != nil {
		log.Error("reconcile the pipelines' sources", "err", err)
	}
	go srcs.watch(jobCtx, 15*time.Second)
	// The database may have changed while no server ran.
	if err := st.InTx(ctx, func(tx *sql.Tx) error { return scanner.QueueReevaluation(ctx, tx, client) }); err != nil {
		log.Error("queue re-evaluation", "err", err)
	}
	ready.Store(true)
	log.Info("scangate server ready", "addr", host, "data", cfg.DataDir)
	if cfg.Ready != nil {
		cfg.Ready <- host
	}

	select {
	case <-ctx.Done():
	case err := <-serveErr:
		return fmt.Errorf("serve: %w", err)
	}
	log.Info("stopping: draining requests and jobs", "timeout", cfg.ShutdownTimeout)
	ready.Store(false)
	stopCtx, cancel := context.WithTimeout(context.Background(), cfg.ShutdownTimeout)
	defer cancel()
	err = srv.Shutdown(stopCtx)
	if jerr := client.Stop(stopCtx); jerr != nil {
		// Jobs still running are cancelled; River records them for retry.
		log.Warn("jobs did not finish in time; cancelling them", "err", jerr)
		cctx, ccancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer ccancel()
		_ = client.StopAndCancel(cctx)
	}
	if errors.Is(err, context.DeadlineExceeded) {
		log.Warn("requests still running at the end of the drain were cut")
		err = nil
	}
	return err
}

// lockDataDir makes sure one server at a time works on a data folder: two
// would each think the other's running jobs were abandoned.
func lockDataDir(dir string) (func(), error) {
	if err := os.MkdirAll(dir, 0o750); err != nil {
		return nil, fmt.Errorf("data dir: %w", err)
	}
	path := filepath.Join(dir, "server.lock")
	f, err := os.OpenFile(path, os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		return nil, fmt.Errorf("data dir: %w", err)
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		f.Close()
		return nil, fmt.Errorf("another scangate server is using %s (%s is locked)", dir, path)
	}
	return func() { f.Close() }, nil
}
