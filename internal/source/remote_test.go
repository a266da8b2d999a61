package source_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/scangate/scangate/internal/logbuf"
	"github.com/scangate/scangate/internal/source"
)

// An external repository (another scangate, over HTTP on 127.0.0.1, with
// a token in its URL) is fetched, archived and polled; its token shows in
// no error and no log line.
func TestRemote(t *testing.T) {
	ctx := context.Background()
	upstream := newServer(t, source.Options{})
	upstream.create("lib")
	work := clone(t, upstream.url(upstream.pusher, "lib"))
	first := commitFile(t, work, "Dockerfile", "FROM scratch\n")
	gitRun(t, work, "push", "--quiet", "origin", "main")
	upstream.nextPush()

	logs := &logbuf.Buffer{}
	s := newServer(t, source.Options{Logger: slog.New(slog.NewTextHandler(logs, nil))})
	url := upstream.url(upstream.reader, "lib")

	c, err := s.repos.Fetch(ctx, url, "main")
	if err != nil || c != first {
		t.Fatalf("Fetch = %q, %v; want %s", c, err, first)
	}
	var buf bytes.Buffer
	if err := s.repos.ArchiveRemote(ctx, url, first, &buf); err != nil {
		t.Fatal(err)
	}
	if files := tarFiles(t, &buf); files["Dockerfile"] != "FROM scratch\n" || len(files) != 1 {
		t.Errorf("remote archive holds %v", files)
	}
	// The same repository without credentials shares the cache.
	if err := s.repos.ArchiveRemote(ctx, upstream.url("", "lib"), first, &bytes.Buffer{}); err != nil {
		t.Errorf("ArchiveRemote without credentials: %v", err)
	}
	if err := s.repos.ArchiveRemote(ctx, upstream.url("", "other"), first, &bytes.Buffer{}); !errors.Is(err, source.ErrNotFound) {
		t.Errorf("ArchiveRemote of a repository never fetched = %v, want ErrNotFound", err)
	}

	// Failures name the URL without its token.
	for _, u := range []string{url, upstream.url(upstream.reader, "missing"), upstream.url("sgt_bad0bad0", "lib")} {
		_, err := s.repos.Fetch(ctx, u, "no-such-branch")
		if err == nil {
			t.Errorf("Fetch %s of a missing branch worked", source.Redact(u))
			continue
		}
		if strings.Contains(err.Error(), upstream.reader) || strings.Contains(err.Error(), "sgt_bad0bad0") {
			t.Errorf("Fetch error shows the token: %v", err)
		}
	}

	// The poller reports nothing for the head it was told of, then the
	// next commit, once.
	p := s.repos.NewPoller()
	defer p.Close()
	watches := []source.Watch{{URL: url, Branch: "main", Every: 50 * time.Millisecond, Last: first},
		{URL: upstream.url(upstream.reader, "missing"), Branch: "main", Every: 50 * time.Millisecond}}
	if err := p.Set(watches); err != nil {
		t.Fatal(err)
	}
	time.Sleep(200 * time.Millisecond)
	s.noPush()
	second := commitFile(t, work, "Dockerfile", "FROM scratch\nLABEL v=2\n")
	gitRun(t, work, "push", "--quiet", "origin", "main")
	want := source.Push{Repo: url, Ref: "refs/heads/main", Old: first, New: second, External: true, Via: "poll"}
	if got := s.nextPush(); got != want {
		t.Errorf("poller push = %+v, want %+v", got, want)
	}
	// Setting the same watches again keeps what was seen.
	if err := p.Set(watches); err != nil {
		t.Fatal(err)
	}
	time.Sleep(200 * time.Millisecond)
	s.noPush()
	if c, err := s.repos.Fetch(ctx, url, "refs/heads/main"); err != nil || c != second {
		t.Errorf("Fetch after the poll = %q, %v; want %s", c, err, second)
	}
	if err := p.Set(nil); err != nil {
		t.Fatal(err)
	}
	commitFile(t, work, "x", "x")
	gitRun(t, work, "push", "--quiet", "origin", "main")
	time.Sleep(200 * time.Millisecond)
	s.noPush()

	if !strings.Contains(logs.String(), "source: poll") {
		t.Errorf("the failing watch logged nothing:\n%s", logs)
	}
	if strings.Contains(logs.String(), upstream.reader) {
		t.Errorf("the log shows the token:\n%s", logs)
	}
}

// A watch without Last reports the head it first sees; a change OnPush
// refuses is reported again at the next poll.
func TestPollerRetries(t *testing.T) {
	upstream := newServer(t, source.Options{})
	upstream.create("lib")
	work := clone(t, upstream.url(upstream.pusher, "lib"))
	head := commitFile(t, work, "a", "a")
	gitRun(t, work, "push", "--quiet", "origin", "main")

	var mu sync.Mutex
	calls := 0
	got := make(chan source.Push, 10)
	s := newServer(t, source.Options{OnPush: func(_ context.Context, p source.Push) error {
		mu.Lock()
		defer mu.Unlock()
		if calls++; calls == 1 {
			return fmt.Errorf("database busy")
		}
		got <- p
		return nil
	}})
	p := s.repos.NewPoller()
	defer p.Close()
	url := upstream.url(upstream.reader, "lib")
	if err := p.Set([]source.Watch{{URL: url, Branch: "main", Every: 50 * time.Millisecond}}); err != nil {
		t.Fatal(err)
	}
	select {
	case push := <-got:
		want := source.Push{Repo: url, Ref: "refs/heads/main", Old: source.ZeroHash, New: head, External: true, Via: "poll"}
		if push != want {
			t.Errorf("push = %+v, want %+v", push, want)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("no push after a refused one")
	}
	time.Sleep(150 * time.Millisecond)
	if len(got) != 0 {
		t.Errorf("%d more pushes", len(got))
	}
}

func TestPollerRefusesBadWatches(t *testing.T) {
	s := newServer(t, source.Options{})
	p := s.repos.NewPoller()
	defer p.Close()
	for _, w := range []source.Watch{
		{URL: "file:///etc", Branch: "main"},
		{URL: "https://example.com/r.git", Branch: "a..b"},
		{URL: "https://example.com/r.git", Branch: "refs/tags/v1"},
		{URL: "https://example.com/r.git", Branch: "main", Last: "HEAD"},
	} {
		if err := p.Set([]source.Watch{w}); !errors.Is(err, source.ErrInvalid) {
			t.Errorf("Set(%+v) = %v, want ErrInvalid", w, err)
		}
	}
}

func TestCheckURL(t *testing.T) {
	good := []string{"https://github.com/o/r.git", "http://127.0.0.1:8080/git/app.git", "ssh://git@host:22/o/r",
		"git://host/r", "git@github.com:o/r.git", "host:o/r", "ssh://git@[::1]:22/o/r", "https://x:tok@gitlab.com/o/r"}
	bad := []string{"", "file:///etc/passwd", "/srv/repo.git", "ext::sh -c touch% /tmp/pwned", "-oProxyCommand=x",
		"https:///nohost", "http:", "host:", "https://host/a b", "fd::3", "https://h/\n", ":path", "a b@host:x", "-h:x", "ho%st:x", "git@[::1]:o/r"}
	for _, u := range good {
		if err := source.CheckURL(u); err != nil {
			t.Errorf("CheckURL(%q) = %v", u, err)
		}
	}
	for _, u := range bad {
		if err := source.CheckURL(u); !errors.Is(err, source.ErrInvalid) {
			t.Errorf("CheckURL(%q) = %v, want ErrInvalid", u, err)
		}
	}
}

func TestRedactAndRepoKey(t *testing.T) {
	for in, want := range map[string]string{
		"https://x:secret@github.com/o/r.git": "https://x:xxxxx@github.com/o/r.git",
		"https://ghp_token@github.com/o/r":    "https://xxxxx@github.com/o/r",
		"https://github.com/o/r":              "https://github.com/o/r",
		"git@github.com:o/r.git":              "git@github.com:o/r.git",
		"https://a:b@h%zz/x":                  "https://xxxxx@h%zz/x",
	} {
		if got := source.Redact(in); got != want {
			t.Errorf("Redact(%q) = %q, want %q", in, got, want)
		}
	}
	for _, u := range []string{"https://x:t@GitHub.com/o/r.git", "git@github.com:o/r", "ssh://git@github.com/o/r.git",
		"https://github.com/o/r/", "http://github.com:80/O/R"} {
		if got := source.RepoKey(u); got != "github.com/o/r" {
			t.Errorf("RepoKey(%q) = %q", u, got)
		}
	}
	if source.RepoKey("https://github.com/o/r") == source.RepoKey("https://github.com/o/s") {
		t.Error("two repositories share a key")
	}
	p := source.Push{Repo: "https://x:secret@h/r", Ref: "refs/heads/main", External: true}
	if strings.Contains(p.String(), "secret") {
		t.Errorf("Push.String shows the password: %s", p)
	}
}
