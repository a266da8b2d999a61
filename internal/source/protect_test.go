package source_test

import (
	"context"
	"strings"
	"testing"

	"github.com/scangate/scangate/internal/auth"
	"github.com/scangate/scangate/internal/source"
)

// A token scoped to shop/* clones and pushes shop/api, and is refused
// billing/api, both ways.
func TestGitRepositoryScope(t *testing.T) {
	s := newServer(t, source.Options{})
	s.create("shop/api")
	s.create("billing/api")
	shop := s.token("shop-ci", auth.RolePusher, "shop/*")
	for _, repo := range []string{"shop/api", "billing/api"} {
		seed := clone(t, s.url(s.pusher, repo))
		commitFile(t, seed, "README", repo)
		gitRun(t, seed, "push", "--quiet", "origin", "main")
		s.nextPush()
	}
	work := clone(t, s.url(shop, "shop/api"))
	commitFile(t, work, "x", "x")
	gitRun(t, work, "push", "--quiet", "origin", "main")
	s.nextPush()

	out, err := gitTry("", "clone", s.url(shop, "billing/api"), t.TempDir()+"/b")
	if err == nil || !strings.Contains(out, "403") {
		t.Fatalf("clone outside the scope: %v\n%s", err, out)
	}
	gitRun(t, work, "remote", "set-url", "origin", s.url(shop, "billing/api"))
	if out, err := gitTry(work, "push", "--force", "origin", "main"); err == nil || !strings.Contains(out, "403") {
		t.Fatalf("push outside the scope: %v\n%s", err, out)
	}
	s.noPush()
}

// The branch a pipeline builds refuses a pusher's force push and deletion,
// saying why in git's own report; an admin may do both; other branches
// and fast-forwards are not held.
func TestProtectedBranches(t *testing.T) {
	s := newServer(t, source.Options{Protected: func(_ context.Context, repo string) ([]string, error) {
		if repo == "app" {
			return []string{"main", "release"}, nil
		}
		return nil, nil
	}})
	s.create("app")
	admin := s.token("root", auth.RoleAdmin, "")
	work := clone(t, s.url(s.pusher, "app"))
	first := commitFile(t, work, "a", "1")
	gitRun(t, work, "push", "--quiet", "origin", "main", "main:feature", "main:release")
	s.nextPush()
	s.nextPush()
	s.nextPush()
	commitFile(t, work, "a", "2")
	gitRun(t, work, "push", "--quiet", "origin", "main") // a fast-forward
	s.nextPush()

	// Rewrite history: a force push of main is refused, feature's is not.
	gitRun(t, work, "reset", "--quiet", "--hard", first)
	rewritten := commitFile(t, work, "b", "rewritten")
	out, err := gitTry(work, "push", "--force", "origin", "main")
	if err == nil || !strings.Contains(out, "! [remote rejected] main -> main (protected branch: force-push needs the admin role)") {
		t.Fatalf("a pusher's force push of main: %v\n%s", err, out)
	}
	s.noPush()
	// A push of several refs is refused whole (git's pre-receive is all or
	// nothing), and says so for the other ref.
	out, err = gitTry(work, "push", "--force", "origin", "main", "main:feature")
	if err == nil || !strings.Contains(out, "feature (not updated: another branch of this push is protected)") {
		t.Fatalf("a push with a protected ref: %v\n%s", err, out)
	}
	s.noPush()
	gitRun(t, work, "push", "--quiet", "--force", "origin", "main:feature")
	s.nextPush()
	out, err = gitTry(work, "push", "origin", ":release")
	if err == nil || !strings.Contains(out, "! [remote rejected] release (protected branch: deletion needs the admin role)") {
		t.Fatalf("a pusher's deletion of main: %v\n%s", err, out)
	}
	s.noPush()

	gitRun(t, work, "remote", "set-url", "origin", s.url(admin, "app"))
	gitRun(t, work, "push", "--quiet", "--force", "origin", "main")
	if p := s.nextPush(); p.Ref != "refs/heads/main" || p.New != rewritten {
		t.Fatalf("an admin's force push: %v", p)
	}
	gitRun(t, work, "push", "--quiet", "origin", ":release")
	if p := s.nextPush(); p.Ref != "refs/heads/release" || p.New != source.ZeroHash {
		t.Fatalf("an admin's deletion: %v", p)
	}
}
