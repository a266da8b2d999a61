package events

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"database/sql"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"net/url"
	"slices"
	"time"

	"github.com/riverqueue/river"
	"github.com/riverqueue/river/riverdriver/riversqlite"

	"github.com/scangate/scangate/internal/events/pattern"
)

// Webhook headers. The signature is GitHub's scheme: "sha256=" and the hex
// HMAC-SHA256 of the body under the target's secret.
const (
	HeaderSignature = "X-Scangate-Signature-256"
	HeaderEventID   = "X-Scangate-Event-Id"
	HeaderRule      = "X-Scangate-Rule"
)

// Sign returns the signature header's value for body under secret.
func Sign(secret string, body []byte) string {
	m := hmac.New(sha256.New, []byte(secret))
	m.Write(body)
	return "sha256=" + hex.EncodeToString(m.Sum(nil))
}

// deliverArgs sends one event to one target of a rule. The target is
// named, not copied: its settings are looked up when the delivery is sent
// (Bus.currentTarget), so that a rule deleted or changed since the event
// was routed is not sent to, and the target's URL and secret stay out of
// the job's arguments, which River keeps in plain text.
type deliverArgs struct {
	EventID string    `json:"event_id"`
	Rule    string    `json:"rule"`
	Target  targetRef `json:"target"`
	Replay  string    `json:"replay,omitempty"`
}

// targetRef names a rule's target as it was when an event was routed to
// it: its id, and its handler or the revision of its webhook URL (Rev), so
// that a target given another URL since is known for another receiver.
// Jobs queued by an older scangate carry the whole URL in Webhook (and
// once the whole target: their secret is ignored); they are compared by
// it.
type targetRef struct {
	ID      string `json:"id"`
	Rev     string `json:"rev,omitempty"`
	Handler string `json:"handler,omitempty"`
	Webhook string `json:"webhook,omitempty"`
}

func refOf(t Target) targetRef {
	return targetRef{ID: t.ID, Rev: t.rev, Handler: t.Handler}
}

// sameTarget reports whether t is still the target ref was routed to.
func sameTarget(t Target, ref targetRef) bool {
	if t.Handler != ref.Handler {
		return false
	}
	if ref.Webhook != "" {
		return t.Webhook == ref.Webhook
	}
	return t.rev == ref.Rev
}

func (deliverArgs) Kind() string { return KindDeliver }

func (deliverArgs) InsertOpts() river.InsertOpts {
	// The retry window, not a count, ends the retries (deliverWorker). The
	// queue is chosen per target (deliverOpts).
	return river.InsertOpts{MaxAttempts: 10_000, Queue: QueueWebhooks}
}

// ErrDropped reports a delivery that ended without being sent, because
// its rule was deleted or changed; OnDelivery hears of it wrapped.
var ErrDropped = errors.New("delivery dropped")

type deliverWorker struct {
	river.WorkerDefaults[deliverArgs]
	bus *Bus
}

func (w *deliverWorker) Timeout(*river.Job[deliverArgs]) time.Duration { return time.Minute }

// NextRetry backs off exponentially from one second, up to MaxBackoff,
// with jitter so that a receiver coming back is not hit by every retry at
// once.
func (w *deliverWorker) NextRetry(job *river.Job[deliverArgs]) time.Time {
	d := time.Second << min(job.Attempt-1, 20)
	d = min(d, w.bus.opts.MaxBackoff)
	d = d/2 + rand.N(d/2+1)
	return time.Now().Add(d)
}

func (w *deliverWorker) Work(ctx context.Context, job *river.Job[deliverArgs]) error {
	b := w.bus
	a := job.Args
	e, err := b.Event(ctx, a.EventID)
	if err != nil {
		return err
	}
	t, dropped, err := b.currentTarget(ctx, a.Rule, a.Target, e)
	if err != nil {
		return err
	}
	if dropped != "" {
		// Not a failure: the rule no longer asks for this delivery. The
		// job ends cancelled, with the reason in its errors.
		err := fmt.Errorf("%w: %s", ErrDropped, dropped)
		b.opts.Logger.Info("event delivery dropped", "event", a.EventID, "rule", a.Rule, "target", a.Target.ID, "why", dropped)
		if b.opts.OnDelivery != nil {
			b.opts.OnDelivery(a.Rule, a.Target.ID, err)
		}
		return river.JobCancel(err)
	}
	if t.Webhook != "" {
		done, deferred := b.targets.take(t.Webhook, snoozes(job))
		if deferred != nil {
			return b.deferDelivery(ctx, job, t, deferred)
		}
		err = b.post(ctx, a.Rule, t, e)
		done(err)
	} else {
		err = b.handle(ctx, t, e)
	}
	if b.opts.OnDelivery != nil {
		b.opts.OnDelivery(a.Rule, a.Target.ID, err)
	}
	if err == nil {
		return nil
	}
	if time.Since(job.CreatedAt) < b.opts.RetryWindow {
		return err
	}
	b.opts.Logger.Warn("event delivery failed for good; kept in the dead-letter list",
		"event", a.EventID, "rule", a.Rule, "target", a.Target.ID, "attempts", job.Attempt, "err", err)
	return b.deadLetter(ctx, job, t, job.Attempt, err)
}

// currentTarget returns the target ref names in the rule as it is now, or,
// when the delivery must not be sent, why: the rule was deleted, lost the
// target, gave it another URL or handler, or no longer matches e.
func (b *Bus) currentTarget(ctx context.Context, rule string, ref targetRef, e Envelope) (Target, string, error) {
	r, err := b.rule(ctx, rule)
	if errors.Is(err, ErrNoRule) {
		return Target{}, fmt.Sprintf("rule %s no longer exists", rule), nil
	}
	if err != nil {
		return Target{}, "", err
	}
	i := slices.IndexFunc(r.Targets, func(t Target) bool { return t.ID == ref.ID })
	if i < 0 {
		return Target{}, fmt.Sprintf("rule %s no longer has target %s", rule, ref.ID), nil
	}
	t := r.Targets[i]
	if !sameTarget(t, ref) {
		return Target{}, fmt.Sprintf("target %s of rule %s has changed", ref.ID, rule), nil
	}
	p, err := pattern.Compile(r.Pattern)
	if err != nil {
		return Target{}, fmt.Sprintf("rule %s has a bad pattern: %v", rule, err), nil
	}
	doc, err := json.Marshal(e)
	if err != nil {
		return Target{}, "", err
	}
	if ok, err := p.Match(doc); err != nil || !ok {
		return Target{}, fmt.Sprintf("rule %s no longer matches the event", rule), nil
	}
	return t, "", nil
}

// rule returns the built-in or stored rule of that name.
func (b *Bus) rule(ctx context.Context, name string) (Rule, error) {
	b.mu.RLock()
	for _, r := range b.builtin {
		if r.Name == name {
			b.mu.RUnlock()
			return r, nil
		}
	}
	b.mu.RUnlock()
	return b.rules.Get(ctx, name)
}

// deferDelivery puts off a webhook delivery its target cannot take now
// (targets.take), without an attempt: the job snoozes, which River does not
// count as an attempt. Past the retry window it goes to the dead-letter
// list instead, with the reason.
func (b *Bus) deferDelivery(ctx context.Context, job *river.Job[deliverArgs], t Target, d *errDeferred) error {
	a := job.Args
	if time.Since(job.CreatedAt) < b.opts.RetryWindow {
		b.opts.Logger.Debug("event delivery deferred", "event", a.EventID, "rule", a.Rule, "target", a.Target.ID, "why", d.why, "wait", d.wait)
		return river.JobSnooze(d.wait)
	}
	b.opts.Logger.Warn("event delivery deferred past its retry window; kept in the dead-letter list",
		"event", a.EventID, "rule", a.Rule, "target", a.Target.ID, "why", d.why)
	// This run of the job made no attempt.
	return b.deadLetter(ctx, job, t, job.Attempt-1, fmt.Errorf("webhook %s: %s", RedactURL(t.Webhook), d.why))
}

// snoozes is how often job was deferred already (River counts them in
// its metadata).
func snoozes(job *river.Job[deliverArgs]) int {
	var md struct {
		Snoozes int `json:"snoozes"`
	}
	_ = json.Unmarshal(job.Metadata, &md)
	return md.Snoozes
}

// handle gives e to the built-in handler t names.
func (b *Bus) handle(ctx context.Context, t Target, e Envelope) error {
	b.mu.RLock()
	h := b.handlers[t.Handler]
	b.mu.RUnlock()
	if h == nil {
		return fmt.Errorf("no built-in handler %q", t.Handler)
	}
	return h(ctx, e)
}

// post sends e to t's webhook. Its errors name the webhook as RedactURL
// shows it: they are logged, kept by River with the job, and filed with
// dead letters.
func (b *Bus) post(ctx context.Context, rule string, t Target, e Envelope) error {
	body, err := json.Marshal(e)
	if err != nil {
		return err
	}
	shown := RedactURL(t.Webhook)
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, t.Webhook, bytes.NewReader(body))
	if err != nil {
		return fmt.Errorf("webhook %s: not a URL", shown)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", "scangate")
	req.Header.Set(HeaderEventID, e.ID)
	req.Header.Set(HeaderRule, rule)
	if t.Secret != "" {
		req.Header.Set(HeaderSignature, Sign(t.Secret, body))
	}
	resp, err := b.opts.Client.Do(req)
	if err != nil {
		// A *url.Error's text holds the whole URL; what it wraps (a
		// refused or failed dial, a timeout) does not.
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err
		}
		return fmt.Errorf("webhook %s: %w", shown, err)
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	if resp.StatusCode/100 != 2 {
		return fmt.Errorf("webhook %s: %s", shown, resp.Status)
	}
	return nil
}

// DeadLetter is a delivery that failed for its whole retry window. Its
// target is the one the event was routed to, with its webhook as RedactURL
// shows it and without its secret.
type DeadLetter struct {
	ID         int64      `json:"id"`
	EventID    string     `json:"eventId"`
	Rule       string     `json:"rule"`
	Target     Target     `json:"target"`
	Attempts   int        `json:"attempts"`
	Error      string     `json:"error"`
	FailedAt   time.Time  `json:"failedAt"`
	ReplayedAt *time.Time `json:"replayedAt,omitempty"`
}

// deadLetter files job's delivery to t, tried attempts times, as a dead
// letter.
func (b *Bus) deadLetter(ctx context.Context, job *river.Job[deliverArgs], t Target, attempts int, cause error) error {
	a := job.Args
	target, err := json.Marshal(storedTarget{ID: t.ID, Handler: t.Handler, Webhook: RedactURL(t.Webhook), Rev: t.rev})
	if err != nil {
		return err
	}
	// The dead letter and the job's completion commit together: a crash
	// between them would run the job again and file a second letter.
	err = b.st.InTx(ctx, func(tx *sql.Tx) error {
		if _, err := tx.ExecContext(ctx, `INSERT INTO dead_letters (event_id, rule, target, attempts, error, failed_at) VALUES ($1, $2, $3, $4, $5, $6)`,
			a.EventID, a.Rule, string(target), attempts, cause.Error(), time.Now().UTC().Format(time.RFC3339)); err != nil {
			return err
		}
		_, err := river.JobCompleteTx[*riversqlite.Driver](ctx, tx, job)
		return err
	})
	if err != nil {
		return fmt.Errorf("dead-letter event %s: %w", a.EventID, err)
	}
	return nil
}

// DeadLetters lists the dead-letter list, oldest first; pending leaves out
// the ones already replayed.
func (b *Bus) DeadLetters(ctx context.Context, pending bool) ([]DeadLetter, error) {
	q := `SELECT id, event_id, rule, target, attempts, error, failed_at, replayed_at FROM dead_letters`
	if pending {
		q += ` WHERE replayed_at IS NULL`
	}
	rows, err := b.st.Reader().QueryContext(ctx, q+` ORDER BY id`)
	if err != nil {
		return nil, fmt.Errorf("dead letters: %w", err)
	}
	defer rows.Close()
	var out []DeadLetter
	for rows.Next() {
		var d DeadLetter
		var target, failed string
		var replayed sql.NullString
		if err := rows.Scan(&d.ID, &d.EventID, &d.Rule, &target, &d.Attempts, &d.Error, &failed, &replayed); err != nil {
			return nil, fmt.Errorf("dead letters: %w", err)
		}
		var st storedTarget
		if err := json.Unmarshal([]byte(target), &st); err != nil {
			return nil, fmt.Errorf("dead letter %d: %w", d.ID, err)
		}
		// Letters an older scangate filed hold the whole URL, and its
		// secret, until Reseal rewrites them: never shown.
		d.Target = Target{ID: st.ID, Handler: st.Handler, Webhook: RedactURL(st.Webhook), rev: st.Rev}
		d.FailedAt, _ = time.Parse(time.RFC3339, failed)
		if replayed.Valid {
			t, _ := time.Parse(time.RFC3339, replayed.String)
			d.ReplayedAt = &t
		}
		out = append(out, d)
	}
	return out, rows.Err()
}

// A Refusal is a dead letter a replay did not queue, and why.
type Refusal struct {
	ID     int64  `json:"id"`
	Reason string `json:"reason"`
}

// ReplayDeadLetters queues the pending dead letters (or those of ids) for
// delivery again, with a fresh retry window, and marks them replayed. It
// refuses, and leaves pending, the ones whose rule was deleted or changed
// since (see currentTarget): their old URL is no longer a target.
func (b *Bus) ReplayDeadLetters(ctx context.Context, ids []int64) (int, []Refusal, error) {
	all, err := b.DeadLetters(ctx, true)
	if err != nil {
		return 0, nil, err
	}
	want := map[int64]bool{}
	for _, id := range ids {
		want[id] = true
	}
	var queue []DeadLetter
	var refused []Refusal
	for _, d := range all {
		if len(ids) > 0 && !want[d.ID] {
			continue
		}
		e, err := b.Event(ctx, d.EventID)
		if errors.Is(err, ErrNoEvent) {
			refused = append(refused, Refusal{d.ID, fmt.Sprintf("event %s is no longer in the log", d.EventID)})
			continue
		}
		if err != nil {
			return 0, nil, fmt.Errorf("replay dead letters: %w", err)
		}
		_, why, err := b.currentTarget(ctx, d.Rule, refOf(d.Target), e)
		if err != nil {
			return 0, nil, fmt.Errorf("replay dead letters: %w", err)
		}
		if why != "" {
			refused = append(refused, Refusal{d.ID, why})
			continue
		}
		queue = append(queue, d)
	}
	n := 0
	now := time.Now().UTC().Format(time.RFC3339)
	err = b.st.InTx(ctx, func(tx *sql.Tx) error {
		for _, d := range queue {
			// The list was read before this transaction: another replay
			// may have taken the dead letter since.
			res, err := tx.ExecContext(ctx, `UPDATE dead_letters SET replayed_at = $1 WHERE id = $2 AND replayed_at IS NULL`, now, d.ID)
			if err != nil {
				return err
			}
			if taken, err := res.RowsAffected(); err != nil {
				return err
			} else if taken == 0 {
				continue
			}
			args := deliverArgs{EventID: d.EventID, Rule: d.Rule, Target: refOf(d.Target), Replay: nonce()}
			if _, err := b.jobs.InsertTx(ctx, tx, args, deliverOpts(args.Target, true)); err != nil {
				return err
			}
			n++
		}
		return nil
	})
	if err != nil {
		return 0, nil, fmt.Errorf("replay dead letters: %w", err)
	}
	return n, refused, nil
}

// ReplayEvents routes the logged events from since to until again, to
// every rule or only to the rule named rule, as EventBridge's archive
// replay does, and returns how many.
func (b *Bus) ReplayEvents(ctx context.Context, since, until time.Time, rule string) (int, error) {
	if rule != "" {
		// A replay to a rule that does not exist would route to nobody
		// and still report the events as replayed.
		rules, err := b.Rules(ctx)
		if err != nil {
			return 0, fmt.Errorf("replay events: %w", err)
		}
		if !slices.ContainsFunc(rules, func(r Rule) bool { return r.Name == rule }) {
			return 0, fmt.Errorf("replay events: rule %s: %w", rule, ErrNoRule)
		}
	}
	rows, err := b.st.Reader().QueryContext(ctx, `SELECT id FROM events WHERE time >= $1 AND time <= $2 ORDER BY seq`,
		since.UTC().Format(time.RFC3339), until.UTC().Format(time.RFC3339))
	if err != nil {
		return 0, fmt.Errorf("replay events: %w", err)
	}
	var ids []string
	for rows.Next() {
		var id string
		if err := rows.Scan(&id); err != nil {
			rows.Close()
			return 0, err
		}
		ids = append(ids, id)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return 0, err
	}
	replay := nonce()
	err = b.st.InTx(ctx, func(tx *sql.Tx) error {
		for _, id := range ids {
			if _, err := b.jobs.InsertTx(ctx, tx, routeArgs{EventID: id, Rule: rule, Replay: replay}, &river.InsertOpts{Priority: replayPriority}); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return 0, fmt.Errorf("replay events: %w", err)
	}
	return len(ids), nil
}
