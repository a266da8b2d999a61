// Package lb is the load balancer in front of a service's tasks, as an
// Application Load Balancer is in front of an ECS service: each service
// gets a listener, and every request that arrives on it goes to one of the
// service's healthy tasks, round robin. The service controller tells the
// balancer which tasks are healthy (SetTargets) and, before it stops a
// task, takes the task out and waits for its requests to finish (Drain),
// so that a rolling deployment replaces every task without a failed
// request.
//
// The balancer speaks HTTP and balances requests, not connections. A TCP
// proxy would pin a keep-alive client to the task it first reached: taking
// that task out would either cut the client's connection, failing what it
// sends next, or wait for the client to hang up, which a keep-alive client
// never does. Balancing each request lets a task being stopped finish what
// it has and get nothing new, while the same client connection carries the
// next request to another task.
//
// A request that never reached a task, because connecting to it failed
// (the task just died), is sent to the next task, whatever its method:
// its body has not been read. A request that may have reached a task is
// not sent to another, so that a request that kills its task cannot go on
// to kill the others. (Go's Transport may still send an idempotent request
// again to the same task, on a new connection, when a kept-alive one turns
// out to be closed.)
//
// Listeners are plain HTTP/1.1 on the address the caller gives; scangate
// binds them to loopback (127.0.0.1) unless told otherwise, so that a
// service is reachable from elsewhere only when someone chooses an address
// that makes it so.
package lb

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"net"
	"slices"
	"sync"
	"time"
)

// Defaults for zero Options.
const (
	DefaultDialTimeout       = 2 * time.Second
	DefaultReadHeaderTimeout = 10 * time.Second
	DefaultIdleTimeout       = 60 * time.Second // ALB's idle timeout
	DefaultMaxHeaderBytes    = 64 << 10         // ALB's bound on a request's headers
	DefaultMaxBodyBytes      = 64 << 20
)

// Options configure a Balancer; zero values take the defaults.
type Options struct {
	Logger *slog.Logger
	// DialTimeout bounds connecting to a task (DefaultDialTimeout). A
	// task on this host accepts at once; one that does not is gone, and
	// the request is better sent to the next one.
	DialTimeout time.Duration
	// ResponseHeaderTimeout bounds the wait for a task's response headers
	// once the request is sent (default none: the client decides how long
	// it waits).
	ResponseHeaderTimeout time.Duration
	// ReadHeaderTimeout bounds reading a client's request headers
	// (DefaultReadHeaderTimeout).
	ReadHeaderTimeout time.Duration
	// IdleTimeout closes a client's keep-alive connection after this long
	// without a request (DefaultIdleTimeout).
	IdleTimeout time.Duration
	// MaxHeaderBytes caps a request's line and headers
	// (DefaultMaxHeaderBytes); a client over it gets 431.
	MaxHeaderBytes int
	// MaxBodyBytes caps a request's body (DefaultMaxBodyBytes; negative:
	// no cap); a client over it gets 413.
	MaxBodyBytes int64
}

// Target is one task a service's requests may go to.
type Target struct {
	// ID names the target in Drain and Stats: the task's id.
	ID string
	// Addr is where the task listens, host:port.
	Addr string
}

// Stats are a service's counters since its listener or targets were
// first set.
type Stats struct {
	// Addr is where the service listens; "" when it does not.
	Addr string
	// Requests is the number of requests received.
	Requests int64
	// Failures is the number of requests the balancer answered with a
	// 5xx of its own (no task, no task reachable, a task that broke the
	// connection), to a client still there to hear it. A task's own 5xx
	// is not one.
	Failures int64
	// Retries is the number of requests sent on to another task because
	// connecting to one failed.
	Retries int64
	// Targets are the targets in the set and those out of it with
	// requests still in flight, by ID.
	Targets []TargetStats
}

// TargetStats are one target's counters.
type TargetStats struct {
	ID, Addr string
	// Draining: out of the set, with requests still in flight.
	Draining bool
	InFlight int
	// Requests is the number of requests sent to it, Errors those that
	// failed before a response (connecting, or a broken connection).
	Requests, Errors int64
}

// A Balancer holds the listeners of every service, one per name. It is
// safe for concurrent use.
type Balancer struct {
	opts Options

	mu       sync.Mutex // guards services and each service's listener
	services map[string]*service
}

// New returns a Balancer with no listeners.
func New(opts Options) *Balancer {
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.DialTimeout == 0 {
		opts.DialTimeout = DefaultDialTimeout
	}
	if opts.ReadHeaderTimeout == 0 {
		opts.ReadHeaderTimeout = DefaultReadHeaderTimeout
	}
	if opts.IdleTimeout == 0 {
		opts.IdleTimeout = DefaultIdleTimeout
	}
	if opts.MaxHeaderBytes == 0 {
		opts.MaxHeaderBytes = DefaultMaxHeaderBytes
	}
	if opts.MaxBodyBytes == 0 {
		opts.MaxBodyBytes = DefaultMaxBodyBytes
	}
	return &Balancer{opts: opts, services: map[string]*service{}}
}

// serviceLocked returns name's service, made if it is not there and create
// is set. b.mu must be held.
func (b *Balancer) serviceLocked(name string, create bool) *service {
	s := b.services[name]
	if s == nil && create {
		s = newService(name, b.opts)
		b.services[name] = s
	}
	return s
}

// Listen starts the listener of the service name (e.g. "default/shop-api")
// on addr (e.g. "127.0.0.1:8080"; port 0 picks a free port) and returns
// the address it listens on. Until SetTargets names a target, requests get
// 503. Listening again with the same name and addr does nothing; another
// addr for a name that listens is an error (Close it first), as is a name
// whose Close has not returned.
func (b *Balancer) Listen(name, addr string) (net.Addr, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	s := b.serviceLocked(name, false)
	if s != nil && s.closing {
		return nil, fmt.Errorf("load balancer %s is closing", name)
	}
	if s != nil && s.srv != nil {
		if s.addr == addr {
			return s.ln.Addr(), nil
		}
		return nil, fmt.Errorf("load balancer %s already listens on %s (asked for %s)", name, s.ln.Addr(), addr)
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("load balancer %s: %w", name, err)
	}
	s = b.serviceLocked(name, true)
	s.serve(ln, addr)
	return ln.Addr(), nil
}

// SetTargets replaces the set of targets of the service name, at once: a
// target left out gets no new request from now on, and its requests in
// flight finish (Drain waits for them). A target already in the set, by ID
// and Addr, keeps its connections. The service need not listen yet.
func (b *Balancer) SetTargets(name string, targets []Target) error {
	seen := make(map[string]bool, len(targets))
	for _, t := range targets {
		if t.ID == "" {
			return fmt.Errorf("load balancer %s: a target without an ID (%s)", name, t.Addr)
		}
		if seen[t.ID] {
			return fmt.Errorf("load balancer %s: target %s is named twice", name, t.ID)
		}
		seen[t.ID] = true
		if _, _, err := net.SplitHostPort(t.Addr); err != nil {
			return fmt.Errorf("load balancer %s: target %s: %w", name, t.ID, err)
		}
	}
	b.mu.Lock()
	s := b.serviceLocked(name, true)
	// Taken before b.mu is let go, so that a Close that follows cannot
	// finish between the two and leave these targets behind.
	s.mu.Lock()
	b.mu.Unlock()
	defer s.mu.Unlock()
	s.setTargetsLocked(targets)
	return nil
}

// Drain takes the target targetID of the service name out of its set, if
// it is still in, and waits until the requests in flight to it are done,
// or ctx ends: then it returns ctx's error, and the target stays out. An
// upgraded connection (WebSocket) is in flight until it ends. The
// target's idle connections are closed once it has no request left. The
// controller calls Drain before it stops a task; a later SetTargets that
// names the target again puts it back.
func (b *Balancer) Drain(ctx context.Context, name, targetID string) error {
	b.mu.Lock()
	s := b.serviceLocked(name, false)
	b.mu.Unlock()
	if s == nil {
		return nil
	}
	for _, gone := range s.drain(targetID) {
		select {
		case <-gone:
		case <-ctx.Done():
			return fmt.Errorf("load balancer %s: drain %s: %d requests still in flight: %w",
				name, targetID, s.inFlight(targetID), ctx.Err())
		}
	}
	return nil
}

// Stats returns the counters of the service name (zero if there is no
// such service).
func (b *Balancer) Stats(name string) Stats {
	b.mu.Lock()
	s := b.serviceLocked(name, false)
	var addr string
	if s != nil && s.ln != nil {
		addr = s.ln.Addr().String()
	}
	b.mu.Unlock()
	if s == nil {
		return Stats{}
	}
	st := s.stats()
	st.Addr = addr
	return st
}

// Close stops the listener of the service name and forgets its targets.
// No new connection is accepted; requests in flight finish, until ctx
// ends: then their connections are cut and Close returns ctx's error.
// Upgraded connections (WebSocket) are cut in any case.
func (b *Balancer) Close(ctx context.Context, name string) error {
	b.mu.Lock()
	s := b.serviceLocked(name, false)
	if s == nil || s.closing {
		b.mu.Unlock()
		return nil
	}
	s.closing = true
	b.mu.Unlock()
	return b.close(ctx, s)
}

// Shutdown closes every service as Close does, at once.
func (b *Balancer) Shutdown(ctx context.Context) error {
	b.mu.Lock()
	var open []*service
	for _, name := range slices.Sorted(maps.Keys(b.services)) {
		if s := b.services[name]; !s.closing {
			s.closing = true
			open = append(open, s)
		}
	}
	b.mu.Unlock()
	errs := make([]error, len(open))
	var wg sync.WaitGroup
	for i, s := range open {
		wg.Go(func() { errs[i] = b.close(ctx, s) })
	}
	wg.Wait()
	return errors.Join(errs...)
}

// close shuts s down; s.closing is set. s stays listed until its requests
// are done, so that Drain and Stats still see them.
func (b *Balancer) close(ctx context.Context, s *service) error {
	var err error
	if s.srv != nil {
		if err = s.srv.Shutdown(ctx); err != nil {
			s.srv.Close()
			err = fmt.Errorf("load balancer %s: requests cut short: %w", s.name, err)
		}
		s.log.Info("load balancer stopped", "addr", s.ln.Addr().String())
	}
	b.mu.Lock()
	if b.services[s.name] == s {
		delete(b.services, s.name)
	}
	b.mu.Unlock()
	s.retireAll()
	return err
}
