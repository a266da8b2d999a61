package lb

import (
	"context"
	"errors"
	"net"
	"net/http"
	"sync"
	"time"
)

// errRetired: a connection to a target was asked for after it was retired.
var errRetired = errors.New("target retired")

// A target is one task of a service, with a Transport of its own: a
// Transport's CloseIdleConnections closes every host's, and a retired
// target must close its own connections and no other's.
type target struct {
	id, addr  string
	transport *http.Transport
	dialer    net.Dialer
	gone      chan struct{} // closed when retired

	// Under service.mu.
	inFlight         int
	requests, errors int64

	connMu  sync.Mutex
	conns   map[*conn]bool
	retired bool
}

func newTarget(t Target, opts Options) *target {
	nt := &target{
		id:     t.ID,
		addr:   t.Addr,
		dialer: net.Dialer{Timeout: opts.DialTimeout, KeepAlive: 30 * time.Second},
		gone:   make(chan struct{}),
		conns:  map[*conn]bool{},
	}
	nt.transport = &http.Transport{
		// No Proxy: HTTP_PROXY in scangate's environment is not for its tasks.
		DialContext: nt.dial,
		// One host only; the default of 2 idle connections would make
		// a busy service dial for most requests.
		MaxIdleConnsPerHost:   256,
		IdleConnTimeout:       90 * time.Second,
		ExpectContinueTimeout: time.Second,
		ResponseHeaderTimeout: opts.ResponseHeaderTimeout,
		// Pass the client's Accept-Encoding and the task's encoding
		// through, rather than ask for gzip and undo it here.
		DisableCompression: true,
	}
	return nt
}

// dialError marks a failure to connect to a target: the request was not
// sent, and may go to another target.
type dialError struct{ err error }

func (e *dialError) Error() string { return e.err.Error() }
func (e *dialError) Unwrap() error { return e.err }

func (t *target) dial(ctx context.Context, network, addr string) (net.Conn, error) {
	nc, err := t.dialer.DialContext(ctx, network, addr)
	if err != nil {
		return nil, &dialError{err}
	}
	t.connMu.Lock()
	defer t.connMu.Unlock()
	if t.retired {
		// The Transport dials on behind a request served by another
		// connection, and would keep this one idle.
		nc.Close()
		return nil, &dialError{errRetired}
	}
	c := &conn{Conn: nc, t: t}
	t.conns[c] = true
	return c, nil
}

// retire closes every connection to t and makes sure no other is made:
// t is out of its service's set with nothing in flight, or the service is
// closed. Idle connections would otherwise keep the task's sockets open
// until their timeout, past the task's stop.
func (t *target) retire() {
	t.connMu.Lock()
	if t.retired {
		t.connMu.Unlock()
		return
	}
	t.retired = true
	conns := t.conns
	t.conns = nil
	t.connMu.Unlock()
	for c := range conns {
		c.Conn.Close()
	}
	t.transport.CloseIdleConnections()
	close(t.gone)
}

// conn is a connection to a target, known to it until closed.
type conn struct {
	net.Conn
	t    *target
	once sync.Once
}

func (c *conn) Close() error {
	c.once.Do(func() {
		c.t.connMu.Lock()
		delete(c.t.conns, c)
		c.t.connMu.Unlock()
	})
	return c.Conn.Close()
}
