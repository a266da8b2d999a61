package e2e

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/scangate/scangate/internal/events"
	"github.com/scangate/scangate/internal/imagetest"
	"github.com/scangate/scangate/internal/lease"
	"github.com/scangate/scangate/internal/nettest"
	"github.com/scangate/scangate/internal/servertest"
	"github.com/scangate/scangate/internal/store"
	"github.com/scangate/scangate/internal/storetest"
)

// TestReplicasSurviveSIGKILL runs three scangate server processes on one
// PostgreSQL database and one shared folder (the sealing and approval
// keys, hosted git, the registry's storage), as the compose file does,
// behind a round-robin proxy the test runs. Clients push distinct images
// through the proxy while a follower reads the event log through it and a
// rule delivers every Scan event to a webhook; ten pipelines build, gate
// and deploy (each to a service of its own) on the Docker Engine, their
// commits pushed through the proxy, which is every replica's
// --registry-host. Mid-way the replica leading the deploy controller is
// killed with SIGKILL, and started again later; then another replica is
// stopped with SIGTERM and started again. Then: every pushed image
// was scanned exactly once (one COMPLETE result, one INITIAL_SCAN_COMPLETE
// event), another replica took the controller's lease, every execution
// succeeded and was decided, ended and deployed once (its service on the
// one new revision, one container running), the follower saw every logged
// event once, and every Scan event reached the webhook at least once.
func TestReplicasSurviveSIGKILL(t *testing.T) {
	const images, pushers, replicas, pipelines = 50, 4, 3, 10
	ctx, cancel := context.WithTimeout(context.Background(), 8*time.Minute)
	defer cancel()
	c := newCluster(t, replicas)
	for i := range replicas {
		c.start(t, i)
	}

	// A webhook that counts the Scan events it is sent.
	var hookMu sync.Mutex
	delivered := map[string]int{}
	hook := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var e events.Envelope
		if err := json.NewDecoder(io.LimitReader(r.Body, 1<<20)).Decode(&e); err == nil {
			hookMu.Lock()
			delivered[e.ID]++
			hookMu.Unlock()
		}
	}))
	t.Cleanup(hook.Close)
	if code, body := c.api(t, http.MethodPut, "/api/v1/rules/scans",
		[]byte(`{"pattern": {"detail-type": ["Scan"]}, "targets": [{"id": "hook", "webhook": "`+hook.URL+`"}]}`)); code != http.StatusNoContent {
		t.Fatalf("put the rule: %d %s", code, body)
	}

	// A follower of the log through the proxy, as events tail -f is.
	seen := map[string]int{}
	var seenMu sync.Mutex
	followCtx, stopFollowing := context.WithCancel(ctx)
	followed := make(chan struct{})
	go func() {
		defer close(followed)
		var after int64
		for followCtx.Err() == nil {
			list, err := c.events(after)
			if err == nil {
				seenMu.Lock()
				for _, l := range list {
					seen[l.Event.ID]++
					after = l.Seq
				}
				seenMu.Unlock()
			}
			time.Sleep(50 * time.Millisecond)
		}
	}()

	imgs := make([]v1.Image, images)
	digests := make([]string, images)
	for i := range imgs {
		imgs[i] = imagetest.Build(t, imagetest.Layer(t,
			imagetest.Entry{Name: "etc/os-release", Body: "ID=debian\nVERSION_ID=\"12\"\n"},
			imagetest.Entry{Name: "app/node_modules/lodash/package.json", Body: `{"name": "lodash", "version": "4.17.15"}`},
			imagetest.Entry{Name: "app/build-id", Body: fmt.Sprintf("build %d of %s\n", i, c.id)},
		))
		d, err := imgs[i].Digest()
		if err != nil {
			t.Fatal(err)
		}
		digests[i] = d.String()
	}
	pipes := c.startPipelines(t, ctx, pipelines)
	var pushed atomic.Int64
	work := make(chan int, images)
	for i := range images {
		work <- i
	}
	close(work)
	var wg sync.WaitGroup
	errs := make(chan error, images)
	for range pushers {
		wg.Go(func() {
			for i := range work {
				if err := c.pushRetrying(ctx, fmt.Sprintf("scale/app%d:%d", i%3, i), imgs[i]); err != nil {
					errs <- err
					return
				}
				pushed.Add(1)
				// A CI fleet's pace, so that pushes are on the wire
				// when the replica dies.
				time.Sleep(100 * time.Millisecond)
			}
		})
	}

	// Kill the controller's leader a third of the way, and time how long
	// the others take to lead in its place.
	waitUntilCtx(t, ctx, "a third of the pushes", func() bool { return pushed.Load() >= images/3 })
	leader := c.leader(t, ctx)
	flying := pipes.inFlight(t)
	killed, atKill := time.Now(), pushed.Load()
	c.kill(t, leader)
	waitUntilCtx(t, ctx, "another replica to lead the deploy controller", func() bool {
		info, ok, err := c.leases.Get(ctx, "deploy-controller")
		return err == nil && ok && info.Holder != c.holders[leader] && time.Now().Before(info.ExpiresAt)
	})
	t.Logf("replica %d (the deploy controller's leader) killed after %d of %d pushes, with executions in these stages: %v; another replica led %s later",
		leader, atKill, images, flying, time.Since(killed).Round(10*time.Millisecond))
	waitUntilCtx(t, ctx, "two thirds of the pushes", func() bool { return pushed.Load() >= 2*images/3 })
	c.start(t, leader)
	// Then another replica is stopped the ordinary way (SIGTERM, as an
	// orchestrator drains a pod): it finishes or hands back its work, and
	// the others take it.
	drained := (leader + 1) % replicas
	flying = pipes.inFlight(t)
	took := c.stop(t, drained)
	t.Logf("replica %d drained in %s, with executions in these stages: %v", drained, took.Round(10*time.Millisecond), flying)
	c.start(t, drained)
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}

	// Every image scanned once: one completed result, one first-scan event.
	scanned := map[string]int{}
	waitUntilCtx(t, ctx, "a Scan event for every pushed image", func() bool {
		list, err := c.allEvents()
		if err != nil {
			return false
		}
		scanned = map[string]int{}
		for _, l := range list {
			if l.Event.DetailType != "Scan" {
				continue
			}
			var d struct {
				Digest string `json:"image-digest"`
				Status string `json:"scan-status"`
			}
			if err := json.Unmarshal(l.Event.Detail, &d); err == nil {
				scanned[d.Digest+" "+d.Status]++
			}
		}
		for _, d := range digests {
			if scanned[d+" INITIAL_SCAN_COMPLETE"] == 0 {
				return false
			}
		}
		return true
	})
	// Every image scanned once: the pushed ones, the pipelines' builds
	// and the base.
	for k, n := range scanned {
		if n != 1 {
			t.Errorf("%d Scan events %s, want 1", n, k)
		}
	}
	total := 0
	for _, d := range digests {
		total += scanned[d+" INITIAL_SCAN_COMPLETE"]
	}
	if total != images {
		t.Errorf("%d Scan events for %d images: %v", total, images, scanned)
	}
	pipes.check(t, ctx)
	status := map[string]string{}
	for r := range 3 {
		code, body := c.api(t, http.MethodGet, fmt.Sprintf("/api/v1/images?repository=scale/app%d", r), nil)
		var list struct {
			Images []struct{ Digest, ScanStatus string }
		}
		if err := json.Unmarshal(body, &list); code != http.StatusOK || err != nil {
			t.Fatalf("images of scale/app%d: %d %.200s", r, code, body)
		}
		for _, im := range list.Images {
			status[im.Digest] = im.ScanStatus
		}
	}
	for _, d := range digests {
		if status[d] != "COMPLETE" {
			t.Errorf("image %s: scan %q, want COMPLETE", d, status[d])
		}
	}

	// The follower saw the whole log, each event once; the webhook got
	// every Scan event.
	all, err := c.allEvents()
	if err != nil {
		t.Fatal(err)
	}
	waitUntilCtx(t, ctx, "the follower to reach the end of the log", func() bool {
		seenMu.Lock()
		defer seenMu.Unlock()
		return len(seen) >= len(all)
	})
	stopFollowing()
	<-followed
	for _, l := range all {
		if n := seen[l.Event.ID]; n != 1 {
			t.Errorf("the follower saw event %d (%s) %d times, want once", l.Seq, l.Event.DetailType, n)
		}
	}
	waitUntilCtx(t, ctx, "every Scan event delivered to the webhook", func() bool {
		hookMu.Lock()
		defer hookMu.Unlock()
		for _, l := range all {
			if l.Event.DetailType == "Scan" && delivered[l.Event.ID] == 0 {
				return false
			}
		}
		return true
	})
	hookMu.Lock()
	again := 0
	for _, n := range delivered {
		again += n - 1
	}
	hookMu.Unlock()
	t.Logf("%d events logged; %d Scan events delivered, %d of them more than once (at least once is the promise)",
		len(all), total, again)
	// What the replicas say they took over from the one killed.
	for _, dir := range c.dirs {
		logs, _ := filepath.Glob(filepath.Join(dir, "server-*.log"))
		for _, f := range logs {
			data, _ := os.ReadFile(f)
			for _, line := range strings.Split(string(data), "\n") {
				if strings.Contains(line, "queued again") || strings.Contains(line, "without a scan") {
					t.Logf("%s: %s", filepath.Base(dir), line)
				}
			}
		}
	}
}

// cluster is N scangate server processes sharing one PostgreSQL database
// and one folder, behind a round-robin proxy.
type cluster struct {
	id       string
	bin      string
	database string
	shared   string
	secret   string
	token    string
	dirs     []string
	addrs    []string
	holders  []string // each replica's lease holder, once started
	procs    []*exec.Cmd
	done     []chan struct{}
	up       []atomic.Bool
	next     atomic.Uint64
	proxy    *httptest.Server
	leases   *lease.Leases
	store    *store.Store
	// afterStop runs once every replica has stopped (at the test's end).
	afterStop []func()
}

func newCluster(t testing.TB, n int) *cluster {
	t.Helper()
	var b [4]byte
	_, _ = rand.Read(b[:])
	secret := make([]byte, 24)
	_, _ = rand.Read(secret)
	c := &cluster{id: hex.EncodeToString(b[:]), bin: buildScangate(t), database: storetest.Postgres(t),
		shared: t.TempDir(), secret: hex.EncodeToString(secret),
		holders: make([]string, n), procs: make([]*exec.Cmd, n), done: make([]chan struct{}, n), up: make([]atomic.Bool, n)}
	// What replicas share, made once as the compose file's init does.
	for _, d := range []string{"keys", "git"} {
		if err := os.MkdirAll(filepath.Join(c.shared, d), 0o700); err != nil {
			t.Fatal(err)
		}
	}
	key := make([]byte, 32)
	_, _ = rand.Read(key)
	if err := os.WriteFile(filepath.Join(c.shared, "approval.key"), key, 0o600); err != nil {
		t.Fatal(err)
	}
	_, _ = rand.Read(key)
	if err := os.WriteFile(filepath.Join(c.shared, "keys", "1.key"), []byte(hex.EncodeToString(key)+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	// Registered before any replica starts, so that it runs after they
	// have all stopped (cleanups run last first).
	t.Cleanup(func() {
		for _, f := range c.afterStop {
			f()
		}
	})
	for range n {
		dir := t.TempDir()
		for _, l := range []string{"keys", "git", "approval.key"} {
			if err := os.Symlink(filepath.Join(c.shared, l), filepath.Join(dir, l)); err != nil {
				t.Fatal(err)
			}
		}
		c.dirs = append(c.dirs, dir)
		c.addrs = append(c.addrs, fmt.Sprintf("127.0.0.1:%d", nettest.FreePort(t)))
	}
	c.run(t, "db", "import", filepath.Join(servertest.Fixtures, "debian"), filepath.Join(servertest.Fixtures, "ghsa"))
	c.token = strings.TrimSpace(c.run(t, "token", "create", "--name", "admin-"+c.id, "--role", "admin"))
	st, err := store.OpenDatabase(context.Background(), c.database, t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	c.store, c.leases = st, lease.New(st, lease.Options{Holder: "test-" + c.id})

	// The proxy: round robin over the replicas up, as a load balancer
	// whose health check has seen one go.
	c.proxy = httptest.NewServer(&httputil.ReverseProxy{
		Rewrite: func(r *httputil.ProxyRequest) {
			for range n {
				i := int(c.next.Add(1) % uint64(n))
				if c.up[i].Load() {
					r.SetURL(&url.URL{Scheme: "http", Host: c.addrs[i]})
					// The registry's Location headers name the host
					// asked, as behind a load balancer: the proxy.
					r.Out.Host = r.In.Host
					return
				}
			}
			r.SetURL(&url.URL{Scheme: "http", Host: c.addrs[0]})
			r.Out.Host = r.In.Host
		},
		// A request to a replica killed under it is the client's to retry.
		ErrorLog: log.New(io.Discard, "", 0),
	})
	t.Cleanup(c.proxy.Close)
	return c
}

// run runs a local scangate command on the shared database.
func (c *cluster) run(t testing.TB, args ...string) string {
	t.Helper()
	cmd := exec.Command(c.bin, append([]string{"--data-dir", c.dirs[0], "--database", c.database}, args...)...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("scangate %s: %v\n%s", strings.Join(args, " "), err, stderr.String())
	}
	return stdout.String()
}

// start starts replica i and waits until it is ready.
func (c *cluster) start(t testing.TB, i int) {
	t.Helper()
	logPath := filepath.Join(c.dirs[i], fmt.Sprintf("server-%d.log", time.Now().UnixNano()))
	logf, err := os.Create(logPath)
	if err != nil {
		t.Fatal(err)
	}
	defer logf.Close()
	cmd := exec.Command(c.bin, "--data-dir", c.dirs[i], "--database", c.database, "server", "--addr", c.addrs[i],
		"--registry-host", c.host(), "--registry-storage", filepath.Join(c.shared, "registry"), "--registry-secret", c.secret,
		"--allow-private-targets", "127.0.0.0/8", "--shutdown-timeout", "5s")
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { _ = cmd.Wait(); close(done) }()
	c.procs[i], c.done[i] = cmd, done
	t.Cleanup(func() {
		_ = cmd.Process.Signal(syscall.SIGKILL)
		<-done
		if t.Failed() {
			data, _ := os.ReadFile(logPath)
			t.Logf("replica %d log:\n%s", i, tail(string(data), 40))
		}
	})
	deadline := time.Now().Add(time.Minute)
	for {
		select {
		case <-done:
			data, _ := os.ReadFile(logPath)
			t.Fatalf("replica %d exited at start:\n%s", i, data)
		default:
		}
		if resp, err := http.Get("http://" + c.addrs[i] + "/readyz"); err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				break
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("replica %d not ready within a minute", i)
		}
		time.Sleep(50 * time.Millisecond)
	}
	// Its lease holder, from its log: "host/pid/random".
	data, _ := os.ReadFile(logPath)
	for _, f := range strings.Fields(string(data)) {
		if h, ok := strings.CutPrefix(f, "holder="); ok {
			c.holders[i] = h
			break
		}
	}
	c.up[i].Store(true)
}

// kill takes replica i out of the proxy and kills it with SIGKILL.
func (c *cluster) kill(t testing.TB, i int) {
	t.Helper()
	c.up[i].Store(false)
	if err := c.procs[i].Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	<-c.done[i]
}

// stop takes replica i out of the proxy and stops it with SIGTERM, as an
// orchestrator does, and returns how long it took to exit.
func (c *cluster) stop(t testing.TB, i int) time.Duration {
	t.Helper()
	c.up[i].Store(false)
	start := time.Now()
	if err := c.procs[i].Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case <-c.done[i]:
	case <-time.After(time.Minute):
		t.Fatalf("replica %d still running a minute after SIGTERM (its shutdown timeout is 5 s)", i)
	}
	if code := c.procs[i].ProcessState.ExitCode(); code != 0 {
		t.Errorf("replica %d exited %d after SIGTERM, want 0", i, code)
	}
	return time.Since(start)
}

// leader is the replica that leads the deploy controller.
func (c *cluster) leader(t testing.TB, ctx context.Context) int {
	t.Helper()
	for ctx.Err() == nil {
		info, ok, err := c.leases.Get(ctx, "deploy-controller")
		if err == nil && ok {
			for i, h := range c.holders {
				if h == info.Holder {
					return i
				}
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatal("no replica leads the deploy controller")
	return -1
}

// api calls the API through the proxy with the admin token.
func (c *cluster) api(t testing.TB, method, path string, body []byte) (int, []byte) {
	t.Helper()
	req, err := http.NewRequest(method, c.proxy.URL+path, bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+c.token)
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	data, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, data
}

// events reads a page of the log after seq through the proxy.
func (c *cluster) events(after int64) ([]events.Logged, error) {
	req, err := http.NewRequest(http.MethodGet, fmt.Sprintf("%s/api/v1/events?after=%d&limit=500", c.proxy.URL, after), nil)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Authorization", "Bearer "+c.token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("events: %s", resp.Status)
	}
	var page struct {
		Events []struct {
			Seq   int64           `json:"seq"`
			Event events.Envelope `json:"event"`
		} `json:"events"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&page); err != nil {
		return nil, err
	}
	out := make([]events.Logged, len(page.Events))
	for i, e := range page.Events {
		out[i] = events.Logged{Seq: e.Seq, Event: e.Event}
	}
	return out, nil
}

// allEvents reads the whole log.
func (c *cluster) allEvents() ([]events.Logged, error) {
	var all []events.Logged
	var after int64
	for {
		page, err := c.events(after)
		if err != nil {
			return nil, err
		}
		if len(page) == 0 {
			return all, nil
		}
		all = append(all, page...)
		after = page[len(page)-1].Seq
	}
}

// pushRetrying pushes img as ref through the proxy until it succeeds, as
// a CI job retrying a push that failed when its replica died would.
func (c *cluster) pushRetrying(ctx context.Context, ref string, img v1.Image) error {
	r, err := name.ParseReference(strings.TrimPrefix(c.proxy.URL, "http://")+"/"+ref, name.Insecure)
	if err != nil {
		return err
	}
	for attempt := 1; ; attempt++ {
		err := remote.Write(r, img, remote.WithContext(ctx),
			remote.WithAuth(&authn.Basic{Username: "ci", Password: c.token}),
			remote.WithRetryBackoff(remote.Backoff{Duration: 10 * time.Millisecond, Factor: 1, Steps: 1}))
		if err == nil {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("push %s: gave up after %d attempts: %w", ref, attempt, err)
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// buildScangate builds cmd/scangate for a test that runs it as processes.
func buildScangate(t testing.TB) string {
	t.Helper()
	goCmd, err := exec.LookPath("go")
	if err != nil {
		goCmd = filepath.Join(runtime.GOROOT(), "bin", "go")
	}
	bin := filepath.Join(t.TempDir(), "scangate")
	if out, err := exec.Command(goCmd, "build", "-o", bin, "github.com/scangate/scangate/cmd/scangate").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	return bin
}

// waitUntilCtx polls cond until it holds, failing at ctx's end.
func waitUntilCtx(t *testing.T, ctx context.Context, what string, cond func() bool) {
	t.Helper()
	for !cond() {
		select {
		case <-ctx.Done():
			t.Fatalf("gave up waiting for %s", what)
		case <-time.After(50 * time.Millisecond):
		}
	}
}

func tail(s string, lines int) string {
	l := strings.Split(s, "\n")
	if len(l) > lines {
		l = l[len(l)-lines:]
	}
	return strings.Join(l, "\n")
}
