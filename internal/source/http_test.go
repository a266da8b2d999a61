package source_test

import (
	"context"
	"crypto/rand"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/scangate/scangate/internal/source"
)

// A reader token clones but cannot push; no token, or a wrong one, is
// asked for credentials.
func TestAuth(t *testing.T) {
	s := newServer(t, source.Options{})
	s.create("app")
	seed := clone(t, s.url(s.pusher, "app"))
	commitFile(t, seed, "Dockerfile", "FROM scratch\n")
	gitRun(t, seed, "push", "--quiet", "origin", "main")
	s.nextPush()

	work := clone(t, s.url(s.reader, "app"))
	commitFile(t, work, "x", "x")
	out, err := gitTry(work, "push", "origin", "main")
	if err == nil || !strings.Contains(out, "403") {
		t.Errorf("a reader's push: %v\n%s", err, out)
	}
	s.noPush()

	for _, url := range []string{s.url("", "app"), s.url("sgt_0000", "app")} {
		if out, err := gitTry("", "ls-remote", url); err == nil {
			t.Errorf("ls-remote %s without a valid token worked:\n%s", url, out)
		}
	}

	for _, c := range []struct {
		method, path, token string
		status              int
	}{
		{"GET", "/git/app.git/info/refs?service=git-upload-pack", "", http.StatusUnauthorized},
		{"GET", "/git/app.git/info/refs?service=git-receive-pack", "", http.StatusUnauthorized},
		{"POST", "/git/app.git/git-receive-pack", "", http.StatusUnauthorized},
		{"GET", "/git/app.git/info/refs?service=git-upload-pack", "sgt_wrong", http.StatusUnauthorized},
		{"GET", "/git/app.git/info/refs?service=git-upload-pack", s.reader, http.StatusOK},
		{"GET", "/git/app/info/refs?service=git-upload-pack", s.reader, http.StatusOK},
		{"GET", "/git/app.git/info/refs?service=git-receive-pack", s.reader, http.StatusForbidden},
		{"POST", "/git/app.git/git-receive-pack", s.reader, http.StatusForbidden},
		{"GET", "/git/app.git/info/refs?service=git-receive-pack", s.pusher, http.StatusOK},
		{"GET", "/git/nope.git/info/refs?service=git-upload-pack", s.reader, http.StatusNotFound},
		{"GET", "/git/app.git/info/refs", s.reader, http.StatusNotFound}, // the dumb protocol
		{"GET", "/git/app.git/HEAD", s.reader, http.StatusNotFound},
		{"GET", "/git/app.git/config", s.reader, http.StatusNotFound},
		{"GET", "/git/.remotes/x.git/info/refs?service=git-upload-pack", s.reader, http.StatusNotFound},
		{"GET", "/git/../app.git/info/refs?service=git-upload-pack", s.reader, http.StatusNotFound},
		{"POST", "/git/app.git/info/refs?service=git-upload-pack", s.reader, http.StatusMethodNotAllowed},
		{"GET", "/git/app.git/git-upload-pack", s.reader, http.StatusMethodNotAllowed},
	} {
		req, _ := http.NewRequest(c.method, s.http.URL+c.path, nil)
		if c.token != "" {
			req.SetBasicAuth("x", c.token)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != c.status {
			t.Errorf("%s %s: %d, want %d", c.method, c.path, resp.StatusCode, c.status)
		}
		if resp.StatusCode == http.StatusUnauthorized && resp.Header.Get("WWW-Authenticate") != `Basic realm="scangate"` {
			t.Errorf("%s %s: WWW-Authenticate %q", c.method, c.path, resp.Header.Get("WWW-Authenticate"))
		}
	}

	// A token given as the user name alone, and as a Bearer token.
	gitRun(t, "", "ls-remote", fmt.Sprintf("http://%s@%s/git/app.git", s.reader, s.host))
	req, _ := http.NewRequest("GET", s.http.URL+"/git/app.git/info/refs?service=git-upload-pack", nil)
	req.Header.Set("Authorization", "Bearer "+s.reader)
	if resp, err := http.DefaultClient.Do(req); err != nil || resp.StatusCode != http.StatusOK {
		t.Errorf("Bearer token: %v %v", resp.StatusCode, err)
	}
}

// With AnonymousRead, a clone needs no token and a push still does.
func TestAnonymousRead(t *testing.T) {
	s := newServer(t, source.Options{AnonymousRead: true})
	s.create("app")
	work := clone(t, s.url("", "app"))
	commitFile(t, work, "x", "x")
	if out, err := gitTry(work, "push", "origin", "main"); err == nil {
		t.Errorf("an anonymous push worked:\n%s", out)
	}
	s.noPush()
}

// A push bigger than git's http.postBuffer comes with a chunked body; it
// is spooled, reported, and leaves no file behind. A body over the bound
// is refused.
func TestBigChunkedPush(t *testing.T) {
	s := newServer(t, source.Options{MaxBodyBytes: 64 << 20})
	s.create("app")
	work := clone(t, s.url(s.pusher, "app"))
	big := make([]byte, 20<<20)
	rand.Read(big)
	if err := os.WriteFile(filepath.Join(work, "big.bin"), big, 0o644); err != nil {
		t.Fatal(err)
	}
	gitRun(t, work, "add", "big.bin")
	gitRun(t, work, "commit", "--quiet", "-m", "big")
	head := gitRun(t, work, "rev-parse", "HEAD")
	gitRun(t, work, "push", "--quiet", "origin", "main")
	if p := s.nextPush(); p.New != head {
		t.Errorf("push = %+v, want new %s", p, head)
	}
	s.mu.Lock()
	chunked := s.chunked
	s.mu.Unlock()
	if chunked == 0 {
		t.Error("git sent no chunked body: the test does not test spooling")
	}
	assertEmpty(t, filepath.Join(s.root, ".spool"))
	// The pushed file is whole.
	clone2 := clone(t, s.url(s.reader, "app"))
	got, err := os.ReadFile(filepath.Join(clone2, "big.bin"))
	if err != nil || string(got) != string(big) {
		t.Errorf("the big file came back different (%d bytes, %v)", len(got), err)
	}

	// Over the bound: refused, and still nothing left.
	small := newServer(t, source.Options{MaxBodyBytes: 1 << 20})
	small.create("app")
	gitRun(t, work, "remote", "add", "small", small.url(small.pusher, "app"))
	if out, err := gitTry(work, "push", "small", "main"); err == nil {
		t.Errorf("a push over the bound worked:\n%s", out)
	}
	small.noPush()
	assertEmpty(t, filepath.Join(small.root, ".spool"))
	resp, err := http.Post(small.http.URL+"/git/app.git/git-receive-pack", "application/x-git-receive-pack-request",
		io.LimitReader(rand.Reader, 2<<20))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusUnauthorized {
		t.Errorf("anonymous big POST: %d, want 401", resp.StatusCode)
	}
}

func assertEmpty(t *testing.T, dir string) {
	t.Helper()
	left, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(left) != 0 {
		t.Errorf("%s holds %d entries after the push, want none", dir, len(left))
	}
}

// Two pushes at once to different branches of one repository are each
// reported once, with their own commits.
func TestConcurrentPushes(t *testing.T) {
	s := newServer(t, source.Options{})
	s.create("app")
	seed := clone(t, s.url(s.pusher, "app"))
	commitFile(t, seed, "Dockerfile", "FROM scratch\n")
	gitRun(t, seed, "push", "--quiet", "origin", "main")
	s.nextPush()

	const n = 4
	want := map[string]string{}
	dirs := make([]string, n)
	for i := range n {
		dirs[i] = clone(t, s.url(s.pusher, "app"))
		want[fmt.Sprintf("refs/heads/b%d", i)] = commitFile(t, dirs[i], "f", fmt.Sprint(i))
	}
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for i := range n {
		wg.Go(func() {
			if out, err := gitTry(dirs[i], "push", "--quiet", "origin", fmt.Sprintf("HEAD:b%d", i)); err != nil {
				errs <- fmt.Errorf("push b%d: %v\n%s", i, err, out)
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	got := map[string]string{}
	for range n {
		p := s.nextPush()
		if _, dup := got[p.Ref]; dup {
			t.Errorf("%s reported twice", p.Ref)
		}
		if p.Old != source.ZeroHash {
			t.Errorf("%s: old %s, want the zero hash", p.Ref, p.Old)
		}
		got[p.Ref] = p.New
	}
	s.noPush()
	for ref, c := range want {
		if got[ref] != c {
			t.Errorf("%s reported at %s, want %s", ref, got[ref], c)
		}
	}
}

// An OnPush error does not fail the push, which Heads then lists.
func TestOnPushErrorKeepsPush(t *testing.T) {
	s := newServer(t, source.Options{OnPush: func(context.Context, source.Push) error {
		return fmt.Errorf("database down")
	}})
	s.create("app")
	work := clone(t, s.url(s.pusher, "app"))
	c := commitFile(t, work, "Dockerfile", "FROM scratch\n")
	gitRun(t, work, "push", "--quiet", "origin", "main")
	heads, err := s.repos.Heads(context.Background())
	if err != nil || len(heads) != 1 || heads[0].New != c {
		t.Errorf("Heads = %+v, %v; want main at %s", heads, err, c)
	}
}
