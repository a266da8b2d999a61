package server

import (
	"context"
	"crypto/tls"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"sync"
	"time"
)

// Limits bound what one client, or many, can take of the server; zero
// values take the defaults.
type Limits struct {
	// ReadHeaderTimeout bounds the TLS handshake and a request's headers
	// (10 s).
	ReadHeaderTimeout time.Duration
	// ReadTimeout bounds reading a request's body: the whole body of an
	// API, webhook or metrics request; each read of the registry's and
	// git's, whose bodies are layers and packs of any size (60 s).
	ReadTimeout time.Duration
	// WriteTimeout bounds writing a response, in the same way: a whole
	// API answer, or each write of a blob, a pack or a log stream (60 s).
	WriteTimeout time.Duration
	// IdleTimeout closes a kept-alive connection with no request (120 s).
	IdleTimeout time.Duration
	// MaxConnections caps the connections open at once (1000). When it is
	// reached, a new connection closes the oldest one not serving a
	// request (still sending its headers, or idle), so clients that
	// trickle their headers cannot hold the server.
	MaxConnections int
	// MaxSpooledBodies caps the git pushes whose bodies are written to
	// disk at once (4); more are answered 503.
	MaxSpooledBodies int
	// MaxGitRequestBytes bounds the body of a clone's or fetch's request,
	// which lists the commits the client wants and has (4 MiB).
	MaxGitRequestBytes int64
	// RepositoryQuota bounds the bytes a registry repository holds, its
	// layers and uploads in progress (20 GiB).
	RepositoryQuota int64
	// AuthFailures is how many failed authentications a client may make
	// in a burst before it must wait; it earns one back every
	// AuthFailureInterval (10, and 6 s: 10 a minute).
	AuthFailures        int
	AuthFailureInterval time.Duration
}

func (l *Limits) defaults() {
	set := func(d *time.Duration, v time.Duration) {
		if *d <= 0 {
			*d = v
		}
	}
	set(&l.ReadHeaderTimeout, 10*time.Second)
	set(&l.ReadTimeout, time.Minute)
	set(&l.WriteTimeout, time.Minute)
	set(&l.IdleTimeout, 2*time.Minute)
	set(&l.AuthFailureInterval, 6*time.Second)
	if l.MaxConnections <= 0 {
		l.MaxConnections = 1000
	}
	if l.MaxSpooledBodies <= 0 {
		l.MaxSpooledBodies = 4
	}
	if l.MaxGitRequestBytes <= 0 {
		l.MaxGitRequestBytes = 4 << 20
	}
	if l.RepositoryQuota <= 0 {
		l.RepositoryQuota = 20 << 30
	}
	if l.AuthFailures <= 0 {
		l.AuthFailures = 10
	}
}

// connLimiter is a listener that caps the connections open at once. It
// keeps track of which connections are serving a request (connLimiter.busy
// marks them from the handler) so that, at the cap, it closes the oldest
// connection that is not, rather than refusing or queueing the new one: a
// client holding connections open by sending headers a byte at a time
// loses them to the next client, instead of locking everyone out until
// ReadHeaderTimeout. Only when every connection is serving a request is a
// new one closed at once.
type connLimiter struct {
	net.Listener
	max int
	log *slog.Logger

	mu      sync.Mutex
	conns   map[*trackedConn]struct{}
	evicted int
	refused int
}

func limitConns(ln net.Listener, max int, log *slog.Logger) *connLimiter {
	return &connLimiter{Listener: ln, max: max, log: log, conns: map[*trackedConn]struct{}{}}
}

// trackedConn is a connection the limiter counts.
type trackedConn struct {
	net.Conn
	l *connLimiter
	// Guarded by l.mu: requests being served on the connection (HTTP/2
	// serves several at once), and since when it has served none.
	busy  int
	since time.Time
	once  sync.Once
}

func (c *trackedConn) Close() error {
	c.once.Do(func() {
		c.l.mu.Lock()
		delete(c.l.conns, c)
		c.l.mu.Unlock()
	})
	return c.Conn.Close()
}

func (l *connLimiter) Accept() (net.Conn, error) {
	for {
		c, err := l.Listener.Accept()
		if err != nil {
			return nil, err
		}
		tc := &trackedConn{Conn: c, l: l, since: time.Now()}
		l.mu.Lock()
		var victim *trackedConn
		if len(l.conns) >= l.max {
			for o := range l.conns {
				if o.busy == 0 && (victim == nil || o.since.Before(victim.since)) {
					victim = o
				}
			}
			if victim == nil {
				l.refused++
				n := l.refused
				l.mu.Unlock()
				c.Close()
				if n&(n-1) == 0 { // 1, 2, 4, 8...: a flood must not flood the log
					l.log.Warn("connection cap reached with every connection serving a request: new connections closed",
						"max_connections", l.max, "closed_so_far", n)
				}
				continue
			}
			delete(l.conns, victim)
			l.evicted++
		}
		l.conns[tc] = struct{}{}
		n := l.evicted
		l.mu.Unlock()
		if victim != nil {
			victim.Conn.Close()
			if n&(n-1) == 0 {
				l.log.Warn("connection cap reached: closing the oldest connections not serving a request",
					"max_connections", l.max, "closed_so_far", n)
			}
		}
		return tc, nil
	}
}

// open is the number of connections counted now.
func (l *connLimiter) open() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.conns)
}

type connKey struct{}

// connContext is http.Server.ConnContext: it carries the connection to
// busy, under TLS too.
func connContext(ctx context.Context, c net.Conn) context.Context {
	if t, ok := c.(*tls.Conn); ok {
		c = t.NetConn()
	}
	if tc, ok := c.(*trackedConn); ok {
		return context.WithValue(ctx, connKey{}, tc)
	}
	return ctx
}

// busy marks the request's connection as serving one while next runs.
func busy(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		tc, ok := r.Context().Value(connKey{}).(*trackedConn)
		if !ok {
			next.ServeHTTP(w, r)
			return
		}
		tc.l.mu.Lock()
		tc.busy++
		tc.l.mu.Unlock()
		defer func() {
			tc.l.mu.Lock()
			tc.busy--
			tc.since = time.Now()
			tc.l.mu.Unlock()
		}()
		next.ServeHTTP(w, r)
	})
}

// streaming tells the routes whose bodies have no size known in advance:
// the registry's blobs, git's packs, and followed logs. Their deadlines
// apply to each read and write, so a transfer of any size goes on as long
// as it moves, and one that stalls is cut.
func streaming(r *http.Request) bool {
	p := r.URL.Path
	return strings.HasPrefix(p, "/v2/") || p == "/v2" || strings.HasPrefix(p, "/git/") ||
		strings.HasPrefix(p, "/api/v1/") && r.URL.Query().Get("follow") == "true"
}

// deadlines sets each request's read and write deadlines with
// http.ResponseController, by route (see streaming); http.Server's own
// ReadTimeout and WriteTimeout are left unset, as one deadline for every
// route would cut long blob transfers and log streams. Once a body has
// been read the read deadline is lifted: net/http reads on in the
// background to notice a client that goes away, and a deadline passing
// there would cancel a request that is still being answered.
func deadlines(lim Limits, next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		rc := http.NewResponseController(w)
		if streaming(r) {
			_ = rc.SetWriteDeadline(time.Time{}) // a push waits for its record, a log for its lines
			if r.Body != nil && r.Body != http.NoBody {
				// Set now too, for a body the handler never reads:
				// net/http reads some of it after the handler.
				_ = rc.SetReadDeadline(time.Now().Add(lim.ReadTimeout))
				r.Body = &progressBody{ReadCloser: r.Body, rc: rc, idle: lim.ReadTimeout}
			} else {
				_ = rc.SetReadDeadline(time.Time{})
			}
			next.ServeHTTP(&progressWriter{ResponseWriter: w, rc: rc, idle: lim.WriteTimeout}, r)
			return
		}
		start := time.Now()
		_ = rc.SetWriteDeadline(start.Add(lim.WriteTimeout))
		if r.Body != nil && r.Body != http.NoBody {
			_ = rc.SetReadDeadline(start.Add(lim.ReadTimeout))
			r.Body = &wholeBody{ReadCloser: r.Body, rc: rc}
		} else {
			_ = rc.SetReadDeadline(time.Time{})
		}
		next.ServeHTTP(w, r)
	})
}

// wholeBody lifts the read deadline once the body is read whole; a body
// cut short keeps it (see progressBody).
type wholeBody struct {
	io.ReadCloser
	rc   *http.ResponseController
	done bool
}

func (b *wholeBody) Read(p []byte) (int, error) {
	n, err := b.ReadCloser.Read(p)
	if errors.Is(err, io.EOF) && !b.done {
		b.done = true
		_ = b.rc.SetReadDeadline(time.Time{})
	}
	return n, err
}

// progressBody gives each read idle to complete.
type progressBody struct {
	io.ReadCloser
	rc   *http.ResponseController
	idle time.Duration
	done bool
}

func (b *progressBody) Read(p []byte) (int, error) {
	if b.done {
		return b.ReadCloser.Read(p)
	}
	_ = b.rc.SetReadDeadline(time.Now().Add(b.idle))
	n, err := b.ReadCloser.Read(p)
	if err != nil {
		b.done = true
		if errors.Is(err, io.EOF) {
			_ = b.rc.SetReadDeadline(time.Time{})
		}
		// Otherwise the deadline stays: after the handler, net/http
		// reads on what is left of a body, and a client that stalled
		// must not hold the connection there.
	}
	return n, err
}

// progressWriter gives each write idle to complete.
type progressWriter struct {
	http.ResponseWriter
	rc   *http.ResponseController
	idle time.Duration
}

func (w *progressWriter) Write(p []byte) (int, error) {
	_ = w.rc.SetWriteDeadline(time.Now().Add(w.idle))
	return w.ResponseWriter.Write(p)
}

func (w *progressWriter) Flush() {
	_ = w.rc.SetWriteDeadline(time.Now().Add(w.idle))
	_ = w.rc.Flush()
}

func (w *progressWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }
