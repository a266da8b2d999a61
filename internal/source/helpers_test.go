package source_test

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/scangate/scangate/internal/auth"
	"github.com/scangate/scangate/internal/egress"
	"github.com/scangate/scangate/internal/source"
	"github.com/scangate/scangate/internal/store"
	"github.com/scangate/scangate/internal/storetest"
)

// TestMain gives git a configuration of its own: no system or user files,
// a fixed identity, so that the tests do not depend on the machine.
func TestMain(m *testing.M) {
	home, err := os.MkdirTemp("", "source-test-home-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	for k, v := range map[string]string{
		"HOME":                home,
		"XDG_CONFIG_HOME":     filepath.Join(home, ".config"),
		"GIT_CONFIG_NOSYSTEM": "1",
		"GIT_AUTHOR_NAME":     "Test Author",
		"GIT_AUTHOR_EMAIL":    "author@example.com",
		"GIT_COMMITTER_NAME":  "Test Committer",
		"GIT_COMMITTER_EMAIL": "committer@example.com",
		"GIT_TERMINAL_PROMPT": "0",
	} {
		os.Setenv(k, v)
	}
	code := m.Run()
	os.RemoveAll(home)
	os.Exit(code)
}

// server is a Repos served over HTTP on 127.0.0.1, with a token of each
// role and the pushes it reported.
type server struct {
	t      *testing.T
	repos  *source.Repos
	root   string
	http   *httptest.Server
	host   string
	pusher string
	reader string
	pushes chan source.Push
	tokens *auth.Tokens

	mu      sync.Mutex
	chunked int // requests whose body came chunked
}

// newServer starts a server; opts.OnPush, if nil, records to s.pushes.
func newServer(t *testing.T, opts source.Options) *server {
	t.Helper()
	ctx := context.Background()
	st, err := store.OpenDatabase(ctx, storetest.Database(t), t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	tokens := auth.NewTokens(st)
	s := &server{t: t, root: filepath.Join(t.TempDir(), "git"), pushes: make(chan source.Push, 100), tokens: tokens}
	if s.pusher, _, err = tokens.Create(ctx, "ci", auth.RolePusher); err != nil {
		t.Fatal(err)
	}
	if s.reader, _, err = tokens.Create(ctx, "viewer", auth.RoleReader); err != nil {
		t.Fatal(err)
	}
	if opts.OnPush == nil {
		opts.OnPush = func(_ context.Context, p source.Push) error {
			s.pushes <- p
			return nil
		}
	}
	if opts.Egress == nil {
		// The upstream repositories of these tests run on 127.0.0.1,
		// which a default Repos does not fetch from (reach_test.go).
		opts.Egress = egress.New(egress.Loopback)
	}
	if s.repos, err = source.New(s.root, tokens, opts); err != nil {
		t.Fatal(err)
	}
	s.http = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if len(r.TransferEncoding) > 0 {
			s.mu.Lock()
			s.chunked++
			s.mu.Unlock()
		}
		s.repos.ServeHTTP(w, r)
	}))
	t.Cleanup(s.http.Close)
	s.host = strings.TrimPrefix(s.http.URL, "http://")
	return s
}

// token makes a token with role and scope ("" for every repository).
func (s *server) token(name string, role auth.Role, scope string) string {
	s.t.Helper()
	sc, err := auth.ParseScope(scope)
	if err != nil {
		s.t.Fatal(err)
	}
	secret, _, err := s.tokens.CreateToken(context.Background(), auth.Spec{Name: name, Role: role, Repositories: sc})
	if err != nil {
		s.t.Fatal(err)
	}
	return secret
}

// url is the clone URL of repo with token ("" for none).
func (s *server) url(token, repo string) string {
	if token == "" {
		return fmt.Sprintf("http://%s/git/%s.git", s.host, repo)
	}
	return fmt.Sprintf("http://x:%s@%s/git/%s.git", token, s.host, repo)
}

func (s *server) create(name string) {
	s.t.Helper()
	if err := s.repos.Create(context.Background(), name); err != nil {
		s.t.Fatal(err)
	}
}

// nextPush waits for a reported push.
func (s *server) nextPush() source.Push {
	s.t.Helper()
	select {
	case p := <-s.pushes:
		return p
	case <-time.After(10 * time.Second):
		s.t.Fatal("no push reported")
		return source.Push{}
	}
}

// noPush checks that no further push is reported.
func (s *server) noPush() {
	s.t.Helper()
	select {
	case p := <-s.pushes:
		s.t.Fatalf("unexpected push %v", p)
	case <-time.After(100 * time.Millisecond):
	}
}

// gitRun runs git in dir and returns its output, trimmed.
func gitRun(t *testing.T, dir string, args ...string) string {
	t.Helper()
	out, err := gitTry(dir, args...)
	if err != nil {
		t.Fatalf("git %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return out
}

// gitTry runs git in dir, returning its combined output and error.
func gitTry(dir string, args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "git", args...)
	cmd.Dir = dir
	out, err := cmd.CombinedOutput()
	return strings.TrimSpace(string(out)), err
}

// clone clones url into a new folder and returns it.
func clone(t *testing.T, url string) string {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "work")
	gitRun(t, "", "clone", "--quiet", url, dir)
	return dir
}

// commitFile writes name with content in the work tree dir, commits it and
// returns the commit's hash.
func commitFile(t *testing.T, dir, name, content string) string {
	t.Helper()
	p := filepath.Join(dir, filepath.FromSlash(name))
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	gitRun(t, dir, "add", name)
	gitRun(t, dir, "commit", "--quiet", "-m", "change "+name)
	return gitRun(t, dir, "rev-parse", "HEAD")
}
