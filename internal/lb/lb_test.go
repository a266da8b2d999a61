package lb_test

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/scangate/scangate/internal/lb"
)

const service = "default/shop-api"

// backend is a task stand-in: an HTTP server on 127.0.0.1 that answers
// with its id unless given another handler.
type backend struct {
	id     string
	addr   string
	srv    *http.Server
	served atomic.Int64
	open   atomic.Int64 // connections open to it
}

func startBackend(t testing.TB, id string, h http.HandlerFunc) *backend {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	be := &backend{id: id, addr: ln.Addr().String()}
	if h == nil {
		h = func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, id) }
	}
	be.srv = &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		be.served.Add(1)
		h(w, r)
	})}
	be.srv.ConnState = func(_ net.Conn, s http.ConnState) {
		switch s {
		case http.StateNew:
			be.open.Add(1)
		case http.StateClosed, http.StateHijacked:
			be.open.Add(-1)
		}
	}
	go be.srv.Serve(ln)
	t.Cleanup(func() { be.srv.Close() })
	return be
}

// echoBody answers with the request's body, read whole first: an
// HTTP/1.x server may stop reading a body once the answer has started.
func echoBody(w http.ResponseWriter, r *http.Request) {
	body, err := io.ReadAll(r.Body)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	w.Write(body)
}

func (be *backend) target() lb.Target { return lb.Target{ID: be.id, Addr: be.addr} }

func targets(bes ...*backend) []lb.Target {
	var ts []lb.Target
	for _, be := range bes {
		ts = append(ts, be.target())
	}
	return ts
}

// listen starts a balancer with the service listening on a free port of
// 127.0.0.1, and returns it with the service's base URL.
func listen(t testing.TB, opts lb.Options) (*lb.Balancer, string) {
	t.Helper()
	b := lb.New(opts)
	addr, err := b.Listen(service, "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := b.Shutdown(ctx); err != nil {
			t.Error(err)
		}
	})
	return b, "http://" + addr.String()
}

func setTargets(t testing.TB, b *lb.Balancer, ts []lb.Target) {
	t.Helper()
	if err := b.SetTargets(service, ts); err != nil {
		t.Fatal(err)
	}
}

// newClient is a keep-alive client, as a browser or a service's callers
// would be. Its idle connections are closed when the test ends, before the
// balancer is: an http.Server's Shutdown waits up to 5 s for a connection
// that never sent a request, as a transport dialing ahead leaves.
func newClient(t testing.TB) *http.Client {
	tr := &http.Transport{MaxIdleConnsPerHost: 64}
	t.Cleanup(tr.CloseIdleConnections)
	return &http.Client{Transport: tr, Timeout: 30 * time.Second}
}

// get GETs url and returns the status and body.
func get(t testing.TB, c *http.Client, url string) (int, string) {
	t.Helper()
	resp, err := c.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, string(body)
}

// waitFor polls cond until it holds; the bound is there so that a broken
// balancer fails the test rather than hangs it, not to time anything.
func waitFor(t testing.TB, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); !cond(); {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

func targetStats(b *lb.Balancer, id string) (lb.TargetStats, bool) {
	for _, ts := range b.Stats(service).Targets {
		if ts.ID == id {
			return ts, true
		}
	}
	return lb.TargetStats{}, false
}

func TestRoundRobinIsEven(t *testing.T) {
	b, url := listen(t, lb.Options{})
	bes := []*backend{startBackend(t, "a", nil), startBackend(t, "b", nil), startBackend(t, "c", nil)}
	setTargets(t, b, targets(bes...))
	c := newClient(t)
	counts := map[string]int{}
	for range 300 {
		status, body := get(t, c, url)
		if status != http.StatusOK {
			t.Fatalf("status %d: %s", status, body)
		}
		counts[body]++
	}
	for _, be := range bes {
		if counts[be.id] != 100 {
			t.Errorf("counts %v: want 100 each", counts)
			break
		}
	}
	st := b.Stats(service)
	if st.Requests != 300 || st.Failures != 0 || st.Retries != 0 || len(st.Targets) != 3 {
		t.Errorf("stats %+v", st)
	}
	for _, ts := range st.Targets {
		if ts.Requests != 100 || ts.InFlight != 0 || ts.Draining {
			t.Errorf("target stats %+v", ts)
		}
	}
}

// probe sends requests through the balancer from several keep-alive
// clients, each every ~5 ms, until stopped, and counts what fails. Every
// other request is a POST with a body, which neither the balancer nor Go's
// transport ever sends twice: it fails if it meets a connection that its
// task is closing.
type probe struct {
	ok, failed atomic.Int64
	mu         sync.Mutex
	errs       []string
	stop       chan struct{}
	stopOnce   sync.Once
	wg         sync.WaitGroup
}

func startProbe(t testing.TB, url string, clients int) *probe {
	p := &probe{stop: make(chan struct{})}
	t.Cleanup(p.halt) // on a test that stops early
	for range clients {
		c := newClient(t)
		p.wg.Go(func() {
			n := 0
			for {
				select {
				case <-p.stop:
					return
				case <-time.After(5 * time.Millisecond):
				}
				n++
				if err := p.once(c, url, n%2 == 0); err != nil {
					p.failed.Add(1)
					p.mu.Lock()
					p.errs = append(p.errs, err.Error())
					p.mu.Unlock()
				} else {
					p.ok.Add(1)
				}
			}
		})
	}
	return p
}

func (p *probe) once(c *http.Client, url string, post bool) error {
	var resp *http.Response
	var err error
	if post {
		resp, err = c.Post(url, "text/plain", strings.NewReader("order 42"))
	} else {
		resp, err = c.Get(url)
	}
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return err
	}
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("%s: %s", resp.Status, body)
	}
	return nil
}

func (p *probe) halt() {
	p.stopOnce.Do(func() { close(p.stop) })
	p.wg.Wait()
}

func (p *probe) finish(t *testing.T) {
	t.Helper()
	p.halt()
	if n := p.failed.Load(); n > 0 {
		t.Errorf("%d of %d requests failed; first: %s", n, n+p.ok.Load(), p.errs[0])
	}
}

// slowly answers with the backend's id after 0-4 ms, so that requests are
// in flight when their target is drained.
func slowly(id string) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		time.Sleep(time.Duration(rand.N(4000)) * time.Microsecond)
		io.WriteString(w, id)
	}
}

// A rolling replacement, as the controller does it, of every one of 5
// tasks while keep-alive clients send requests: start the new task, add
// it, drain the old one, take it out, stop it gracefully. Not one request
// fails, and the new tasks take the traffic.
func TestRollingReplaceLosesNoRequest(t *testing.T) {
	b, url := listen(t, lb.Options{})
	var current []*backend
	for i := range 5 {
		id := fmt.Sprintf("old-%d", i)
		current = append(current, startBackend(t, id, slowly(id)))
	}
	setTargets(t, b, targets(current...))
	p := startProbe(t, url, 8)
	waitFor(t, "traffic", func() bool { return p.ok.Load() >= 20 })

	busy := 0 // drains that began with requests in flight
	for i := range 5 {
		id := fmt.Sprintf("new-%d", i)
		nb := startBackend(t, id, slowly(id))
		setTargets(t, b, targets(append(current, nb)...))
		waitFor(t, id+" to serve", func() bool { return nb.served.Load() >= 10 })

		old := current[0]
		if ts, _ := targetStats(b, old.id); ts.InFlight > 0 {
			busy++
		}
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		if err := b.Drain(ctx, service, old.id); err != nil {
			t.Fatal(err)
		}
		cancel()
		served := old.served.Load()
		current = append(current[1:], nb)
		setTargets(t, b, targets(current...))
		ctx, cancel = context.WithTimeout(context.Background(), 10*time.Second)
		if err := old.srv.Shutdown(ctx); err != nil {
			t.Fatal(err)
		}
		cancel()
		if n := old.served.Load(); n != served {
			t.Errorf("%s served %d requests after it was drained", old.id, n-served)
		}
	}
	before := p.ok.Load()
	waitFor(t, "traffic to the new tasks", func() bool { return p.ok.Load() >= before+20 })
	p.finish(t)

	st := b.Stats(service)
	if st.Failures != 0 {
		t.Errorf("the balancer failed %d requests", st.Failures)
	}
	if st.Retries != 0 {
		// No request met a task that was gone: the drain, not the
		// retry, made the replacement lossless.
		t.Errorf("%d requests were sent to a task that was gone", st.Retries)
	}
	if len(st.Targets) != 5 {
		t.Errorf("targets %+v: want the 5 new ones", st.Targets)
	}
	for _, ts := range st.Targets {
		if !strings.HasPrefix(ts.ID, "new-") || ts.Draining {
			t.Errorf("target %+v: want only new ones, in the set", ts)
		}
	}
	t.Logf("%d requests, %d retries; %d of 5 drains began with requests in flight", p.ok.Load(), st.Retries, busy)
}

// A task killed outright, its listener and connections gone while the
// balancer holds idle keep-alive connections to it: GETs go to the other
// task and none fails.
func TestKilledTargetIsRetried(t *testing.T) {
	b, url := listen(t, lb.Options{})
	doomed, survivor := startBackend(t, "doomed", nil), startBackend(t, "survivor", nil)
	setTargets(t, b, targets(doomed, survivor))
	c := newClient(t)
	for range 10 {
		if status, body := get(t, c, url); status != http.StatusOK {
			t.Fatalf("status %d: %s", status, body)
		}
	}
	doomed.srv.Close()
	for range 50 {
		status, body := get(t, c, url)
		if status != http.StatusOK || body != "survivor" {
			t.Fatalf("status %d: %s", status, body)
		}
	}
	st := b.Stats(service)
	if st.Failures != 0 || st.Retries == 0 {
		t.Errorf("stats %+v: want retries and no failure", st)
	}
	if ts, _ := targetStats(b, "doomed"); ts.Errors == 0 {
		t.Errorf("doomed %+v: want errors", ts)
	}
}

// A request with a body that could not reach a task goes to the next one
// whole, chunked or not.
func TestRetrySendsTheBody(t *testing.T) {
	b, url := listen(t, lb.Options{})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	dead := ln.Addr().String()
	ln.Close()
	echo := startBackend(t, "echo", echoBody)
	setTargets(t, b, []lb.Target{{ID: "dead", Addr: dead}, echo.target()})
	c := newClient(t)
	for i := range 10 {
		want := strings.Repeat(fmt.Sprintf("body %d ", i), 1000)
		var body io.Reader = strings.NewReader(want)
		if i%2 == 1 {
			body = io.MultiReader(body) // no length: chunked
		}
		resp, err := c.Post(url, "text/plain", body)
		if err != nil {
			t.Fatal(err)
		}
		got, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		if err != nil {
			t.Fatal(err)
		}
		if resp.StatusCode != http.StatusOK || string(got) != want {
			t.Fatalf("POST %d: status %d, %d bytes back of %d", i, resp.StatusCode, len(got), len(want))
		}
	}
	if st := b.Stats(service); st.Retries != 5 || st.Failures != 0 {
		t.Errorf("stats %+v: want 5 retries", st)
	}
}

// Every target unreachable: 502, once each was tried.
func TestNoTargetReachable(t *testing.T) {
	b, url := listen(t, lb.Options{})
	var ts []lb.Target
	for i := range 3 {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		ts = append(ts, lb.Target{ID: fmt.Sprint(i), Addr: ln.Addr().String()})
		ln.Close()
	}
	setTargets(t, b, ts)
	status, body := get(t, newClient(t), url)
	if status != http.StatusBadGateway || !strings.Contains(body, service) {
		t.Errorf("status %d: %s", status, body)
	}
	st := b.Stats(service)
	if st.Failures != 1 || st.Retries != 2 {
		t.Errorf("stats %+v: want 1 failure after 2 retries", st)
	}
	for _, ts := range st.Targets {
		if ts.Requests != 1 || ts.Errors != 1 {
			t.Errorf("target %+v: want one failed attempt", ts)
		}
	}
}

// sleeper is a task whose handler takes 300 ms, and says when a request
// has started and when it is done.
type sleeper struct {
	*backend
	started chan struct{}
	done    atomic.Int64
}

func startSleeper(t *testing.T) *sleeper {
	s := &sleeper{started: make(chan struct{}, 16)}
	s.backend = startBackend(t, "slow", func(w http.ResponseWriter, r *http.Request) {
		s.started <- struct{}{}
		time.Sleep(300 * time.Millisecond)
		s.done.Add(1)
		io.WriteString(w, "slow")
	})
	return s
}

// getAsync GETs url in the background; the channel has the status and
// body, or the error.
func getAsync(c *http.Client, url string) <-chan string {
	ch := make(chan string, 1)
	go func() {
		resp, err := c.Get(url)
		if err != nil {
			ch <- err.Error()
			return
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		ch <- fmt.Sprintf("%d %s", resp.StatusCode, body)
	}()
	return ch
}

// Drain waits for a request in flight, and meanwhile the drained target
// gets no new request.
func TestDrainWaitsForInFlight(t *testing.T) {
	b, url := listen(t, lb.Options{})
	slow, fast := startSleeper(t), startBackend(t, "fast", nil)
	setTargets(t, b, targets(slow.backend))
	c := newClient(t)
	res := getAsync(c, url)
	<-slow.started
	setTargets(t, b, targets(slow.backend, fast))

	drained := make(chan error, 1)
	go func() { drained <- b.Drain(context.Background(), service, "slow") }()
	waitFor(t, "slow to drain", func() bool { ts, _ := targetStats(b, "slow"); return ts.Draining })
	for range 10 {
		if status, body := get(t, c, url); status != http.StatusOK || body != "fast" {
			t.Fatalf("during the drain: status %d: %s", status, body)
		}
	}
	if err := <-drained; err != nil {
		t.Fatal(err)
	}
	if slow.done.Load() != 1 {
		t.Error("Drain returned before the request in flight was done")
	}
	if got := <-res; got != "200 slow" {
		t.Errorf("the request in flight got %q", got)
	}
	if _, ok := targetStats(b, "slow"); ok {
		t.Error("a drained target is still listed")
	}
	if err := b.Drain(context.Background(), service, "slow"); err != nil {
		t.Errorf("Drain of a target already out: %v", err)
	}
	if err := b.Drain(context.Background(), "no/such", "slow"); err != nil {
		t.Errorf("Drain of an unknown service: %v", err)
	}
}

// Drain with a context that ends returns its error; the request in
// flight still completes, and the target stays out.
func TestDrainCancelled(t *testing.T) {
	b, url := listen(t, lb.Options{})
	slow := startSleeper(t)
	setTargets(t, b, targets(slow.backend))
	res := getAsync(newClient(t), url)
	<-slow.started
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	err := b.Drain(ctx, service, "slow")
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("Drain: %v, want context.Canceled", err)
	}
	if got := <-res; got != "200 slow" {
		t.Errorf("the request in flight got %q", got)
	}
	if status, body := get(t, newClient(t), url); status != http.StatusServiceUnavailable {
		t.Errorf("after the drain: status %d: %s", status, body)
	}
}

// A drained target's keep-alive connections are closed, and only its
// own: the task sees no connection left open by the balancer.
func TestDrainClosesIdleConnections(t *testing.T) {
	b, url := listen(t, lb.Options{})
	a, bb := startBackend(t, "a", slowly("a")), startBackend(t, "b", slowly("b"))
	setTargets(t, b, targets(a, bb))
	c := newClient(t)
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			for range 10 {
				if status, body := get(t, c, url); status != http.StatusOK {
					t.Errorf("status %d: %s", status, body)
				}
			}
		})
	}
	wg.Wait()
	if a.open.Load() == 0 || bb.open.Load() == 0 {
		t.Fatalf("no keep-alive connections to drain: a %d, b %d", a.open.Load(), bb.open.Load())
	}
	keptB := bb.open.Load()
	if err := b.Drain(context.Background(), service, "a"); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "a's connections to close", func() bool { return a.open.Load() == 0 })
	if n := bb.open.Load(); n != keptB {
		t.Errorf("b had %d connections open before a was drained, %d after", keptB, n)
	}
}

func TestNoTarget(t *testing.T) {
	b, url := listen(t, lb.Options{})
	c := newClient(t)
	status, body := get(t, c, url)
	if want := "service default/shop-api has no healthy task\n"; status != http.StatusServiceUnavailable || body != want {
		t.Errorf("no targets yet: status %d: %q, want 503 %q", status, body, want)
	}
	be := startBackend(t, "a", nil)
	setTargets(t, b, targets(be))
	if status, body := get(t, c, url); status != http.StatusOK {
		t.Errorf("status %d: %s", status, body)
	}
	setTargets(t, b, nil)
	if status, _ := get(t, c, url); status != http.StatusServiceUnavailable {
		t.Errorf("targets removed: status %d, want 503", status)
	}
	if st := b.Stats(service); st.Requests != 3 || st.Failures != 2 {
		t.Errorf("stats %+v", st)
	}
}

// Close lets a request in flight finish, then nothing listens.
func TestClose(t *testing.T) {
	b, url := listen(t, lb.Options{})
	slow := startSleeper(t)
	setTargets(t, b, targets(slow.backend))
	addr := b.Stats(service).Addr
	res := getAsync(newClient(t), url)
	<-slow.started
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := b.Close(ctx, service); err != nil {
		t.Fatal(err)
	}
	if got := <-res; got != "200 slow" {
		t.Errorf("the request in flight got %q", got)
	}
	if c, err := net.Dial("tcp", addr); err == nil {
		c.Close()
		t.Error("something still listens after Close")
	}
	if st := b.Stats(service); st.Addr != "" || len(st.Targets) != 0 {
		t.Errorf("stats after Close: %+v", st)
	}
	// The name and the address are free again.
	if _, err := b.Listen(service, addr); err != nil {
		t.Error(err)
	}
}

// Close with a context that ends cuts the requests in flight, and says
// so.
func TestCloseCutsShort(t *testing.T) {
	b, url := listen(t, lb.Options{})
	slow := startSleeper(t)
	setTargets(t, b, targets(slow.backend))
	res := getAsync(newClient(t), url)
	<-slow.started
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := b.Close(ctx, service); !errors.Is(err, context.Canceled) {
		t.Errorf("Close: %v, want context.Canceled", err)
	}
	if got := <-res; got == "200 slow" {
		t.Error("the request in flight was not cut")
	}
}

func TestListen(t *testing.T) {
	b := lb.New(lb.Options{})
	defer b.Shutdown(context.Background())
	a1, err := b.Listen("x/a", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	a2, err := b.Listen("x/a", "127.0.0.1:0")
	if err != nil || a2.String() != a1.String() {
		t.Errorf("Listen again: %v, %v; want %s", a2, err, a1)
	}
	if _, err := b.Listen("x/a", "127.0.0.1:1"); err == nil {
		t.Error("Listen on another address: no error")
	}
	_, err = b.Listen("x/b", a1.String())
	if !errors.Is(err, syscall.EADDRINUSE) || !strings.Contains(err.Error(), "x/b") {
		t.Errorf("Listen on an address in use: %v", err)
	}
}

func TestSetTargetsRefusesBadTargets(t *testing.T) {
	b := lb.New(lb.Options{})
	for _, ts := range [][]lb.Target{
		{{Addr: "127.0.0.1:1"}},
		{{ID: "a", Addr: "127.0.0.1:1"}, {ID: "a", Addr: "127.0.0.1:2"}},
		{{ID: "a", Addr: "127.0.0.1"}},
	} {
		if err := b.SetTargets(service, ts); err == nil {
			t.Errorf("SetTargets(%v): no error", ts)
		}
	}
}

// The task sees the client's Host and the X-Forwarded headers, appended
// to as an ALB does.
func TestForwardedHeaders(t *testing.T) {
	b, url := listen(t, lb.Options{})
	be := startBackend(t, "h", func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, "%s|%s|%s|%s", r.Host, r.Header.Get("X-Forwarded-For"),
			r.Header.Get("X-Forwarded-Proto"), r.Header.Get("X-Forwarded-Host"))
	})
	setTargets(t, b, targets(be))
	req, err := http.NewRequest(http.MethodGet, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Host = "shop.example"
	req.Header.Set("X-Forwarded-For", "10.0.0.1")
	resp, err := newClient(t).Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	got, _ := io.ReadAll(resp.Body)
	if want := "shop.example|10.0.0.1, 127.0.0.1|http|shop.example"; string(got) != want {
		t.Errorf("got %q, want %q", got, want)
	}
}

func TestBodyLimit(t *testing.T) {
	b, url := listen(t, lb.Options{MaxBodyBytes: 1024})
	be := startBackend(t, "echo", echoBody)
	setTargets(t, b, targets(be))
	c := newClient(t)
	for _, body := range []io.Reader{
		bytes.NewReader(make([]byte, 2048)),                 // Content-Length says so
		io.MultiReader(bytes.NewReader(make([]byte, 2048))), // chunked: found out reading it
	} {
		resp, err := c.Post(url, "application/octet-stream", body)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusRequestEntityTooLarge {
			t.Errorf("status %d, want 413", resp.StatusCode)
		}
	}
	resp, err := c.Post(url, "application/octet-stream", bytes.NewReader(make([]byte, 1024)))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Errorf("a body at the limit: status %d", resp.StatusCode)
	}
}

// An upgraded connection (as WebSocket's) passes through, and is in
// flight to its target until it ends.
func TestUpgrade(t *testing.T) {
	b, url := listen(t, lb.Options{})
	be := startBackend(t, "ws", func(w http.ResponseWriter, r *http.Request) {
		proto := r.Header.Get("Upgrade")
		switch proto {
		case "echo":
		case "bogus":
			proto = "other" // not what was asked for
		default:
			http.Error(w, "upgrade to echo", http.StatusBadRequest)
			return
		}
		conn, brw, err := http.NewResponseController(w).Hijack()
		if err != nil {
			return
		}
		defer conn.Close()
		brw.WriteString("HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: " + proto + "\r\n\r\n")
		brw.Flush()
		io.Copy(conn, brw)
	})
	setTargets(t, b, targets(be))
	conn, err := net.Dial("tcp", strings.TrimPrefix(url, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	io.WriteString(conn, "GET / HTTP/1.1\r\nHost: shop\r\nConnection: Upgrade\r\nUpgrade: echo\r\n\r\n")
	br := bufio.NewReader(conn)
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != http.StatusSwitchingProtocols {
		t.Fatalf("status %d", resp.StatusCode)
	}
	io.WriteString(conn, "hello\n")
	line, err := br.ReadString('\n')
	if err != nil || line != "hello\n" {
		t.Fatalf("echo: %q, %v", line, err)
	}
	if ts, _ := targetStats(b, "ws"); ts.InFlight != 1 {
		t.Errorf("upgraded connection: %+v, want 1 in flight", ts)
	}
	conn.Close()
	waitFor(t, "the upgraded connection to end", func() bool { ts, _ := targetStats(b, "ws"); return ts.InFlight == 0 })

	// A task that switches to a protocol the client did not ask for
	// gets the client a 502, and its connection is not left in flight.
	req, err := http.NewRequest(http.MethodGet, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Connection", "Upgrade")
	req.Header.Set("Upgrade", "bogus")
	resp, err = newClient(t).Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusBadGateway {
		t.Errorf("a switch to another protocol: status %d, want 502", resp.StatusCode)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := b.Drain(ctx, service, "ws"); err != nil {
		t.Error(err)
	}
}

// BenchmarkProxy compares small GETs sent to a task directly with GETs
// through the balancer, one at a time and in parallel.
func BenchmarkProxy(b *testing.B) {
	be := startBackend(b, "a", func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "ok") })
	bal, url := listen(b, lb.Options{})
	setTargets(b, bal, targets(be))
	for _, bc := range []struct{ name, url string }{{"direct", "http://" + be.addr}, {"balancer", url}} {
		b.Run(bc.name, func(b *testing.B) {
			c := newClient(b)
			for b.Loop() {
				benchGet(b, c, bc.url)
			}
		})
		b.Run(bc.name+"-parallel", func(b *testing.B) {
			c := newClient(b)
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					benchGet(b, c, bc.url)
				}
			})
		})
	}
}

func benchGet(b *testing.B, c *http.Client, url string) {
	resp, err := c.Get(url)
	if err != nil {
		b.Error(err)
		return
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		b.Errorf("status %d", resp.StatusCode)
	}
}
