package lb

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httputil"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
)

// errNoTarget: the service has no target in its set.
var errNoTarget = errors.New("no target")

// bufferPool lends the proxies their copy buffers, shared by every
// service, instead of one new 32 KiB buffer per response.
var bufferPool = &buffers{pool: sync.Pool{New: func() any { return new([32 << 10]byte) }}}

type buffers struct{ pool sync.Pool }

func (b *buffers) Get() []byte { return b.pool.Get().(*[32 << 10]byte)[:] }

func (b *buffers) Put(p []byte) {
	if len(p) == 32<<10 {
		b.pool.Put((*[32 << 10]byte)(p))
	}
}

// service is one name's listener and targets.
type service struct {
	name  string
	opts  Options
	log   *slog.Logger
	proxy *httputil.ReverseProxy

	// Set under Balancer.mu; fixed once closing is.
	ln      net.Listener
	addr    string // as Listen was asked
	srv     *http.Server
	closing bool

	mu       sync.Mutex
	set      []*target // the targets in the set, in SetTargets order
	draining map[*target]bool
	next     uint64 // round robin

	requests, failures, retries atomic.Int64
}

func newService(name string, opts Options) *service {
	s := &service{
		name:     name,
		opts:     opts,
		log:      opts.Logger.With("lb", name),
		draining: map[*target]bool{},
	}
	s.proxy = &httputil.ReverseProxy{
		Rewrite:      s.rewrite,
		Transport:    s,
		ErrorHandler: s.proxyError,
		BufferPool:   bufferPool,
		// What it logs itself is a task's response cut short.
		ErrorLog: slog.NewLogLogger(s.log.Handler(), slog.LevelWarn),
	}
	return s
}

// serve starts s's server on ln. Balancer.mu is held.
func (s *service) serve(ln net.Listener, addr string) {
	s.ln, s.addr = ln, addr
	s.srv = &http.Server{
		Handler:           s,
		ReadHeaderTimeout: s.opts.ReadHeaderTimeout,
		IdleTimeout:       s.opts.IdleTimeout,
		MaxHeaderBytes:    s.opts.MaxHeaderBytes,
		// What the server logs itself is rare and worth seeing: failed
		// accepts (out of file descriptors), panics.
		ErrorLog: slog.NewLogLogger(s.log.Handler(), slog.LevelWarn),
	}
	srv := s.srv
	go func() {
		if err := srv.Serve(ln); !errors.Is(err, http.ErrServerClosed) {
			s.log.Error("load balancer stopped serving", "addr", ln.Addr().String(), "err", err)
		}
	}()
	s.log.Info("load balancer listening", "addr", ln.Addr().String())
}

func (s *service) setTargetsLocked(targets []Target) {
	old := s.set
	s.set = make([]*target, 0, len(targets))
	for _, nt := range targets {
		i := slices.IndexFunc(old, func(t *target) bool { return t != nil && t.id == nt.ID && t.addr == nt.Addr })
		if i >= 0 {
			s.set = append(s.set, old[i])
			old[i] = nil
			continue
		}
		s.set = append(s.set, newTarget(nt, s.opts))
	}
	for _, t := range old {
		if t != nil {
			s.removeLocked(t)
		}
	}
	s.log.Debug("targets set", "targets", len(s.set), "draining", len(s.draining))
}

// removeLocked takes t out of the set: it drains, or is retired at once
// if it has nothing in flight.
func (s *service) removeLocked(t *target) {
	s.set = slices.DeleteFunc(s.set, func(x *target) bool { return x == t })
	if t.inFlight == 0 {
		t.retire()
		return
	}
	s.draining[t] = true
}

// drain takes the target id out of the set and returns what to wait for:
// the gone channels of its targets still draining.
func (s *service) drain(id string) []<-chan struct{} {
	s.mu.Lock()
	defer s.mu.Unlock()
	if i := slices.IndexFunc(s.set, func(t *target) bool { return t.id == id }); i >= 0 {
		s.removeLocked(s.set[i])
	}
	var gone []<-chan struct{}
	for t := range s.draining {
		if t.id == id {
			gone = append(gone, t.gone)
		}
	}
	return gone
}

func (s *service) inFlight(id string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := 0
	for t := range s.draining {
		if t.id == id {
			n += t.inFlight
		}
	}
	return n
}

// retireAll retires every target, in flight or not: s is closed.
func (s *service) retireAll() {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, t := range s.set {
		t.retire()
	}
	for t := range s.draining {
		t.retire()
	}
	s.set = nil
	clear(s.draining)
}

func (s *service) stats() Stats {
	s.mu.Lock()
	defer s.mu.Unlock()
	st := Stats{Requests: s.requests.Load(), Failures: s.failures.Load(), Retries: s.retries.Load()}
	add := func(t *target, draining bool) {
		st.Targets = append(st.Targets, TargetStats{
			ID: t.id, Addr: t.addr, Draining: draining,
			InFlight: t.inFlight, Requests: t.requests, Errors: t.errors,
		})
	}
	for _, t := range s.set {
		add(t, false)
	}
	for t := range s.draining {
		add(t, true)
	}
	slices.SortFunc(st.Targets, func(a, b TargetStats) int {
		if c := strings.Compare(a.ID, b.ID); c != 0 {
			return c
		}
		return strings.Compare(a.Addr, b.Addr)
	})
	return st
}

// pick returns the next target in the set, round robin, that is not in
// tried, with the request counted in flight; nil if there is none. Both
// happen under s.mu, so that a target out of the set gets no request
// once removeLocked has run.
func (s *service) pick(tried []*target) *target {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := uint64(len(s.set))
	// A retry does not take a turn: the failed target's share goes to
	// the target after it rather than to the next request's.
	start := s.next
	if len(tried) == 0 {
		s.next++
	}
	for i := range n {
		t := s.set[(start+i)%n]
		if !slices.Contains(tried, t) {
			t.inFlight++
			t.requests++
			return t
		}
	}
	return nil
}

// release ends a request to t; failed says it broke before a response.
// A draining target whose last request this was is retired.
func (s *service) release(t *target, failed bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	t.inFlight--
	if failed {
		t.errors++
	}
	if t.inFlight == 0 && s.draining[t] {
		delete(s.draining, t)
		t.retire()
	}
}

func (s *service) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	s.requests.Add(1)
	if max := s.opts.MaxBodyBytes; max > 0 && r.ContentLength != 0 {
		if r.ContentLength > max {
			w.Header().Set("Connection", "close")
			http.Error(w, fmt.Sprintf("request body over %d bytes", max), http.StatusRequestEntityTooLarge)
			return
		}
		r.Body = http.MaxBytesReader(w, r.Body, max)
	}
	// The proxy closes the response body it gets, which ends the request
	// in flight, except on a few error paths (a task that switches to a
	// protocol not asked for): the exchange closes it then.
	ex := new(exchange)
	defer ex.end()
	s.proxy.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), exchangeKey{}, ex)))
}

// exchange holds the response body a request got from its target.
type exchange struct{ body io.Closer }

type exchangeKey struct{}

func (ex *exchange) end() {
	if ex.body != nil {
		ex.body.Close()
	}
}

// rewrite makes the request to a task. The task is chosen per attempt, in
// RoundTrip; the Host header is the client's, as an ALB keeps it, and
// X-Forwarded-For is appended to, as an ALB does: a task trusts it only
// as far as it trusts whoever can reach the listener.
func (s *service) rewrite(pr *httputil.ProxyRequest) {
	pr.Out.URL.Scheme = "http"
	pr.Out.URL.Host = "task" // replaced by the target's address in RoundTrip
	pr.Out.Host = pr.In.Host
	if prior := pr.In.Header["X-Forwarded-For"]; prior != nil {
		pr.Out.Header["X-Forwarded-For"] = prior
	}
	pr.SetXForwarded()
}

// RoundTrip sends the request to the next target, and on to the one after
// each time connecting fails, at most once to each target: a failed dial
// means the request, body and all, is untouched. Any other failure is the
// request's.
func (s *service) RoundTrip(req *http.Request) (*http.Response, error) {
	var tried []*target
	var err error
	for {
		t := s.pick(tried)
		if t == nil {
			if err == nil {
				err = errNoTarget
			}
			return nil, err
		}
		if tried != nil {
			s.retries.Add(1)
		}
		tried = append(tried, t)

		out := req.WithContext(req.Context())
		u := *req.URL
		u.Host = t.addr
		out.URL = &u
		var body *bodyGuard
		if req.Body != nil {
			body = &bodyGuard{body: req.Body}
			out.Body = body
		}
		var resp *http.Response
		resp, err = t.transport.RoundTrip(out)
		if err == nil {
			resp.Body = trackBody(resp.Body, func() { s.release(t, false) })
			if ex, ok := req.Context().Value(exchangeKey{}).(*exchange); ok {
				ex.body = resp.Body
			}
			return resp, nil
		}
		// A request its client gave up on is no fault of the target's.
		s.release(t, req.Context().Err() == nil)
		var dialErr *dialError
		if !errors.As(err, &dialErr) || (body != nil && body.read.Load()) || req.Context().Err() != nil {
			return nil, err
		}
		s.log.Debug("target unreachable; trying the next", "target", t.id, "addr", t.addr, "err", err)
	}
}

// proxyError answers a request no target answered.
func (s *service) proxyError(w http.ResponseWriter, r *http.Request, err error) {
	var status int
	var msg string
	var tooLarge *http.MaxBytesError
	var timeout net.Error
	switch {
	case r.Context().Err() != nil:
		// The client went away; no one hears this answer.
		s.log.Debug("client gone", "method", r.Method, "path", r.URL.Path, "err", err)
		w.WriteHeader(http.StatusBadGateway)
		return
	case errors.Is(err, errNoTarget):
		status, msg = http.StatusServiceUnavailable, fmt.Sprintf("service %s has no healthy task", s.name)
	case errors.As(err, &tooLarge):
		w.Header().Set("Connection", "close")
		http.Error(w, fmt.Sprintf("request body over %d bytes", tooLarge.Limit), http.StatusRequestEntityTooLarge)
		return
	case errors.As(err, &timeout) && timeout.Timeout():
		status, msg = http.StatusGatewayTimeout, fmt.Sprintf("service %s: the task did not answer in time", s.name)
	default:
		status, msg = http.StatusBadGateway, fmt.Sprintf("service %s: no task answered", s.name)
	}
	s.failures.Add(1)
	if status != http.StatusServiceUnavailable {
		s.log.Warn("request failed", "method", r.Method, "path", r.URL.Path, "status", status, "err", err)
	}
	http.Error(w, msg, status)
}

// bodyGuard lends a client's request body to one attempt: it tells
// whether the attempt read from it, and keeps the transport from closing
// it, so that the next attempt can send it if this one did not. The
// server closes it when the request ends.
type bodyGuard struct {
	body io.ReadCloser
	read atomic.Bool
}

func (g *bodyGuard) Read(p []byte) (int, error) {
	g.read.Store(true)
	return g.body.Read(p)
}

func (g *bodyGuard) Close() error { return nil }

// trackBody calls done once the proxy has closed a response's body: the
// request is no longer in flight. A 101 response's body is the upgraded
// connection, and stays writable for the proxy.
func trackBody(body io.ReadCloser, done func()) io.ReadCloser {
	if rw, ok := body.(io.ReadWriteCloser); ok {
		return &trackedConnBody{trackedBody: trackedBody{ReadCloser: body, done: done}, w: rw}
	}
	return &trackedBody{ReadCloser: body, done: done}
}

type trackedBody struct {
	io.ReadCloser
	once sync.Once
	done func()
}

func (b *trackedBody) Close() error {
	var err error
	b.once.Do(func() {
		err = b.ReadCloser.Close()
		b.done()
	})
	return err
}

type trackedConnBody struct {
	trackedBody
	w io.Writer
}

func (b *trackedConnBody) Write(p []byte) (int, error) { return b.w.Write(p) }
