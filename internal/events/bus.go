package events

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/riverqueue/river"

	"github.com/scangate/scangate/internal/egress"
	"github.com/scangate/scangate/internal/events/pattern"
	"github.com/scangate/scangate/internal/jobs"
	"github.com/scangate/scangate/internal/store"
)

// The kinds of the bus's jobs: routing an event to its rules, and
// delivering it to one target.
const (
	KindRoute   = "route_event"
	KindDeliver = "deliver_event"
)

// The River queues of the bus. Built-in handlers (the pipeline's gate) and
// the routing that feeds them run apart from webhooks, so that a receiver
// that is slow or down never delays them.
const (
	// QueueBus runs the routing of events and the built-in handlers.
	QueueBus = "bus"
	// QueueWebhooks runs webhook deliveries. It keeps the name every
	// delivery had before built-in handlers moved out, so that the ones
	// queued then are still worked.
	QueueWebhooks = "events"
)

// Queues returns the bus's queues and how many workers each runs, for the
// job client's configuration.
func Queues() map[string]int {
	return map[string]int{QueueBus: 4, QueueWebhooks: 4}
}

// replayPriority is River's priority (1 first, 4 last) of the jobs a
// replay queues: a replay of thousands of events must not delay the
// routing and handling of the events happening now.
const replayPriority = 4

// deliverOpts returns the insert options of a delivery to ref.
func deliverOpts(ref targetRef, replay bool) *river.InsertOpts {
	o := &river.InsertOpts{Queue: QueueWebhooks}
	if ref.Handler != "" {
		o.Queue = QueueBus
	}
	if replay {
		o.Priority = replayPriority
	}
	return o
}

// A Handler is a built-in rule target: scangate code that acts on events,
// such as the pipeline gate. It runs as a durable job, retried on error, so
// it must be idempotent.
type Handler func(ctx context.Context, e Envelope) error

// BusOptions tune a Bus.
type BusOptions struct {
	// RetryWindow is how long a failing delivery is retried before it goes
	// to the dead-letter list (24 hours by default, as EventBridge does).
	RetryWindow time.Duration
	// MaxBackoff caps the wait between two attempts (1 hour by default).
	MaxBackoff time.Duration
	// Egress is what webhook targets may connect to: it is checked when a
	// rule is put (CheckRule) and, by the default Client, on the address
	// each delivery dials. By default (egress.New(nil)) no loopback,
	// link-local, private or other special-purpose address.
	Egress *egress.Guard
	// Client sends webhooks (by default: Egress's transport, a 10 s
	// timeout, and redirects are not followed but fail the attempt). A
	// Client given here must make its own checks of the dialled address.
	Client *http.Client
	// MaxPerTarget caps the deliveries to one webhook URL under way at
	// once (2 by default), so that a slow receiver holds no more of the
	// webhook workers; the others serve other receivers.
	MaxPerTarget int
	// BreakerFailures is how many failed attempts in a row to one webhook
	// URL open its circuit (5 by default): its deliveries are then
	// deferred, without an attempt, for BreakerCooldown (30 s by default),
	// after which one probe goes (see targets).
	BreakerFailures int
	BreakerCooldown time.Duration
	// OnDelivery hears of every delivery attempt, and of every delivery
	// dropped (err wraps ErrDropped), for metrics.
	OnDelivery func(rule, target string, err error)
	// OnRoute hears of each event as it is routed, after the transaction
	// that published it committed (so never of one rolled back); a route
	// retried may tell it twice. The server logs the events people follow.
	OnRoute func(Envelope)
	Logger  *slog.Logger
}

// Bus keeps the event log and routes its events by rules to targets, each
// step a durable job: an event is published in the transaction that
// records what it tells, and reaches every target of every matching rule
// at least once.
type Bus struct {
	st      *store.Store
	jobs    *jobs.Client
	rules   *Rules
	opts    BusOptions
	targets *targets

	mu       sync.RWMutex
	handlers map[string]Handler
	builtin  []Rule
}

// NewBus returns the bus over st's event log and rules, inserting its jobs
// with client. Register its workers before the client starts.
func NewBus(st *store.Store, client *jobs.Client, opts BusOptions) *Bus {
	if opts.RetryWindow == 0 {
		opts.RetryWindow = 24 * time.Hour
	}
	if opts.MaxBackoff == 0 {
		opts.MaxBackoff = time.Hour
	}
	if opts.Egress == nil {
		opts.Egress = egress.New(nil)
	}
	if opts.Client == nil {
		opts.Client = &http.Client{
			Transport: opts.Egress.Transport(),
			Timeout:   10 * time.Second,
			// A redirect is no delivery: followed, a 301 or 302 turns the
			// POST into a GET without the event. As GitHub's webhooks do,
			// a 3xx is a failed attempt.
			CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
		}
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.MaxPerTarget <= 0 {
		opts.MaxPerTarget = 2
	}
	if opts.BreakerFailures <= 0 {
		opts.BreakerFailures = 5
	}
	if opts.BreakerCooldown <= 0 {
		opts.BreakerCooldown = 30 * time.Second
	}
	return &Bus{st: st, jobs: client, rules: NewRules(st), opts: opts, handlers: map[string]Handler{},
		targets: newTargets(opts.MaxPerTarget, opts.BreakerFailures, opts.BreakerCooldown)}
}

// Register adds the bus's workers.
func (b *Bus) Register(w *river.Workers) {
	river.AddWorker(w, &routeWorker{bus: b})
	river.AddWorker(w, &deliverWorker{bus: b})
}

// Handle registers a built-in handler under name, and a built-in rule that
// sends it the events pattern matches.
func (b *Bus) Handle(name string, pattern string, h Handler) error {
	r := Rule{Name: name, Pattern: json.RawMessage(pattern), Targets: []Target{{ID: name, Handler: name}}, Builtin: true}
	if err := r.Check(); err != nil {
		return err
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if _, dup := b.handlers[name]; dup {
		// A second rule of the same name would route each event twice.
		return fmt.Errorf("built-in handler %s is already registered", name)
	}
	b.handlers[name] = h
	b.builtin = append(b.builtin, r)
	return nil
}

// CheckRule refuses a rule this bus could not serve: one that names a
// handler it does not have, takes a built-in rule's name, or has a webhook
// whose host is, or resolves now to, only addresses Egress refuses (the
// check is made again at each delivery, on the address dialled).
func (b *Bus) CheckRule(ctx context.Context, r Rule) error {
	b.mu.RLock()
	for _, br := range b.builtin {
		if br.Name == r.Name {
			b.mu.RUnlock()
			return fmt.Errorf("rule %s: the name of a built-in rule", r.Name)
		}
	}
	for _, t := range r.Targets {
		if t.Handler != "" && b.handlers[t.Handler] == nil {
			b.mu.RUnlock()
			return fmt.Errorf("rule %s, target %s: no built-in handler %q", r.Name, t.ID, t.Handler)
		}
	}
	b.mu.RUnlock()
	return CheckTargets(ctx, b.opts.Egress, r)
}

// CheckTargets refuses a rule with a webhook whose host is, or resolves now
// to, only addresses g refuses. A name that does not resolve now passes:
// each delivery checks the address it dials.
func CheckTargets(ctx context.Context, g *egress.Guard, r Rule) error {
	for _, t := range r.Targets {
		if t.Webhook == "" {
			continue
		}
		if err := g.CheckURL(ctx, t.Webhook); err != nil {
			return fmt.Errorf("rule %s, target %s: webhook %s: %w", r.Name, t.ID, RedactURL(t.Webhook), err)
		}
	}
	return nil
}

// PutRule checks r (Rule.Check, CheckRule) and stores it.
func (b *Bus) PutRule(ctx context.Context, r Rule) error {
	if err := r.Check(); err != nil {
		return invalidRule{err}
	}
	if err := b.CheckRule(ctx, r); err != nil {
		return invalidRule{err}
	}
	return b.rules.Put(ctx, r)
}

// ErrInvalidRule reports a rule PutRule refused: the caller's to fix.
var ErrInvalidRule = errors.New("invalid rule")

type invalidRule struct{ error }

func (e invalidRule) Is(target error) bool { return target == ErrInvalidRule }
func (e invalidRule) Unwrap() error        { return e.error }

// DeleteRule deletes a stored rule.
func (b *Bus) DeleteRule(ctx context.Context, name string) error { return b.rules.Delete(ctx, name) }

// Rules returns the built-in rules and then the stored ones.
func (b *Bus) Rules(ctx context.Context) ([]Rule, error) {
	stored, err := b.rules.List(ctx)
	if err != nil {
		return nil, err
	}
	b.mu.RLock()
	defer b.mu.RUnlock()
	return append(append([]Rule{}, b.builtin...), stored...), nil
}

// Publish writes e to the event log and queues its routing, in tx, which
// should be the transaction that records what the event tells.
func (b *Bus) Publish(ctx context.Context, tx *sql.Tx, e Envelope) error {
	if err := b.logEvent(ctx, tx, e); err != nil {
		return err
	}
	if _, err := b.jobs.InsertTx(ctx, tx, routeArgs{EventID: e.ID}, nil); err != nil {
		return fmt.Errorf("publish %s: %w", e.DetailType, err)
	}
	return nil
}

// logLock is the PostgreSQL advisory lock that orders the event log's
// writers (an arbitrary constant, the same in every replica).
const logLock = 0x5ca9_6a7e_0001

// logEvent writes e to the event log.
//
// Readers follow the log by sequence number ("events after N": events tail
// -f, the console's live updates). On PostgreSQL an identity is assigned
// at INSERT but seen at COMMIT, and transactions commit in any order: a
// reader could see N+1 before N commits, move on past N, and never see
// it. So each writing transaction holds one advisory lock from its first
// event until it commits: numbers are then taken and committed in the same
// order. (SQLite has one writer at a time already.)
func (b *Bus) logEvent(ctx context.Context, tx *sql.Tx, e Envelope) error {
	doc, err := json.Marshal(e)
	if err != nil {
		return fmt.Errorf("publish %s: %w", e.DetailType, err)
	}
	if b.st.Dialect() == store.Postgres {
		if _, err := tx.ExecContext(ctx, `SELECT pg_advisory_xact_lock($1)`, int64(logLock)); err != nil {
			return fmt.Errorf("publish %s: order the event log: %w", e.DetailType, err)
		}
	}
	if _, err := tx.ExecContext(ctx, `INSERT INTO events (id, time, source, detail_type, doc) VALUES ($1, $2, $3, $4, $5)`,
		e.ID, e.Time.UTC().Format(time.RFC3339), e.Source, e.DetailType, string(doc)); err != nil {
		return fmt.Errorf("publish %s: %w", e.DetailType, err)
	}
	return nil
}

// PublishMany publishes events in tx, queueing their routing in one
// insert: a re-evaluation that changes many findings publishes thousands.
func (b *Bus) PublishMany(ctx context.Context, tx *sql.Tx, es []Envelope) error {
	if len(es) == 0 {
		return nil
	}
	routes := make([]river.InsertManyParams, 0, len(es))
	for _, e := range es {
		if err := b.logEvent(ctx, tx, e); err != nil {
			return err
		}
		routes = append(routes, river.InsertManyParams{Args: routeArgs{EventID: e.ID}})
	}
	if _, err := b.jobs.InsertManyFastTx(ctx, tx, routes); err != nil {
		return fmt.Errorf("publish %d events: %w", len(es), err)
	}
	return nil
}

// PublishNow publishes e in a transaction of its own.
func (b *Bus) PublishNow(ctx context.Context, e Envelope) error {
	return b.st.InTx(ctx, func(tx *sql.Tx) error { return b.Publish(ctx, tx, e) })
}

// Logged is an event as the log keeps it.
type Logged struct {
	Seq   int64
	Event Envelope
}

// ErrNoEvent reports an event id not in the log.
var ErrNoEvent = errors.New("no such event")

// Event returns one logged event.
func (b *Bus) Event(ctx context.Context, id string) (Envelope, error) {
	var doc string
	err := b.st.Reader().QueryRowContext(ctx, `SELECT doc FROM events WHERE id = $1`, id).Scan(&doc)
	if errors.Is(err, sql.ErrNoRows) {
		return Envelope{}, fmt.Errorf("event %s: %w", id, ErrNoEvent)
	}
	if err != nil {
		return Envelope{}, fmt.Errorf("event %s: %w", id, err)
	}
	return Parse([]byte(doc))
}

// Log returns up to limit events after seq, oldest first.
func (b *Bus) Log(ctx context.Context, after int64, limit int) ([]Logged, error) {
	return ListLog(ctx, b.st, after, limit)
}

// A LogQuery picks events of the log, as "events tail" asks for them.
type LogQuery struct {
	After int64     // only events after this sequence number
	Since time.Time // only events of this second or later
	Types []string  // only events of these detail types; none for all
	Limit int       // at most this many (1 to MaxLogPage)
	// Tail keeps the last Limit events that match rather than the first.
	Tail bool
}

// MaxLogPage is the most events one query of the log returns.
const MaxLogPage = 1000

// QueryLog returns the events q picks, oldest first.
func (b *Bus) QueryLog(ctx context.Context, q LogQuery) ([]Logged, error) {
	return queryLog(ctx, b.st, q)
}

// ListLog returns up to limit events logged in st after seq, oldest first.
func ListLog(ctx context.Context, st *store.Store, after int64, limit int) ([]Logged, error) {
	return queryLog(ctx, st, LogQuery{After: after, Limit: limit})
}

func queryLog(ctx context.Context, st *store.Store, q LogQuery) ([]Logged, error) {
	where, args := []string{"seq > $1"}, []any{q.After}
	if !q.Since.IsZero() {
		// time is RFC 3339 in UTC to the second, so text order is
		// time order.
		args = append(args, q.Since.UTC().Format(time.RFC3339))
		where = append(where, fmt.Sprintf("time >= $%d", len(args)))
	}
	if len(q.Types) > 0 {
		var in []string
		for _, t := range q.Types {
			args = append(args, t)
			in = append(in, fmt.Sprintf("$%d", len(args)))
		}
		where = append(where, "detail_type IN ("+strings.Join(in, ", ")+")")
	}
	order := "ASC"
	if q.Tail {
		order = "DESC"
	}
	args = append(args, q.Limit)
	rows, err := st.Reader().QueryContext(ctx, fmt.Sprintf(`SELECT seq, doc FROM events WHERE %s ORDER BY seq %s LIMIT $%d`,
		strings.Join(where, " AND "), order, len(args)), args...)
	if err != nil {
		return nil, fmt.Errorf("event log: %w", err)
	}
	out, err := scanLogged(rows)
	if q.Tail {
		slices.Reverse(out)
	}
	return out, err
}

// scanLogged reads the rows of seq and doc a query of the log returns.
func scanLogged(rows *sql.Rows) ([]Logged, error) {
	defer rows.Close()
	var out []Logged
	for rows.Next() {
		var l Logged
		var doc string
		if err := rows.Scan(&l.Seq, &doc); err != nil {
			return nil, fmt.Errorf("event log: %w", err)
		}
		var err error
		if l.Event, err = Parse([]byte(doc)); err != nil {
			return nil, fmt.Errorf("event log, event %d: %w", l.Seq, err)
		}
		out = append(out, l)
	}
	return out, rows.Err()
}

// routeArgs asks for one event to be matched against the rules. A replay
// names one rule (or none for all) and a nonce, so that its deliveries are
// new jobs rather than duplicates of the first ones.
type routeArgs struct {
	EventID string `json:"event_id"`
	Rule    string `json:"rule,omitempty"`
	Replay  string `json:"replay,omitempty"`
}

func (routeArgs) Kind() string { return KindRoute }

func (routeArgs) InsertOpts() river.InsertOpts { return river.InsertOpts{Queue: QueueBus} }

type routeWorker struct {
	river.WorkerDefaults[routeArgs]
	bus *Bus
}

func (w *routeWorker) Work(ctx context.Context, job *river.Job[routeArgs]) error {
	b := w.bus
	e, err := b.Event(ctx, job.Args.EventID)
	if err != nil {
		return err
	}
	if b.opts.OnRoute != nil && job.Attempt == 1 {
		b.opts.OnRoute(e)
	}
	doc, err := json.Marshal(e)
	if err != nil {
		return err
	}
	rules, err := b.Rules(ctx)
	if err != nil {
		return err
	}
	var deliveries []river.InsertManyParams
	for _, r := range rules {
		if job.Args.Rule != "" && r.Name != job.Args.Rule {
			continue
		}
		p, err := pattern.Compile(r.Pattern)
		if err != nil {
			b.opts.Logger.Warn("rule has a bad pattern", "rule", r.Name, "err", err)
			continue
		}
		if ok, err := p.Match(doc); err != nil || !ok {
			continue
		}
		for _, t := range r.Targets {
			opts := deliverOpts(refOf(t), job.Args.Replay != "")
			opts.UniqueOpts = river.UniqueOpts{ByArgs: true}
			deliveries = append(deliveries, river.InsertManyParams{
				Args:       deliverArgs{EventID: e.ID, Rule: r.Name, Target: refOf(t), Replay: job.Args.Replay},
				InsertOpts: opts,
			})
		}
	}
	if len(deliveries) == 0 {
		return nil
	}
	// Unique by arguments: a route job run twice after a crash queues each
	// delivery once.
	return b.st.InTx(ctx, func(tx *sql.Tx) error {
		_, err := b.jobs.InsertManyTx(ctx, tx, deliveries)
		return err
	})
}

func nonce() string {
	var raw [8]byte
	_, _ = rand.Read(raw[:])
	return hex.EncodeToString(raw[:])
}
