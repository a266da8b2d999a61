// Package server runs scangate's long-lived process: the embedded registry,
// the REST API, the event bus and the scanner, over one SQLite database and
// one River job queue, on one listener (127.0.0.1 by default).
//
// The listener speaks HTTPS (HTTP/2 and HTTP/1.1) when given a certificate,
// and refuses plain HTTP on any address but loopback unless told
// otherwise. Every request passes, in order: the connection cap's
// bookkeeping (limits.go), the trusted proxies' X-Forwarded-* (proxy.go),
// the failed-authentication limit (auth.Limiter), and its route's read and
// write deadlines (limits.go).
package server

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/riverqueue/river"

	"github.com/scangate/scangate/internal/api"
	"github.com/scangate/scangate/internal/auth"
	"github.com/scangate/scangate/internal/build"
	"github.com/scangate/scangate/internal/deploy"
	"github.com/scangate/scangate/internal/egress"
	"github.com/scangate/scangate/internal/engine/docker"
	"github.com/scangate/scangate/internal/events"
	"github.com/scangate/scangate/internal/jobs"
	"github.com/scangate/scangate/internal/layercache"
	"github.com/scangate/scangate/internal/lb"
	"github.com/scangate/scangate/internal/lease"
	"github.com/scangate/scangate/internal/pipeline"
	"github.com/scangate/scangate/internal/registry"
	"github.com/scangate/scangate/internal/scan"
	"github.com/scangate/scangate/internal/scanner"
	"github.com/scangate/scangate/internal/stack"
	"github.com/scangate/scangate/internal/store"
	"github.com/scangate/scangate/internal/vulndb"
)

// Config is the server's configuration; zero values take the defaults.
type Config struct {
	// Addr is the address to listen on (127.0.0.1:5000).
	Addr string
	// DataDir holds the database and the registry's storage.
	DataDir string
	// Database is empty for SQLite in DataDir (one server per folder), or
	// a postgres:// URL of a database that replicas share.
	Database string
	// RegistryHost is the registry's name (host[:port]) that builds push
	// to, task images are pulled from and events name: that of the load
	// balancer in front of replicas, the same on each. Empty is the
	// address listened on (loopback for a wildcard).
	RegistryHost string
	// RegistryStorage, RegistrySecret and RegistryCache are the registry's
	// storage URL, HTTP secret and blob-descriptor cache (see
	// registry.Config).
	RegistryStorage, RegistrySecret, RegistryCache string
	// ScanConcurrency is how many scans run at once (2).
	ScanConcurrency int
	// LayerCacheBytes bounds the scans' layer cache in the data folder;
	// 0 turns it off.
	LayerCacheBytes int64
	// BuildConcurrency is how many pipeline builds run at once (2).
	BuildConcurrency int
	// BuildRegistries are the registries (host[:port], or with a
	// repository prefix) a build's FROM may name besides scangate's own.
	BuildRegistries []string
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
	// TaskRetention keeps stopped tasks this long (24 hours).
	TaskRetention time.Duration
	// DenyRejectedPulls names the repositories (path.Match patterns, "*"
	// for all) whose images the gate rejected only admins may pull.
	DenyRejectedPulls []string
	// TLSCert and TLSKey are PEM files of the certificate (with its
	// chain) and key to serve HTTPS with; both are read again on SIGHUP.
	TLSCert, TLSKey string
	// InsecurePlaintext allows plain HTTP on an address that is not
	// loopback.
	InsecurePlaintext bool
	// TrustedProxies are the reverse proxies whose X-Forwarded-For,
	// -Proto and -Host headers are believed; everyone else's are removed.
	TrustedProxies []netip.Prefix
	// MetricsPublic serves /metrics without a token.
	MetricsPublic bool
	// Limits bound connections, time, bodies and repository sizes.
	Limits Limits
	// Retention bounds how long events, executions and dead letters stay.
	Retention Retention
	// AllowPrivateTargets are the prefixes of loopback, link-local,
	// private and other special-purpose addresses that webhooks and
	// external git sources may connect to all the same (none by default;
	// see package egress).
	AllowPrivateTargets []netip.Prefix
	Logger              *slog.Logger
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
	c.Limits.defaults()
	c.Retention.defaults()
}

// Run serves until ctx is done, then drains: it stops accepting, lets
// requests and running jobs finish within ShutdownTimeout, and cancels
// what is left, whose jobs run again at the next start.
func Run(ctx context.Context, cfg Config) error {
	cfg.defaults()
	scan.SetLogger(cfg.Logger)
	if err := cfg.Retention.check(cfg.DeliveryRetryWindow); err != nil {
		return err
	}
	var cert *certificate
	if cfg.TLSCert != "" || cfg.TLSKey != "" {
		var err error
		if cert, err = loadCertificate(cfg.TLSCert, cfg.TLSKey); err != nil {
			return err
		}
	}
	// SQLite has one server per data folder; PostgreSQL's replicas share
	// the database, each with its own folder or a shared one.
	if !store.IsPostgres(cfg.Database) {
		unlock, err := lockDataDir(cfg.DataDir)
		if err != nil {
			return err
		}
		defer unlock()
	}
	// Last of all, once everything is closed: a person reading the log
	// knows the process is done, not hung.
	defer cfg.Logger.Info("scangate server stopped", "data", cfg.DataDir)
	st, err := openStore(ctx, cfg)
	if err != nil {
		return err
	}
	defer st.Close()
	if err := sealSecrets(ctx, cfg, st); err != nil {
		return err
	}
	ln, err := net.Listen("tcp", cfg.Addr)
	if err != nil {
		return fmt.Errorf("listen: %w", err)
	}
	defer ln.Close()
	if cert == nil {
		if err := checkPlaintext(ln.Addr(), cfg.InsecurePlaintext, cfg.Logger); err != nil {
			return err
		}
	}
	host := cfg.RegistryHost
	if host == "" {
		host = loopbackHost(ln.Addr())
	}
	p, err := assemble(ctx, cfg, st, host)
	if err != nil {
		return err
	}
	defer p.close()
	p.cert = cert
	return p.serve(ctx, ln)
}

// openStore opens the database and readies River's tables, taking over the
// jobs a killed server left running.
func openStore(ctx context.Context, cfg Config) (*store.Store, error) {
	st, err := store.OpenDatabase(ctx, cfg.Database, cfg.DataDir)
	if err != nil {
		return nil, err
	}
	if err := jobs.Migrate(ctx, st); err != nil {
		st.Close()
		return nil, err
	}
	n, err := jobs.Recover(ctx, st)
	if err != nil {
		st.Close()
		return nil, err
	}
	if n > 0 {
		cfg.Logger.Info("jobs left running by the last server are queued again", "jobs", n)
	}
	// Like the jobs, the leases a killed server held are its own: the
	// data folder's lock says no other server uses this database (SQLite
	// only; servers sharing a database let them expire).
	if n, err = lease.Recover(ctx, st); err != nil {
		st.Close()
		return nil, err
	} else if n > 0 {
		cfg.Logger.Info("leases left by the last server are freed", "leases", n)
	}
	return st, nil
}

// parts are the server's components, wired together.
type parts struct {
	cfg  Config
	host string // the registry's name (Config.RegistryHost)
	// key derives approval tokens and the server's own tokens; replicas
	// share it.
	key     []byte
	st      *store.Store
	jobs    *jobs.Client
	metrics *metrics
	bus     *events.Bus
	egress  *egress.Guard
	tokens  *auth.Tokens
	reg     *registry.Registry
	scanner *scanner.Scanner
	results *scanner.Results
	stacks  *stack.Records
	sources *sources
	builder *build.Builder
	pipes   *pipeline.Service
	// deploy runs services on runtime, behind balancer.
	runtime  *docker.Runtime
	balancer *lb.Balancer
	deploy   *deploy.Controller
	// leases are this process's, on the database every replica shares.
	leases *lease.Leases
	// ready is set once serving and cleared when the drain begins;
	// draining tells /readyz why it is not.
	ready, draining atomic.Bool
	// cert is the TLS certificate; nil serves plain HTTP.
	cert  *certificate
	conns *connLimiter
}

// assemble makes the components and registers their job workers; nothing
// runs yet.
func assemble(ctx context.Context, cfg Config, st *store.Store, host string) (_ *parts, err error) {
	log := cfg.Logger
	p := &parts{cfg: cfg, host: host, st: st, metrics: newMetrics(st), tokens: auth.NewTokens(st),
		leases: lease.New(st, lease.Options{Logger: log.With("component", "lease")})}
	defer func() {
		if err != nil {
			p.close()
		}
	}()
	if p.key, err = pipeline.LoadKey(cfg.DataDir); err != nil {
		return nil, err
	}
	workers := river.NewWorkers()
	queues := events.Queues()
	queues[river.QueueDefault] = 2
	queues[scanner.Queue] = cfg.ScanConcurrency
	queues[pipeline.Queue] = cfg.BuildConcurrency
	p.jobs, err = jobs.New(st, workers, jobs.Config{
		ID:     p.leases.Holder(),
		Queues: queues,
		Logger: log.With("component", "jobs"),
	})
	if err != nil {
		return nil, err
	}
	p.egress = newEgress(cfg)
	p.bus = events.NewBus(st, p.jobs, events.BusOptions{
		RetryWindow: cfg.DeliveryRetryWindow, OnDelivery: p.metrics.delivered, Logger: log.With("component", "events"),
		Egress: p.egress, OnRoute: logEvent(log),
	})
	p.bus.Register(workers)
	p.reg, err = registry.New(ctx, registry.Config{
		Root: filepath.Join(cfg.DataDir, "registry"), MaxCatalog: cfg.MaxCatalog, MaxTags: cfg.MaxTags,
		AnonymousPull: cfg.AnonymousPull, Tokens: p.tokens, Logger: log.With("component", "registry"),
		PullGate: p.pullGate(), RepositoryQuota: cfg.Limits.RepositoryQuota, TagLock: tagLock(p.leases),
		Storage: cfg.RegistryStorage, Secret: cfg.RegistrySecret, Cache: cfg.RegistryCache,
	})
	if err != nil {
		return nil, err
	}
	var cache *layercache.Cache
	if cfg.LayerCacheBytes > 0 {
		if cache, err = layercache.Open(filepath.Join(cfg.DataDir, layercache.Dir), cfg.LayerCacheBytes); err != nil {
			return nil, err
		}
	}
	p.results, p.stacks = scanner.NewResults(st), stack.NewRecords(st)
	p.scanner = scanner.New(st, p.reg, p.bus, p.jobs, scanner.Options{
		Host: host, Order: cfg.SeverityOrder, RescanWindow: cfg.RescanWindow, OnScan: p.metrics.scanned,
		LayerCache: cache, Logger: log.With("component", "scanner"),
	})
	p.scanner.Register(workers)
	p.reg.SetHooks(p.scanner)
	if err := p.assembleDeploy(ctx); err != nil {
		return nil, err
	}
	if err := p.assemblePipelines(ctx, workers); err != nil {
		return nil, err
	}
	return p, nil
}

// assemblePipelines makes the sources, the builder and the pipeline service
// with its evaluator.
func (p *parts) assemblePipelines(ctx context.Context, workers *river.Workers) error {
	log := p.cfg.Logger
	var err error
	if p.sources, err = newSources(p.cfg.DataDir, p.st, p.leases, p.tokens, p.cfg.Limits, p.egress, log.With("component", "source")); err != nil {
		return err
	}
	if p.builder, err = newBuilder(ctx, p.tokens, p.key, p.host, p.cfg.BuildRegistries); err != nil {
		return err
	}
	if v, err := p.builder.Ping(ctx); err != nil {
		log.Warn("no Docker Engine: pipeline builds will wait for one", "err", err)
	} else {
		log.Info("Docker Engine", "api", v)
	}
	p.pipes = pipeline.New(p.st, p.bus, p.jobs, pipeline.Options{
		Key: p.key, Egress: p.egress, Source: pipelineSource{p.sources.repos}, Builder: pipelineBuilder{p.builder}, Deployer: pipelineDeployer{p.deploy},
		Promoter: p.reg,
		Logger:   log.With("component", "pipeline"),
	})
	p.sources.setPipelines(p.pipes)
	p.reg.SetTagGuard(pipelineTags{p.pipes})
	p.pipes.Register(workers)
	if err := p.bus.Handle(pipeline.DeployHandlerName, pipeline.DeploymentPattern, p.pipes.HandleDeployment); err != nil {
		return err
	}
	return p.bus.Handle(pipeline.HandlerName, pipeline.ScanPattern, p.pipes.HandleScan)
}

func (p *parts) close() {
	if p.builder != nil {
		p.builder.Close()
	}
	if p.balancer != nil {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		_ = p.balancer.Shutdown(ctx)
		cancel()
	}
	if p.runtime != nil {
		p.runtime.Close()
	}
	if p.reg != nil {
		p.reg.Close()
	}
}

// routes are the server's HTTP endpoints, behind the wrappers every
// request passes (see the package's doc).
func (p *parts) routes() http.Handler {
	var h http.Handler = p.mux()
	h = deadlines(p.cfg.Limits, h)
	h = auth.NewLimiter(p.cfg.Limits.AuthFailures, p.cfg.Limits.AuthFailureInterval, p.cfg.Logger.With("component", "auth")).Wrap(h)
	h = proxies(p.cfg.TrustedProxies).wrap(h)
	return busy(h)
}

func (p *parts) mux() *http.ServeMux {
	mux := http.NewServeMux()
	mux.Handle("/v2/", p.reg)
	mux.Handle("/git/", p.sources.repos)
	mux.Handle("/hooks/git", p.sources.repos.WebhookHandler(p.sources.webhookSecret))
	mux.Handle("/api/v1/", api.New(api.Deps{Tokens: p.tokens, Bus: p.bus, Scanner: p.scanner, Results: p.results, Stacks: p.stacks,
		Pipelines: p.pipes, Heads: p.sources.head, Repos: p.sources.repos, Deploy: p.deploy, Logger: p.cfg.Logger.With("component", "api")}))
	mux.HandleFunc("/healthz", func(w http.ResponseWriter, _ *http.Request) { _, _ = w.Write([]byte("ok\n")) })
	mux.HandleFunc("/readyz", p.readyz)
	mux.Handle("/metrics", p.metricsHandler())
	mux.Handle("/", p.console())
	return mux
}

// metricsHandler serves /metrics to any valid token (Prometheus sends one
// with authorization.credentials_file), or to anyone with MetricsPublic:
// the metrics name repositories, services and rates an outsider has no
// business reading.
func (p *parts) metricsHandler() http.Handler {
	h := p.metrics.handler()
	if p.cfg.MetricsPublic {
		return h
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		secret, ok := auth.Secret(r)
		if !ok {
			w.Header().Set("WWW-Authenticate", `Bearer realm="scangate"`)
			http.Error(w, "a token is required: Authorization: Bearer <token> (or --metrics-public)", http.StatusUnauthorized)
			return
		}
		if _, err := p.tokens.Verify(r.Context(), secret); err != nil {
			w.Header().Set("WWW-Authenticate", `Bearer realm="scangate"`)
			http.Error(w, "invalid token", http.StatusUnauthorized)
			return
		}
		h.ServeHTTP(w, r)
	})
}

// readyz answers 200 while this replica should get requests: it has
// started, is not draining, and reaches the database and its storage. A
// load balancer in front of several replicas stops sending to one that
// answers 503, and the others take its share.
func (p *parts) readyz(w http.ResponseWriter, r *http.Request) {
	if p.draining.Load() {
		http.Error(w, "draining", http.StatusServiceUnavailable)
		return
	}
	if !p.ready.Load() {
		http.Error(w, "starting", http.StatusServiceUnavailable)
		return
	}
	if err := p.st.Reader().PingContext(r.Context()); err != nil {
		p.cfg.Logger.Warn("readyz: the database does not answer", "err", err)
		http.Error(w, "database unreachable", http.StatusServiceUnavailable)
		return
	}
	if err := p.storageReady(); err != nil {
		p.cfg.Logger.Warn("readyz: storage", "err", err)
		http.Error(w, "storage unreachable", http.StatusServiceUnavailable)
		return
	}
	if err := p.reg.Ping(r.Context()); err != nil {
		p.cfg.Logger.Warn("readyz: registry storage", "err", err)
		http.Error(w, "registry storage does not answer", http.StatusServiceUnavailable)
		return
	}
	_, _ = w.Write([]byte("ok\n"))
}

// storageReady checks that the folder of the hosted repositories is
// there: on shared storage (a network mount) it goes when the mount does. The error, which names paths, goes to the log
// only.
func (p *parts) storageReady() error {
	// The registry's storage, which may not be a folder, answers its own
	// Ping (readyz); hosted git is always a folder.
	dir := filepath.Join(p.cfg.DataDir, "git")
	fi, err := os.Stat(dir)
	if err != nil {
		return err
	}
	if !fi.IsDir() {
		return fmt.Errorf("%s is not a folder", dir)
	}
	return nil
}

// tagLock serializes the changes to one repository:tag (storage write and
// record, see registry.Registry.tags) across every server on the database.
func tagLock(leases *lease.Leases) func(ctx context.Context, key string) (func(), error) {
	return func(ctx context.Context, key string) (func(), error) {
		_, unlock, err := leases.Lock(ctx, "tag:"+key)
		return unlock, err
	}
}

// Leases of the work one replica does at a time (package lease).
const (
	leaseDeploy    = "deploy-controller" // the services' reconcile loop
	leasePollers   = "source-pollers"    // polling external git sources
	leaseRetention = "retention"         // pruning old events and executions
	leaseRescuer   = "job-rescuer"       // requeueing the jobs of servers that died
)

// rescueEvery is how often the rescuer looks for the running jobs of a
// server whose presence lease has expired.
const rescueEvery = 5 * time.Second

// serve starts the jobs and the listener, catches up with what happened
// while no server ran, and drains when ctx is done.
func (p *parts) serve(ctx context.Context, ln net.Listener) error {
	log := p.cfg.Logger
	lim := p.cfg.Limits
	// ReadTimeout and WriteTimeout stay unset: deadlines sets them per
	// route.
	srv := &http.Server{Handler: p.routes(), ReadHeaderTimeout: lim.ReadHeaderTimeout, IdleTimeout: lim.IdleTimeout,
		ConnContext: connContext, ErrorLog: slog.NewLogLogger(log.Handler(), slog.LevelDebug)}
	p.conns = limitConns(ln, lim.MaxConnections, log)
	scheme := "http"
	if p.cert != nil {
		scheme = "https"
		srv.TLSConfig = p.cert.tlsConfig()
		if leaf, err := p.cert.reload(); err == nil {
			logCertificate(log, "TLS certificate", leaf)
		}
		go p.cert.reloadOnHangup(ctx, log)
	}
	// Jobs run on their own context: the server's ends at the signal, and
	// the jobs must outlive it to drain.
	jobCtx, cancelJobs := context.WithCancel(context.WithoutCancel(ctx))
	defer cancelJobs()
	// This server's presence, taken before it runs a job: the jobs it
	// runs are not another server's to requeue while it lasts.
	presence := lease.PresencePrefix + p.leases.Holder()
	if _, err := p.leases.TryAcquire(ctx, presence); err != nil {
		return err
	}
	if err := p.jobs.Start(jobCtx); err != nil {
		return fmt.Errorf("start jobs: %w", err)
	}
	serveErr := make(chan error, 1)
	go func() {
		if p.cert != nil {
			serveErr <- srv.ServeTLS(p.conns, "", "") // ServeTLS, unlike Serve, sets HTTP/2 up
			return
		}
		serveErr <- srv.Serve(p.conns)
	}()
	p.catchUp(ctx)
	// What must run once across the replicas on this database runs where
	// its lease is held, and stops with the server's context, whose end
	// releases the lease so that another replica takes it over at once.
	// The controller's starts and stops left half done, the next leader
	// finishes.
	var leaders sync.WaitGroup
	defer leaders.Wait()
	lead := func(name string, fn func(context.Context)) {
		leaders.Add(1)
		go func() { defer leaders.Done(); p.leases.RunWhileLeader(ctx, name, fn) }()
	}
	// Its presence is renewed like a lease it leads; its end (a stop)
	// releases it.
	lead(presence, func(ctx context.Context) { <-ctx.Done() })
	lead(leaseRescuer, p.rescueEvery)
	lead(leasePollers, func(ctx context.Context) { p.sources.watch(ctx, 15*time.Second) })
	lead(leaseRetention, p.pruneEvery)
	lead(leaseDeploy, func(lctx context.Context) {
		p.deploy.Run(lctx)
		if ctx.Err() == nil {
			// Lost to another replica: its controller listens now.
			p.deploy.StepDown()
		}
	})
	p.ready.Store(true)
	// addr (the registry's host as this machine's Docker Engine names it,
	// or --registry-host) comes first: scripts read it. listening is the
	// address bound.
	log.Info("scangate server ready", "addr", p.host, "listening", ln.Addr().String(), "scheme", scheme, "data", p.cfg.DataDir, "registry_storage", p.reg.Storage().String(),
		"holder", p.leases.Holder(), "max_connections", lim.MaxConnections, "trusted_proxies", len(p.cfg.TrustedProxies), "metrics_public", p.cfg.MetricsPublic)
	if p.cfg.Ready != nil {
		p.cfg.Ready <- loopbackHost(ln.Addr())
	}
	select {
	case <-ctx.Done():
	case err := <-serveErr:
		return fmt.Errorf("serve: %w", err)
	}
	p.draining.Store(true)
	p.ready.Store(false)
	return p.drain(srv)
}

// loggedEvents are the detail types the server's log tells, one line
// each: pushes, scans, the pipelines' steps and decisions, deployments.
// Findings and task changes, which come by the hundred, stay in the event
// log only.
var loggedEvents = map[string]bool{
	events.DetailTypeImagePush: true, events.DetailTypeScan: true, events.DetailTypeApprovalRequested: true,
	events.DetailTypeApprovalOverridden: true, events.DetailTypePipelineExecutionStateChange: true,
	events.DetailTypeStageStateChange: true, deploy.DetailTypeDeploymentStateChange: true,
}

// logEvent writes an info line for each event people follow, with its
// resources and its detail (shortened).
func logEvent(log *slog.Logger) func(events.Envelope) {
	return func(e events.Envelope) {
		if !loggedEvents[e.DetailType] {
			return
		}
		detail := string(e.Detail)
		if len(detail) > 300 {
			detail = detail[:300] + "…"
		}
		log.Info(e.DetailType, "component", "events", "resources", e.Resources, "detail", detail)
	}
}

// catchUp queues what a server that was not running missed: manifests
// without a scan, pushes without an execution, and a database that changed.
func (p *parts) catchUp(ctx context.Context) {
	log := p.cfg.Logger
	// Every scan fails on an empty database: say so now, not at the first
	// push.
	if v, err := vulndb.New(p.st).Version(ctx); err == nil && v.Digest == "" {
		log.Warn("the vulnerability database is empty: every scan will fail until it is filled (scangate db update, or scangate db import PATH offline)",
			"data", p.cfg.DataDir)
	}
	if n, err := p.scanner.Reconcile(ctx); err != nil {
		log.Error("reconcile the registry", "err", err)
	} else if n > 0 {
		log.Info("manifests without a scan queued", "manifests", n)
	}
	if err := p.sources.reconcile(ctx); err != nil {
		log.Error("reconcile the pipelines' sources", "err", err)
	}
	if err := p.st.InTx(ctx, func(tx *sql.Tx) error { return scanner.QueueReevaluation(ctx, tx, p.jobs) }); err != nil {
		log.Error("queue re-evaluation", "err", err)
	}
}

// drain stops accepting, waits for requests and running jobs within the
// shutdown timeout, and cancels the jobs still running, which River
// records for a retry at the next start.
func (p *parts) drain(srv *http.Server) error {
	log := p.cfg.Logger
	log.Info("stopping: draining requests and jobs", "timeout", p.cfg.ShutdownTimeout)
	stopCtx, cancel := context.WithTimeout(context.Background(), p.cfg.ShutdownTimeout)
	defer cancel()
	err := srv.Shutdown(stopCtx)
	if jerr := p.jobs.Stop(stopCtx); jerr != nil {
		log.Warn("jobs did not finish in time; cancelling them", "err", jerr)
		cctx, ccancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer ccancel()
		_ = p.jobs.StopAndCancel(cctx)
	}
	// The leaders released their leases as ctx ended; this also frees
	// the locks of requests cut short, so that no replica waits for
	// their expiry.
	rctx, rcancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer rcancel()
	if rerr := p.leases.ReleaseAll(rctx); rerr != nil {
		log.Warn("release this server's leases", "err", rerr)
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

// rescueEvery requeues, every rescueEvery, the running jobs of servers no
// longer present (PostgreSQL: several servers share the jobs; a SQLite
// server recovers its own at start).
func (p *parts) rescueEvery(ctx context.Context) {
	if p.st.Dialect() != store.Postgres {
		<-ctx.Done()
		return
	}
	tick := time.NewTicker(rescueEvery)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		live, err := p.leases.Present(ctx)
		if err != nil {
			p.cfg.Logger.Warn("rescue jobs: the servers present", "err", err)
			continue
		}
		if n, err := jobs.RequeueOrphans(ctx, p.st, live); err != nil {
			p.cfg.Logger.Warn("rescue jobs", "err", err)
		} else if n > 0 {
			p.cfg.Logger.Info("jobs of a stopped server queued again", "jobs", n)
		}
	}
}
