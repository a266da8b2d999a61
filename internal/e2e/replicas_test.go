package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/scangate/scangate/internal/deploy"
	"github.com/scangate/scangate/internal/events"
	"github.com/scangate/scangate/internal/imagetest"
	"github.com/scangate/scangate/internal/jobs"
	"github.com/scangate/scangate/internal/lease"
	"github.com/scangate/scangate/internal/servertest"
)

// The replicas tests play a second scangate server on the same database
// with package lease over a second handle of the server's SQLite file
// (servertest's Store): that is what another replica's server does with
// its own connections. Two whole servers cannot share a data folder (its
// lock), and two on one database need PostgreSQL (its own branch); what
// these tests check, the hand-over of leadership and of locks through the
// database, is the same there.

// The leases the server holds (server.leaseDeploy and the others).
var serverLeases = []string{"deploy-controller", "source-pollers", "retention"}

// TestReplicaLeadershipHandsOverAtStop: a server leads its singletons while
// it runs, another replica waiting for them does not get them, and the
// server's stop releases them at once, so that the waiting replica takes
// over without waiting for their expiry.
func TestReplicaLeadershipHandsOverAtStop(t *testing.T) {
	ctx := context.Background()
	s := servertest.Start(t, servertest.Options{Feeds: []string{}})
	other := lease.New(s.Store, lease.Options{Holder: "replica-b", Retry: 50 * time.Millisecond})

	holder := ""
	deadline := time.Now().Add(time.Minute)
	for _, name := range serverLeases {
		for {
			info, ok, err := other.Get(ctx, name)
			if err != nil {
				t.Fatal(err)
			}
			if ok {
				if holder != "" && info.Holder != holder {
					t.Fatalf("lease %s held by %s, the others by %s", name, info.Holder, holder)
				}
				holder = info.Holder
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("the server did not take lease %s", name)
			}
			time.Sleep(50 * time.Millisecond)
		}
		if ok, err := other.TryAcquire(ctx, name); err != nil || ok {
			t.Fatalf("another replica took %s while the server leads: %v %v", name, ok, err)
		}
	}

	// The other replica waits to lead the controller.
	leading := make(chan struct{})
	rctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		other.RunWhileLeader(rctx, "deploy-controller", func(ctx context.Context) {
			close(leading)
			<-ctx.Done()
		})
	}()
	defer func() { cancel(); <-done }()

	s.Stop(t)
	// Stop returned: the server has released every lease it held (an
	// expiry would leave the rows for 15 s).
	for _, name := range serverLeases {
		info, ok, err := other.Get(ctx, name)
		if err != nil {
			t.Fatal(err)
		}
		if ok && info.Holder == holder {
			t.Errorf("lease %s still held by the stopped server %s (until %s)", name, holder, info.ExpiresAt)
		}
	}
	select {
	case <-leading:
	case <-time.After(time.Minute):
		t.Fatal("the other replica did not take the controller's lease")
	}
}

// TestGitPushWaitsForAnotherReplicasLock: a push to a hosted repository
// waits while another replica holds the repository's lock in the database,
// and goes through once it is released; the push's own lock is released
// when it ends.
func TestGitPushWaitsForAnotherReplicasLock(t *testing.T) {
	ctx := context.Background()
	h := newHarness(t, servertest.Options{Feeds: []string{}})
	name := "replicas/r" + h.id
	h.api("POST", "/api/v1/repositories", map[string]string{"name": name}, http.StatusCreated)
	dir := filepath.Join(t.TempDir(), "clone")
	h.git("", "clone", "--quiet", fmt.Sprintf("http://dev:%s@%s/git/%s.git", h.s.Token, h.s.Addr, name), dir)
	h.git(dir, "commit", "--quiet", "--allow-empty", "-m", "one")

	other := lease.New(h.s.Store, lease.Options{Holder: "replica-b"})
	key := "git:" + name + ".git"
	_, unlock, err := other.Lock(ctx, key)
	if err != nil {
		t.Fatal(err)
	}
	pushed := make(chan error, 1)
	go func() {
		cmd := exec.Command("git", "push", "--quiet", "origin", "HEAD:main")
		cmd.Dir, cmd.Env = dir, h.env
		out, err := cmd.CombinedOutput()
		if err != nil {
			err = fmt.Errorf("%w: %s", err, out)
		}
		pushed <- err
	}()
	waitsForLock(t, other, key, pushed, unlock)
}

// TestTagPushWaitsForAnotherReplicasLock: a push of a tag waits while
// another replica holds the tag's lock (a push of the same tag through
// that replica, between its storage write and its record), and goes
// through once it is released.
func TestTagPushWaitsForAnotherReplicasLock(t *testing.T) {
	ctx := context.Background()
	s := servertest.Start(t, servertest.Options{Feeds: []string{}})
	img, _ := imagetest.BookwormApp(t)
	other := lease.New(s.Store, lease.Options{Holder: "replica-b"})
	key := "tag:replicas/app:1"
	_, unlock, err := other.Lock(ctx, key)
	if err != nil {
		t.Fatal(err)
	}
	pushed := make(chan error, 1)
	go func() { pushed <- remote.Write(s.Ref(t, "replicas/app:1"), img, remote.WithAuth(s.Auth())) }()
	waitsForLock(t, other, key, pushed, unlock)
}

// waitsForLock checks that a push (its result comes on pushed) waits
// while another replica holds the lock key, goes through once unlock
// releases it, and leaves the lock free when it ends.
func waitsForLock(t *testing.T, other *lease.Leases, key string, pushed <-chan error, unlock func()) {
	t.Helper()
	// Not a measure of time: the push must still be waiting after a
	// while, since the lock it needs is held.
	select {
	case err := <-pushed:
		unlock()
		t.Fatalf("the push went through while another replica held the lock %s: %v", key, err)
	case <-time.After(2 * time.Second):
	}
	unlock()
	select {
	case err := <-pushed:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(time.Minute):
		t.Fatal("the push did not go through after the lock was released")
	}
	if _, ok, _ := other.Get(context.Background(), key); ok {
		t.Errorf("lock %s still held after the push", key)
	}
}

// TestControllerSeesAnotherReplicasChanges: a cluster created and deleted
// through another replica (a second deploy.Controller on the database,
// which does not lead and whose own nudge reaches no one) is made and
// removed on the Docker Engine by the leading server's controller, which
// looks for such changes every 2 s; without that it would wait for its
// full reconcile, a minute later.
func TestControllerSeesAnotherReplicasChanges(t *testing.T) {
	ctx := context.Background()
	h := newHarness(t, servertest.Options{Feeds: []string{}})
	other := deploy.New(h.s.Store, nil, deploy.Options{})
	cluster := "replicas-" + h.id
	network := func() bool {
		out, err := exec.Command("docker", "network", "ls", "-q", "--filter", "name=^scangate-"+cluster+"$").Output()
		if err != nil {
			t.Fatal(err)
		}
		return strings.TrimSpace(string(out)) != ""
	}
	wait := func(what string, ok func() bool) {
		t.Helper()
		// The bound is well under the controller's 1 min idle reconcile.
		for end := time.Now().Add(30 * time.Second); !ok(); time.Sleep(200 * time.Millisecond) {
			if time.Now().After(end) {
				t.Fatalf("the leading controller did not act on another replica's change: %s", what)
			}
		}
	}
	// The server's first reconciles are over before the change.
	time.Sleep(time.Second)
	if _, err := other.CreateCluster(ctx, deploy.Cluster{Name: cluster, HostIP: "127.0.0.1"}); err != nil {
		t.Fatal(err)
	}
	wait("its network made", network)
	if err := other.DeleteCluster(ctx, cluster); err != nil {
		t.Fatal(err)
	}
	wait("its network removed", func() bool { return !network() })
}

// TestEventFromAnotherReplica: an event another replica publishes (a bus
// over a second handle of the database, with an insert-only job client,
// as another server's scanner or pipeline publishes) is in this server's
// event log, which `events tail -f` and the console's live stream poll,
// and is delivered to a webhook once, by whichever server takes its
// routing job.
func TestEventFromAnotherReplica(t *testing.T) {
	ctx := context.Background()
	s := servertest.Start(t, servertest.Options{Feeds: []string{}})
	var mu sync.Mutex
	got := map[string]int{}
	rcv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var e events.Envelope
		if err := json.NewDecoder(io.LimitReader(r.Body, 1<<20)).Decode(&e); err == nil {
			mu.Lock()
			got[e.ID]++
			mu.Unlock()
		}
		w.WriteHeader(http.StatusNoContent)
	}))
	defer rcv.Close()
	status, body := s.API(t, http.MethodPut, "/api/v1/rules/replicas",
		[]byte(`{"pattern": {"detail": {"from": ["replica-b"]}}, "targets": [{"id": "rcv", "webhook": "`+rcv.URL+`"}]}`))
	if status != http.StatusNoContent {
		t.Fatalf("put rule: %d %s", status, body)
	}

	client, err := jobs.New(s.Store, nil, jobs.Config{})
	if err != nil {
		t.Fatal(err)
	}
	e, err := events.New(events.SourceDeploy, "Service Action", nil, map[string]any{"from": "replica-b"})
	if err != nil {
		t.Fatal(err)
	}
	if err := events.NewBus(s.Store, client, events.BusOptions{}).PublishNow(ctx, e); err != nil {
		t.Fatal(err)
	}

	status, body = s.API(t, http.MethodGet, "/api/v1/events?after=0&type=Service%20Action", nil)
	if status != http.StatusOK || !strings.Contains(string(body), e.ID) {
		t.Fatalf("the server's event log (what events tail reads): %d %s; want event %s", status, body, e.ID)
	}
	for end := time.Now().Add(time.Minute); ; time.Sleep(100 * time.Millisecond) {
		mu.Lock()
		n := got[e.ID]
		mu.Unlock()
		if n > 0 {
			break
		}
		if time.Now().After(end) {
			t.Fatal("the event another replica published was not delivered")
		}
	}
	// Some more routing time: a second delivery would come now.
	time.Sleep(2 * time.Second)
	mu.Lock()
	defer mu.Unlock()
	if got[e.ID] != 1 {
		t.Fatalf("event delivered %d times, want once", got[e.ID])
	}
}
