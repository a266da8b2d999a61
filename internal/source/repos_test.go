package source_test

import (
	"archive/tar"
	"bytes"
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"github.com/scangate/scangate/internal/source"
)

func TestValidName(t *testing.T) {
	good := []string{"app", "team/app", "a.b_c-d", "A1/b2/c3", string(bytes.Repeat([]byte("a"), 128))}
	bad := []string{"", ".hidden", "-x", "a/../b", "a..b", "app.git/x", "a//b", "/a", "a/", "a b", "a\x00", "é",
		".remotes/x", ".spool", string(bytes.Repeat([]byte("a"), 129))}
	for _, n := range good {
		if err := source.ValidName(n); err != nil {
			t.Errorf("ValidName(%q) = %v", n, err)
		}
	}
	for _, n := range bad {
		if err := source.ValidName(n); !errors.Is(err, source.ErrInvalid) {
			t.Errorf("ValidName(%q) = %v, want ErrInvalid", n, err)
		}
	}
}

func TestCreateListDelete(t *testing.T) {
	ctx := context.Background()
	s := newServer(t, source.Options{})
	for _, n := range []string{"zeta", "team/app", "alpha.git"} {
		s.create(n)
	}
	if err := s.repos.Create(ctx, "zeta"); !errors.Is(err, source.ErrExists) {
		t.Errorf("second Create = %v, want ErrExists", err)
	}
	if err := s.repos.Create(ctx, "../evil"); !errors.Is(err, source.ErrInvalid) {
		t.Errorf("Create(../evil) = %v, want ErrInvalid", err)
	}
	if head := gitRun(t, filepath.Join(s.root, "zeta.git"), "symbolic-ref", "HEAD"); head != "refs/heads/main" {
		t.Errorf("HEAD = %q, want refs/heads/main", head)
	}
	list, err := s.repos.List(ctx)
	if err != nil {
		t.Fatal(err)
	}
	want := []source.Repo{{Name: "alpha"}, {Name: "team/app"}, {Name: "zeta"}}
	if !slices.Equal(list, want) {
		t.Errorf("List = %v, want %v", list, want)
	}
	if err := s.repos.Delete(ctx, "team/app"); err != nil {
		t.Fatal(err)
	}
	if err := s.repos.Delete(ctx, "team/app"); !errors.Is(err, source.ErrNotFound) {
		t.Errorf("second Delete = %v, want ErrNotFound", err)
	}
	if _, err := os.Stat(filepath.Join(s.root, "team")); !os.IsNotExist(err) {
		t.Errorf("the empty namespace folder stays: %v", err)
	}
	list, _ = s.repos.List(ctx)
	if want := []source.Repo{{Name: "alpha"}, {Name: "zeta"}}; !slices.Equal(list, want) {
		t.Errorf("List after Delete = %v, want %v", list, want)
	}
	if _, err := s.repos.Resolve(ctx, "team/app", "main"); !errors.Is(err, source.ErrNotFound) {
		t.Errorf("Resolve in a deleted repository = %v, want ErrNotFound", err)
	}
}

// Replicas share hosted git through a link (the compose file's git ->
// /shared/git): repositories made by one are listed by another whose
// folder is the link.
func TestListThroughLink(t *testing.T) {
	ctx := context.Background()
	s := newServer(t, source.Options{})
	s.create("team/app")
	link := filepath.Join(t.TempDir(), "git")
	if err := os.Symlink(s.root, link); err != nil {
		t.Fatal(err)
	}
	other, err := source.New(link, s.tokens, source.Options{})
	if err != nil {
		t.Fatal(err)
	}
	list, err := other.List(ctx)
	if want := []source.Repo{{Name: "team/app"}}; err != nil || !slices.Equal(list, want) {
		t.Errorf("List through a link = %v, %v; want %v", list, err, want)
	}
}

// A clone with a pusher token, a commit and a push: OnPush hears of each
// ref the push changed, with its old and new commits.
func TestPushNotifies(t *testing.T) {
	ctx := context.Background()
	s := newServer(t, source.Options{})
	s.create("app")
	work := clone(t, s.url(s.pusher, "app"))

	first := commitFile(t, work, "Dockerfile", "FROM scratch\n")
	gitRun(t, work, "push", "--quiet", "origin", "main")
	// Each push names the token that made it: the two-person rule of
	// approvals needs to know who pushed a commit.
	want := source.Push{Repo: "app", Ref: "refs/heads/main", Old: source.ZeroHash, New: first, Pusher: "ci"}
	if p := s.nextPush(); p != want {
		t.Errorf("first push = %+v, want %+v", p, want)
	}

	second := commitFile(t, work, "Dockerfile", "FROM scratch\nCOPY . /\n")
	gitRun(t, work, "tag", "v1")
	gitRun(t, work, "push", "--quiet", "origin", "main", "v1")
	got := []source.Push{s.nextPush(), s.nextPush()}
	wantAll := []source.Push{
		{Repo: "app", Ref: "refs/heads/main", Old: first, New: second, Pusher: "ci"},
		{Repo: "app", Ref: "refs/tags/v1", Old: source.ZeroHash, New: second, Pusher: "ci"},
	}
	if !slices.Equal(got, wantAll) {
		t.Errorf("second push = %+v, want %+v", got, wantAll)
	}

	gitRun(t, work, "push", "--quiet", "origin", "main:feature")
	s.nextPush()
	gitRun(t, work, "push", "--quiet", "origin", ":feature")
	want = source.Push{Repo: "app", Ref: "refs/heads/feature", Old: second, New: source.ZeroHash, Pusher: "ci"}
	if p := s.nextPush(); p != want {
		t.Errorf("deleting push = %+v, want %+v", p, want)
	}
	s.noPush()

	// A push that changes nothing reports nothing.
	gitRun(t, work, "push", "--quiet", "origin", "main")
	s.noPush()

	if c, err := s.repos.Resolve(ctx, "app", "main"); err != nil || c != second {
		t.Errorf("Resolve(main) = %q, %v; want %s", c, err, second)
	}
	if c, err := s.repos.Resolve(ctx, "app", "v1"); err != nil || c != second {
		t.Errorf("Resolve(v1) = %q, %v; want %s", c, err, second)
	}
	if c, err := s.repos.Resolve(ctx, "app", first); err != nil || c != first {
		t.Errorf("Resolve(first) = %q, %v", c, err)
	}
	if _, err := s.repos.Resolve(ctx, "app", "nope"); !errors.Is(err, source.ErrNotFound) {
		t.Errorf("Resolve(nope) = %v, want ErrNotFound", err)
	}
	heads, err := s.repos.Heads(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if want := []source.Push{{Repo: "app", Ref: "refs/heads/main", New: second}}; !slices.Equal(heads, want) {
		t.Errorf("Heads = %+v, want %+v", heads, want)
	}
}

// An annotated tag resolves to the commit it names.
func TestResolveAnnotatedTag(t *testing.T) {
	s := newServer(t, source.Options{})
	s.create("app")
	work := clone(t, s.url(s.pusher, "app"))
	c := commitFile(t, work, "a", "a")
	gitRun(t, work, "tag", "-a", "-m", "release", "v2")
	gitRun(t, work, "push", "--quiet", "origin", "main", "v2")
	if got, err := s.repos.Resolve(context.Background(), "app", "refs/tags/v2"); err != nil || got != c {
		t.Errorf("Resolve(refs/tags/v2) = %q, %v; want %s", got, err, c)
	}
}

// Archive writes the files of the commit asked for, not of the branch's
// head.
func TestArchive(t *testing.T) {
	ctx := context.Background()
	s := newServer(t, source.Options{})
	s.create("app")
	work := clone(t, s.url(s.pusher, "app"))
	commitFile(t, work, "Dockerfile", "FROM scratch\n")
	first := commitFile(t, work, "src/main.go", "package main\n")
	commitFile(t, work, "later.txt", "not in the first archive")
	gitRun(t, work, "push", "--quiet", "origin", "main")

	var buf bytes.Buffer
	if err := s.repos.Archive(ctx, "app", first, &buf); err != nil {
		t.Fatal(err)
	}
	files := tarFiles(t, &buf)
	want := map[string]string{"Dockerfile": "FROM scratch\n", "src/main.go": "package main\n"}
	if len(files) != len(want) || files["Dockerfile"] != want["Dockerfile"] || files["src/main.go"] != want["src/main.go"] {
		t.Errorf("archive holds %v, want %v", files, want)
	}

	for _, c := range []string{"main", first[:12], "--output=/tmp/x", ""} {
		if err := s.repos.Archive(ctx, "app", c, io.Discard); !errors.Is(err, source.ErrInvalid) {
			t.Errorf("Archive(%q) = %v, want ErrInvalid", c, err)
		}
	}
	if err := s.repos.Archive(ctx, "app", "0123456789012345678901234567890123456789", io.Discard); !errors.Is(err, source.ErrNotFound) {
		t.Errorf("Archive(unknown commit) = %v, want ErrNotFound", err)
	}
	if err := s.repos.Archive(ctx, "nope", first, io.Discard); !errors.Is(err, source.ErrNotFound) {
		t.Errorf("Archive(unknown repository) = %v, want ErrNotFound", err)
	}
}

// tarFiles returns the regular files of a tar stream by name.
func tarFiles(t *testing.T, r io.Reader) map[string]string {
	t.Helper()
	files := map[string]string{}
	tr := tar.NewReader(r)
	for {
		h, err := tr.Next()
		if err == io.EOF {
			return files
		}
		if err != nil {
			t.Fatal(err)
		}
		if h.Typeflag == tar.TypeReg {
			b, err := io.ReadAll(tr)
			if err != nil {
				t.Fatal(err)
			}
			files[h.Name] = string(b)
		}
	}
}
