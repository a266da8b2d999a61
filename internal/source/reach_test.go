package source_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/scangate/scangate/internal/dnstest"
	"github.com/scangate/scangate/internal/egress"
	"github.com/scangate/scangate/internal/logbuf"
	"github.com/scangate/scangate/internal/nettest"
	"github.com/scangate/scangate/internal/source"
)

// With the default egress settings, an external repository on a loopback
// address is neither fetched nor polled, whether its URL gives the address
// or a name that resolves to it; the error says why and holds no token.
func TestExternalSourceOnLoopbackIsRefused(t *testing.T) {
	ctx := context.Background()
	upstream := newServer(t, source.Options{})
	upstream.create("lib")
	work := clone(t, upstream.url(upstream.pusher, "lib"))
	commitFile(t, work, "Dockerfile", "FROM scratch\n")
	gitRun(t, work, "push", "--quiet", "origin", "main")
	upstream.nextPush()

	logs := &logbuf.Buffer{}
	s := newServer(t, source.Options{Egress: egress.New(nil), Logger: slog.New(slog.NewTextHandler(logs, nil))})
	byName := strings.Replace(upstream.url(upstream.reader, "lib"), "127.0.0.1", "localhost", 1)
	for _, u := range []string{upstream.url(upstream.reader, "lib"), byName} {
		_, err := s.repos.Fetch(ctx, u, "main")
		if !errors.Is(err, egress.ErrRefused) || !strings.Contains(err.Error(), "loopback") {
			t.Errorf("Fetch %s: %v, want it refused as a loopback address", source.Redact(u), err)
		}
		if err != nil && strings.Contains(err.Error(), upstream.reader) {
			t.Errorf("the refusal shows the token: %v", err)
		}
		if err := source.CheckRemote(ctx, egress.New(nil), u); !errors.Is(err, egress.ErrRefused) {
			t.Errorf("CheckRemote %s: %v, want refused", source.Redact(u), err)
		}
	}
	p := s.repos.NewPoller()
	defer p.Close()
	if err := p.Set([]source.Watch{{URL: upstream.url(upstream.reader, "lib"), Branch: "main", Every: time.Hour}}); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for !strings.Contains(logs.String(), "loopback") {
		if time.Now().After(deadline) {
			t.Fatalf("no refused poll logged: %s", logs.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
	s.noPush()
	if strings.Contains(logs.String(), upstream.reader) {
		t.Errorf("the log shows the token: %s", logs.String())
	}
}

// git is pinned to the address scangate resolved and checked: the
// repository's name is known to the test's DNS server only (git's own
// lookup would fail), and the fetch works; once the name resolves to a
// refused address, the fetch is refused before git runs.
func TestFetchIsPinnedToTheCheckedAddress(t *testing.T) {
	ctx := context.Background()
	upstream := newServer(t, source.Options{})
	upstream.create("lib")
	work := clone(t, upstream.url(upstream.pusher, "lib"))
	first := commitFile(t, work, "Dockerfile", "FROM scratch\n")
	gitRun(t, work, "push", "--quiet", "origin", "main")
	upstream.nextPush()

	dns := dnstest.Start(t)
	dns.Set("git.pinned.test", "127.0.0.1")
	allow := egress.New(egress.Loopback).WithResolver(dns.Resolver())
	s := newServer(t, source.Options{Egress: allow})
	u := strings.Replace(upstream.url(upstream.reader, "lib"), "127.0.0.1", "git.pinned.test", 1)
	c, err := s.repos.Fetch(ctx, u, "main")
	if err != nil || c != first {
		t.Fatalf("Fetch through the pinned name = %q, %v; want %s", c, err, first)
	}

	dns.Set("git.pinned.test", "169.254.169.254")
	strict := newServer(t, source.Options{Egress: egress.New(nil).WithResolver(dns.Resolver())})
	_, err = strict.repos.Fetch(ctx, u, "main")
	if !errors.Is(err, egress.ErrRefused) || !strings.Contains(err.Error(), "metadata") {
		t.Errorf("Fetch of a name resolving to the metadata address: %v, want refused", err)
	}
}

// A git:// repository is pinned too: served by git's own daemon on
// 127.0.0.1 under a name only the test's DNS server knows, it is fetched
// (git, resolving the name itself, would fail); once the name resolves to
// a refused address, the fetch is refused before git runs.
func TestGitProtocolFetchIsPinned(t *testing.T) {
	ctx := context.Background()
	root := t.TempDir()
	bare := filepath.Join(root, "lib.git")
	gitRun(t, root, "init", "--quiet", "--bare", "-b", "main", bare)
	work := clone(t, bare)
	first := commitFile(t, work, "Dockerfile", "FROM scratch\n")
	gitRun(t, work, "push", "--quiet", "origin", "HEAD:main")

	port := nettest.FreePort(t)
	daemon := exec.Command("git", "daemon", "--export-all", "--reuseaddr", "--base-path="+root,
		"--listen=127.0.0.1", fmt.Sprintf("--port=%d", port), root)
	if err := daemon.Start(); err != nil {
		t.Fatalf("git daemon: %v", err)
	}
	t.Cleanup(func() { _ = daemon.Process.Kill(); _ = daemon.Wait() })
	waitListening(t, fmt.Sprintf("127.0.0.1:%d", port))

	dns := dnstest.Start(t)
	dns.Set("git.daemon.test", "127.0.0.1")
	s := newServer(t, source.Options{Egress: egress.New(egress.Loopback).WithResolver(dns.Resolver())})
	u := fmt.Sprintf("git://git.daemon.test:%d/lib.git", port)
	if c, err := s.repos.Fetch(ctx, u, "main"); err != nil || c != first {
		t.Fatalf("Fetch of %s = %q, %v; want %s", u, c, err, first)
	}
	dns.Set("git.daemon.test", "169.254.169.254")
	strict := newServer(t, source.Options{Egress: egress.New(nil).WithResolver(dns.Resolver())})
	if _, err := strict.repos.Fetch(ctx, u, "main"); !errors.Is(err, egress.ErrRefused) {
		t.Errorf("Fetch of a git:// name resolving to the metadata address: %v, want refused", err)
	}
}

// waitListening waits until something accepts connections at addr.
func waitListening(t *testing.T, addr string) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		c, err := net.DialTimeout("tcp", addr, time.Second)
		if err == nil {
			c.Close()
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("nothing listens at %s: %v", addr, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}
