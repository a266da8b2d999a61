package auth

import (
	"encoding/json"
	"fmt"
	"log/slog"
	"math"
	"net"
	"net/http"
	"net/netip"
	"strconv"
	"strings"
	"sync"
	"time"

	"golang.org/x/time/rate"
)

// maxClients bounds how many clients the Limiter remembers; past it, the
// clients that have earned back every attempt are forgotten first, then
// the oldest.
const maxClients = 100_000

// Limiter rate-limits failed authentications per client, as a token bucket
// per client address (IPv6 clients by their /64, which one host usually
// has whole): a client may fail burst times at once, then once every
// interval. A client over its limit is refused (429) for every request that
// carries credentials, valid or not, until it has earned an attempt back,
// so that guessing tokens is slow; requests without credentials (an
// anonymous pull, the registry's ping) are not limited.
type Limiter struct {
	every rate.Limit
	burst int
	log   *slog.Logger
	now   func() time.Time

	mu      sync.Mutex
	clients map[netip.Addr]*client
}

type client struct {
	lim     *rate.Limiter
	seen    time.Time
	blocked bool // logged as blocked, until it may try again
}

// NewLimiter allows burst failed authentications per client at once, then
// one every interval; log reports failures and blocks.
func NewLimiter(burst int, interval time.Duration, log *slog.Logger) *Limiter {
	if log == nil {
		log = slog.Default()
	}
	return &Limiter{every: rate.Every(interval), burst: burst, log: log, now: time.Now, clients: map[netip.Addr]*client{}}
}

// clientKey is the address a request comes from (after a trusted proxy's
// X-Forwarded-For, see package server), IPv6 cut to its /64.
func clientKey(remoteAddr string) netip.Addr {
	host, _, err := net.SplitHostPort(remoteAddr)
	if err != nil {
		host = remoteAddr
	}
	a, err := netip.ParseAddr(host)
	if err != nil {
		return netip.Addr{}
	}
	a = a.Unmap()
	if a.Is6() {
		p, _ := a.Prefix(64)
		return p.Addr()
	}
	return a
}

// wait returns how long the client must wait before its next attempt; 0
// if it may try now.
func (l *Limiter) wait(key netip.Addr) time.Duration {
	l.mu.Lock()
	defer l.mu.Unlock()
	c := l.clients[key]
	if c == nil {
		return 0
	}
	now := l.now()
	tokens := c.lim.TokensAt(now)
	if tokens >= 1 {
		c.blocked = false
		return 0
	}
	return time.Duration(math.Ceil((1 - tokens) / float64(c.lim.Limit()) * float64(time.Second)))
}

// failed records a failed authentication and reports whether it used the
// client's last attempt.
func (l *Limiter) failed(key netip.Addr) (exhausted bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	now := l.now()
	c := l.clients[key]
	if c == nil {
		if len(l.clients) >= maxClients {
			l.forget(now)
		}
		c = &client{lim: rate.NewLimiter(l.every, l.burst)}
		l.clients[key] = c
	}
	c.seen = now
	c.lim.AllowN(now, 1)
	if c.lim.TokensAt(now) < 1 && !c.blocked {
		c.blocked = true
		return true
	}
	return false
}

// forget drops the clients that have earned back every attempt, or, if
// none has, the least recently seen tenth.
func (l *Limiter) forget(now time.Time) {
	for k, c := range l.clients {
		if c.lim.TokensAt(now) >= float64(l.burst) {
			delete(l.clients, k)
		}
	}
	if len(l.clients) < maxClients {
		return
	}
	cut := now
	for _, c := range l.clients {
		if c.seen.Before(cut) {
			cut = c.seen
		}
	}
	span := now.Sub(cut) / 10
	for k, c := range l.clients {
		if c.seen.Before(cut.Add(span)) || span == 0 {
			delete(l.clients, k)
		}
	}
}

// Wrap refuses the requests with credentials of a client over its limit,
// and counts and logs each request with credentials answered 401 as a
// failed authentication: every route's token check answers 401 for an
// unknown, revoked or expired token. The log names the client, the method
// and the path, never the credentials.
func (l *Limiter) Wrap(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !hasCredentials(r) {
			next.ServeHTTP(w, r)
			return
		}
		key := clientKey(r.RemoteAddr)
		if d := l.wait(key); d > 0 {
			tooMany(w, r, d)
			return
		}
		rec := &statusRecorder{ResponseWriter: w}
		next.ServeHTTP(rec, r)
		if rec.status != http.StatusUnauthorized {
			return
		}
		l.log.Warn("authentication failed", "client", key.String(), "method", r.Method, "path", r.URL.Path)
		if l.failed(key) {
			l.log.Warn("too many failed authentications: the client's credentials are refused for a while",
				"client", key.String(), "burst", l.burst, "then_every", time.Duration(float64(time.Second)/float64(l.every)).String())
		}
	})
}

// hasCredentials tells a request that tries to authenticate: with a header
// (the registry's AnonymousToken is none), or with the web console's login
// form (LoginPath).
func hasCredentials(r *http.Request) bool {
	h := r.Header.Get("Authorization")
	return h != "" && h != "Bearer "+AnonymousToken || r.Method == http.MethodPost && r.URL.Path == LoginPath
}

// AnonymousToken is the token the registry's token endpoint gives a client
// with no credentials when anonymous pulls are on: it stands for no token.
// It is no secret.
const AnonymousToken = "anonymous"

// LoginPath is where the web console's login form posts a token.
const LoginPath = "/login"

func tooMany(w http.ResponseWriter, r *http.Request, d time.Duration) {
	secs := max(1, int(math.Ceil(d.Seconds())))
	w.Header().Set("Retry-After", strconv.Itoa(secs))
	msg := fmt.Sprintf("too many failed authentications from this client: retry in %d s", secs)
	if strings.HasPrefix(r.URL.Path, "/v2/") || r.URL.Path == "/v2" {
		// The distribution specification's error shape, which Docker shows.
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusTooManyRequests)
		_ = json.NewEncoder(w).Encode(map[string]any{"errors": []map[string]string{{"code": "TOOMANYREQUESTS", "message": msg}}})
		return
	}
	http.Error(w, msg, http.StatusTooManyRequests)
}

// statusRecorder remembers the status a handler sent; Unwrap and Flush
// keep http.ResponseController and streaming working through it.
type statusRecorder struct {
	http.ResponseWriter
	status int
}

func (s *statusRecorder) WriteHeader(status int) {
	if s.status == 0 {
		s.status = status
	}
	s.ResponseWriter.WriteHeader(status)
}

func (s *statusRecorder) Write(b []byte) (int, error) {
	if s.status == 0 {
		s.status = http.StatusOK
	}
	return s.ResponseWriter.Write(b)
}

func (s *statusRecorder) Flush() { _ = http.NewResponseController(s.ResponseWriter).Flush() }

func (s *statusRecorder) Unwrap() http.ResponseWriter { return s.ResponseWriter }
