// Package lease holds named leases in the database: a lease is held by one
// process at a time, until it releases it or lets its expiry pass without
// renewing it. Several scangate servers on one database use leases to run
// what must run once (the deploy controller's reconcile loop, the external
// source pollers, retention pruning: RunWhileLeader) and to serialize work
// on shared files (a hosted git repository's pushes: Lock). The package
// owns the leases table.
//
// Why a lease with an expiry, and not a row lock held in a transaction
// (SELECT … FOR UPDATE, or pg_advisory_lock): a row lock holds a database
// connection for as long as the lock is held, and a git push or a
// controller's leadership lasts seconds to days. On SQLite, whose writes go
// through one connection, a held transaction would stop every other write
// of the process; on PostgreSQL it would pin a pooled connection per held
// lock. A lease is a row written once to take it and once per renewal, on
// any connection, the same SQL on both databases; the price is that a
// holder that dies keeps the lease until its expiry (TTL), which Release
// at a graceful stop avoids.
//
// Times are the callers' clocks (the database's clock cannot be read the
// same way on SQLite and PostgreSQL). A holder counts its lease lost at the
// local deadline of its last successful renewal (measured on the monotonic
// clock from before the renewal was sent), and another holder takes it only
// after the expiry written in the row as seen by its own clock: the two
// never overlap while the servers' clocks differ by less than the time a
// renewal has left (TTL minus the renewal interval, 10 s by default).
//
// Within one process a lease's holder is the process (Holder): Lock adds an
// in-process mutex per name, so that goroutines of one process also take
// turns, and leader leases are run by one goroutine each.
package lease

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/scangate/scangate/internal/store"
)

// ErrLost reports a lease its holder no longer holds: another holder took
// it after it expired, or it was released.
var ErrLost = errors.New("lease lost")

// Defaults: a lease lives TTL unless renewed, and is renewed every Renew,
// so that two renewals can fail before it is lost.
const (
	DefaultTTL   = 15 * time.Second
	DefaultRenew = 5 * time.Second
	// DefaultRetry is how often a process waiting to lead tries again.
	DefaultRetry = 2 * time.Second
)

// maxName bounds a lease's name: names are made of repository paths and
// such, which their own checks already bound far lower.
const maxName = 1024

// timeLayout writes times in a fixed width, so that they compare as text.
const timeLayout = "2006-01-02T15:04:05.000000000Z07:00"

func formatTime(t time.Time) string { return t.UTC().Format(timeLayout) }

// Options configure Leases; zero values take the defaults.
type Options struct {
	// Holder names this process (Holder()).
	Holder string
	// TTL, Renew and Retry: see the defaults.
	TTL, Renew, Retry time.Duration
	// Now is the wall clock written into and compared with the rows
	// (time.Now); tests move it to stand for a skewed server.
	Now    func() time.Time
	Logger *slog.Logger
}

// Leases takes and holds leases for one process.
type Leases struct {
	st   *store.Store
	opts Options

	mu     sync.Mutex
	locals map[string]*local // in-process turns, by lease name
}

type local struct {
	ch    chan struct{} // a slot: held while full
	users int           // holders and waiters
}

// Holder returns a name for this process, distinct from every other
// process's: the host name, the pid and a random part (a pid is reused
// after a restart, and in containers every server is pid 1).
func Holder() string {
	host, err := os.Hostname()
	if err != nil || host == "" {
		host = "unknown"
	}
	b := make([]byte, 6)
	_, _ = rand.Read(b)
	return fmt.Sprintf("%s/%d/%s", host, os.Getpid(), hex.EncodeToString(b))
}

// New returns the leases of the process opts.Holder names over st.
func New(st *store.Store, opts Options) *Leases {
	if opts.Holder == "" {
		opts.Holder = Holder()
	}
	if opts.TTL <= 0 {
		opts.TTL = DefaultTTL
	}
	if opts.Renew <= 0 || opts.Renew >= opts.TTL {
		opts.Renew = min(DefaultRenew, opts.TTL/3)
	}
	if opts.Retry <= 0 {
		opts.Retry = min(DefaultRetry, opts.TTL)
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	return &Leases{st: st, opts: opts, locals: map[string]*local{}}
}

// Holder is the name this process holds its leases under.
func (l *Leases) Holder() string { return l.opts.Holder }

func checkName(name string) error {
	if name == "" || len(name) > maxName {
		return fmt.Errorf("lease name %.40q: want 1 to %d bytes", name, maxName)
	}
	return nil
}

// TryAcquire takes the lease name if it is free, expired, or already this
// process's (then it is renewed), and reports whether it holds it now.
func (l *Leases) TryAcquire(ctx context.Context, name string) (bool, error) {
	if err := checkName(name); err != nil {
		return false, err
	}
	now := l.opts.Now()
	// The WHERE of DO UPDATE leaves a live lease of another holder as it
	// is, and the statement then changes no row: one statement decides,
	// so two processes racing for an expired lease cannot both win.
	res, err := l.st.Writer().ExecContext(ctx, `INSERT INTO leases (name, holder, acquired_at, expires_at) VALUES ($1, $2, $3, $4)
		ON CONFLICT (name) DO UPDATE SET holder = excluded.holder, expires_at = excluded.expires_at,
			acquired_at = CASE WHEN leases.holder = excluded.holder THEN leases.acquired_at ELSE excluded.acquired_at END
		WHERE leases.holder = excluded.holder OR leases.expires_at < excluded.acquired_at`,
		name, l.opts.Holder, formatTime(now), formatTime(now.Add(l.opts.TTL)))
	if err != nil {
		return false, fmt.Errorf("acquire lease %s: %w", name, err)
	}
	n, err := res.RowsAffected()
	if err != nil {
		return false, fmt.Errorf("acquire lease %s: %w", name, err)
	}
	return n == 1, nil
}

// Renew pushes the expiry of a lease this process holds one TTL on; ErrLost
// if it does not hold it any more.
func (l *Leases) Renew(ctx context.Context, name string) error {
	res, err := l.st.Writer().ExecContext(ctx, `UPDATE leases SET expires_at = $3 WHERE name = $1 AND holder = $2`,
		name, l.opts.Holder, formatTime(l.opts.Now().Add(l.opts.TTL)))
	if err != nil {
		return fmt.Errorf("renew lease %s: %w", name, err)
	}
	if n, err := res.RowsAffected(); err != nil {
		return fmt.Errorf("renew lease %s: %w", name, err)
	} else if n == 0 {
		return fmt.Errorf("renew lease %s: %w", name, ErrLost)
	}
	return nil
}

// Release gives up the lease name if this process holds it, so that
// another takes it at once rather than at its expiry.
func (l *Leases) Release(ctx context.Context, name string) error {
	if _, err := l.st.Writer().ExecContext(ctx, `DELETE FROM leases WHERE name = $1 AND holder = $2`, name, l.opts.Holder); err != nil {
		return fmt.Errorf("release lease %s: %w", name, err)
	}
	return nil
}

// ReleaseAll gives up every lease this process holds: a stopping server
// calls it last, once what the leases guarded has stopped.
func (l *Leases) ReleaseAll(ctx context.Context) error {
	if _, err := l.st.Writer().ExecContext(ctx, `DELETE FROM leases WHERE holder = $1`, l.opts.Holder); err != nil {
		return fmt.Errorf("release leases: %w", err)
	}
	return nil
}

// Recover frees every lease, of any holder. Only a server that knows it is
// the one process on its database may call it: a SQLite server at its
// start (it holds the data folder's lock), whose leases, if any, belong
// to a process that died, and whose restart would otherwise wait for
// their expiry. With several servers on one database (PostgreSQL) a
// dead holder's leases expire instead.
func Recover(ctx context.Context, st *store.Store) (int64, error) {
	if st.Dialect() != store.SQLite {
		return 0, nil
	}
	res, err := st.Writer().ExecContext(ctx, `DELETE FROM leases`)
	if err != nil {
		return 0, fmt.Errorf("free the leases of a stopped server: %w", err)
	}
	n, err := res.RowsAffected()
	if err != nil {
		return 0, fmt.Errorf("free the leases of a stopped server: %w", err)
	}
	return n, nil
}

// Info is a lease as the table holds it.
type Info struct {
	Name, Holder          string
	AcquiredAt, ExpiresAt time.Time
}

// Get returns the lease name as it stands; ok is false when nobody holds it
// (it may have expired though still written: compare ExpiresAt).
func (l *Leases) Get(ctx context.Context, name string) (info Info, ok bool, err error) {
	var acq, exp string
	err = l.st.Reader().QueryRowContext(ctx, `SELECT name, holder, acquired_at, expires_at FROM leases WHERE name = $1`, name).
		Scan(&info.Name, &info.Holder, &acq, &exp)
	if errors.Is(err, sql.ErrNoRows) {
		return Info{}, false, nil
	}
	if err != nil {
		return Info{}, false, fmt.Errorf("read lease %s: %w", name, err)
	}
	info.AcquiredAt, _ = time.Parse(time.RFC3339Nano, acq)
	info.ExpiresAt, _ = time.Parse(time.RFC3339Nano, exp)
	return info, true, nil
}

// hold renews the lease name until ctx ends or the lease is lost, then
// cancels lost; deadline is the local end of the lease as last renewed
// (from before the acquire that began it).
func (l *Leases) hold(ctx context.Context, name string, deadline time.Time, lost context.CancelCauseFunc) {
	tick := time.NewTicker(l.opts.Renew)
	defer tick.Stop()
	expire := time.NewTimer(time.Until(deadline))
	defer expire.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-expire.C:
			// Renewals failed for a whole TTL: another process may
			// hold it by now.
			lost(fmt.Errorf("lease %s: not renewed before its expiry: %w", name, ErrLost))
			return
		case <-tick.C:
		}
		sent := time.Now()
		err := l.Renew(ctx, name)
		switch {
		case err == nil:
			expire.Reset(time.Until(sent.Add(l.opts.TTL)))
		case errors.Is(err, ErrLost):
			lost(err)
			return
		case ctx.Err() == nil:
			// A database that fails for a moment: try again at the
			// next tick, while the lease lasts.
			l.opts.Logger.Warn("renew a lease", "lease", name, "err", err)
		}
	}
}

// RunWhileLeader runs fn whenever this process holds the lease name, until
// ctx ends: it waits its turn (trying every Retry), runs fn with a context
// that is cancelled when the lease is lost, and, when fn returns, releases
// the lease and waits again (fn returning while ctx lasts is a leader
// stepping down). fn must return soon after its context ends: until it
// does, another process may already lead. RunWhileLeader returns when ctx
// ends, having released the lease.
func (l *Leases) RunWhileLeader(ctx context.Context, name string, fn func(context.Context)) {
	log := l.opts.Logger.With("lease", name)
	retry := time.NewTimer(0)
	defer retry.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-retry.C:
		}
		retry.Reset(l.opts.Retry)
		sent := time.Now()
		ok, err := l.TryAcquire(ctx, name)
		if err != nil {
			if ctx.Err() == nil {
				log.Warn("take a lease", "err", err)
			}
			continue
		}
		if !ok {
			continue
		}
		log.Info("leading", "holder", l.opts.Holder)
		lctx, lost := context.WithCancelCause(ctx)
		holding := make(chan struct{})
		go func() { defer close(holding); l.hold(lctx, name, sent.Add(l.opts.TTL), lost) }()
		fn(lctx)
		cause := context.Cause(lctx)
		lost(nil)
		<-holding
		// Released with a context of its own: ctx may be over (a stop),
		// and the next leader should not wait for the expiry.
		rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		if err := l.Release(rctx, name); err != nil {
			log.Warn("release a lease", "err", err)
		}
		cancel()
		if errors.Is(cause, ErrLost) {
			log.Warn("no longer leading", "err", cause)
		} else {
			log.Info("stopped leading")
		}
	}
}

// Lock waits for the lease name, within this process and across processes,
// and keeps it renewed until unlock. The returned context is ctx, cancelled
// if the lease is lost while held (the database unreachable for a TTL):
// work that must not overlap another holder's should run under it.
func (l *Leases) Lock(ctx context.Context, name string) (_ context.Context, unlock func(), err error) {
	if err := checkName(name); err != nil {
		return nil, nil, err
	}
	lc := l.local(name)
	select {
	case lc.ch <- struct{}{}:
	case <-ctx.Done():
		l.unlocal(name, lc, false)
		return nil, nil, ctx.Err()
	}
	// Waiting for another process: short waits first, a push is often
	// over in a moment.
	wait := 10 * time.Millisecond
	for {
		sent := time.Now()
		ok, err := l.TryAcquire(ctx, name)
		if err != nil {
			l.unlocal(name, lc, true)
			return nil, nil, err
		}
		if ok {
			hctx, lost := context.WithCancelCause(ctx)
			holding := make(chan struct{})
			go func() { defer close(holding); l.hold(hctx, name, sent.Add(l.opts.TTL), lost) }()
			var once sync.Once
			return hctx, func() {
				once.Do(func() {
					lost(nil)
					<-holding
					rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
					defer cancel()
					if err := l.Release(rctx, name); err != nil {
						l.opts.Logger.Warn("release a lease", "lease", name, "err", err)
					}
					l.unlocal(name, lc, true)
				})
			}, nil
		}
		select {
		case <-ctx.Done():
			l.unlocal(name, lc, true)
			return nil, nil, ctx.Err()
		case <-time.After(wait):
		}
		wait = min(2*wait, time.Second)
	}
}

func (l *Leases) local(name string) *local {
	l.mu.Lock()
	defer l.mu.Unlock()
	lc := l.locals[name]
	if lc == nil {
		lc = &local{ch: make(chan struct{}, 1)}
		l.locals[name] = lc
	}
	lc.users++
	return lc
}

// unlocal ends one user of name's turns, emptying its slot if it held it.
func (l *Leases) unlocal(name string, lc *local, held bool) {
	if held {
		<-lc.ch
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if lc.users--; lc.users == 0 {
		delete(l.locals, name)
	}
}

// PresencePrefix names the lease each server holds for as long as it runs
// (PresencePrefix + its holder), so that the others can tell a server
// that died from one that is busy: its presence expires within a TTL.
const PresencePrefix = "server:"

// Present returns the holders whose presence leases are live now.
func (l *Leases) Present(ctx context.Context) ([]string, error) {
	rows, err := l.st.Reader().QueryContext(ctx, `SELECT name FROM leases WHERE name LIKE $1 AND expires_at > $2`,
		PresencePrefix+"%", formatTime(l.opts.Now()))
	if err != nil {
		return nil, fmt.Errorf("read the servers present: %w", err)
	}
	defer rows.Close()
	var holders []string
	for rows.Next() {
		var name string
		if err := rows.Scan(&name); err != nil {
			return nil, fmt.Errorf("read the servers present: %w", err)
		}
		holders = append(holders, strings.TrimPrefix(name, PresencePrefix))
	}
	return holders, rows.Err()
}
