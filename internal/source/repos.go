package source

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/scangate/scangate/internal/auth"
	"github.com/scangate/scangate/internal/egress"
	"github.com/scangate/scangate/internal/store"
)

// ZeroHash is the commit of a ref that does not exist: the Old of a
// created branch, the New of a deleted one.
const ZeroHash = "0000000000000000000000000000000000000000"

// DefaultBranch is the branch a new hosted repository's HEAD names.
const DefaultBranch = "main"

// DefaultMaxBody bounds a git request's body when Options.MaxBodyBytes is 0.
const DefaultMaxBody int64 = 2 << 30

// DefaultMaxUploadPack bounds a clone's or fetch's request body when
// Options.MaxUploadPackBytes is 0: git sends its wants and haves in rounds
// of a few hundred lines (50 bytes each), so even a repository of
// thousands of refs stays far below it.
const DefaultMaxUploadPack int64 = 4 << 20

// DefaultMaxSpooled caps the bodies spooled at once when Options.MaxSpooled
// is 0.
const DefaultMaxSpooled = 4

// maxNameLen bounds a hosted repository's name.
const maxNameLen = 128

// Errors callers tell apart; the API answers them as 409, 404 and 400.
var (
	ErrExists   = errors.New("repository exists")
	ErrNotFound = errors.New("not found")
	ErrInvalid  = errors.New("invalid argument")
)

// Push is a ref that changed: a branch or tag created (Old is ZeroHash),
// moved, or deleted (New is ZeroHash).
type Push struct {
	// Repo is a hosted repository's name or, when External is set, the
	// external repository's URL as its Watch gave it or its webhook named
	// it; compare such URLs with RepoKey.
	Repo string
	// Ref is the full ref name, such as refs/heads/main.
	Ref string
	// Old is the commit the ref named before; "" in the heads listed by
	// Heads, where it is not known.
	Old string
	// New is the commit the ref names now.
	New string
	// External tells a push to an external repository from one to a
	// hosted repository.
	External bool
	// Via says how an external push was learnt of: "poll" or "webhook".
	Via string
	// Pusher is the name of the token that pushed to a hosted repository.
	Pusher string
}

// String describes the push for logs, without a URL's credentials.
func (p Push) String() string {
	repo := p.Repo
	if p.External {
		repo = Redact(repo)
	}
	return fmt.Sprintf("%s %s %s..%s", repo, p.Ref, p.Old, p.New)
}

// Options configures Repos.
type Options struct {
	// OnPush is told of every ref a push changed, after git changed it, in
	// the order of the pushes to one repository; it is also told of the
	// changes a Poller or a webhook finds in external repositories. An
	// error is logged: the push has happened all the same (see Heads).
	// Nil tells nobody.
	OnPush func(ctx context.Context, p Push) error
	// AnonymousRead lets requests without a token clone and fetch.
	AnonymousRead bool
	// MaxBodyBytes bounds a git request's body, which for a push holds
	// every object pushed; 0 is DefaultMaxBody.
	MaxBodyBytes int64
	// MaxUploadPackBytes bounds the body of a clone's or fetch's request,
	// which lists the commits the client wants and has; 0 is
	// DefaultMaxUploadPack.
	MaxUploadPackBytes int64
	// MaxSpooled caps the request bodies being written to disk at once
	// (see Repos.spool); more are answered 503. 0 is DefaultMaxSpooled.
	MaxSpooled int
	// Logger reports what clients are not told; nil is slog's default.
	Logger *slog.Logger
	// Store records the ids of the webhook deliveries taken, so that one
	// sent again is ignored; nil records none.
	Store *store.Store
	// Egress is what external repositories may be fetched from (see
	// reach.go); nil allows public addresses only.
	Egress *egress.Guard
	// Protected returns the branches of the hosted repository repo (short
	// names: "main") that refuse non-fast-forward pushes and deletions from
	// tokens that are not admins: the branches pipelines build. Nil
	// protects none.
	Protected func(ctx context.Context, repo string) ([]string, error)
	// Lock, if not nil, takes the lock named key (a repository's folder
	// under the root, "shop/api.git", or an external repository's cache)
	// across every process that shares the folder (several servers on
	// shared storage: package lease), and returns its unlock. Nil locks
	// within this process only.
	Lock func(ctx context.Context, key string) (unlock func(), err error)
}

// Repos is the set of hosted repositories under one folder, and the caches
// of external repositories beside them.
type Repos struct {
	root   string
	tokens *auth.Tokens
	opts   Options
	git    string // the git binary's path

	mu    sync.Mutex
	locks map[string]chan struct{} // by repository folder
	// spooling holds a slot per body being spooled.
	spooling chan struct{}
}

// Repo is a hosted repository.
type Repo struct {
	// Name is the repository's name, as in /git/NAME.git.
	Name string `json:"name"`
}

// The folders under root that are not repositories. A repository's name
// cannot start with a dot, so these never collide with one.
const (
	spoolDir  = ".spool"   // request bodies and repositories being made or deleted
	remoteDir = ".remotes" // caches of external repositories
)

// New opens the repositories under root, creating the folder if needed.
// tokens checks the tokens of git requests; nil accepts none, leaving only
// anonymous reads (Options.AnonymousRead).
func New(root string, tokens *auth.Tokens, opts Options) (*Repos, error) {
	gitPath, err := exec.LookPath("git")
	if err != nil {
		return nil, fmt.Errorf("source: the git binary is needed: %w", err)
	}
	abs, err := filepath.Abs(root)
	if err != nil {
		return nil, fmt.Errorf("source: %w", err)
	}
	for _, d := range []string{abs, filepath.Join(abs, remoteDir)} {
		if err := os.MkdirAll(d, 0o750); err != nil {
			return nil, fmt.Errorf("source: %w", err)
		}
	}
	if err := clearSpool(filepath.Join(abs, spoolDir)); err != nil {
		return nil, fmt.Errorf("source: clear the spool: %w", err)
	}
	if err := installHooks(abs); err != nil {
		return nil, fmt.Errorf("source: install the hooks: %w", err)
	}
	if opts.MaxBodyBytes <= 0 {
		opts.MaxBodyBytes = DefaultMaxBody
	}
	if opts.MaxUploadPackBytes <= 0 {
		opts.MaxUploadPackBytes = DefaultMaxUploadPack
	}
	if opts.MaxSpooled <= 0 {
		opts.MaxSpooled = DefaultMaxSpooled
	}
	return &Repos{root: abs, tokens: tokens, opts: opts, git: gitPath, locks: map[string]chan struct{}{},
		spooling: make(chan struct{}, opts.MaxSpooled)}, nil
}

// clearSpool removes what a killed process left in the spool: entries
// older than an hour. Newer ones may belong to a server working beside this
// process (the CLI opens the repositories too).
func clearSpool(dir string) error {
	if err := os.MkdirAll(dir, 0o750); err != nil {
		return err
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		return err
	}
	for _, e := range entries {
		info, err := e.Info()
		if err != nil || time.Since(info.ModTime()) < time.Hour {
			continue
		}
		if err := os.RemoveAll(filepath.Join(dir, e.Name())); err != nil {
			return err
		}
	}
	return nil
}

func (r *Repos) logger() *slog.Logger {
	if r.opts.Logger != nil {
		return r.opts.Logger
	}
	return slog.Default()
}

// ValidName checks a hosted repository's name: 1 to 128 letters, digits,
// dots, dashes and underscores, with slashes between namespaces; each part
// starts with a letter or digit and does not end with ".git".
func ValidName(name string) error {
	if name == "" || len(name) > maxNameLen {
		return fmt.Errorf("repository name %q: want 1 to %d characters: %w", name, maxNameLen, ErrInvalid)
	}
	for part := range strings.SplitSeq(name, "/") {
		if err := validPart(part); err != nil {
			return fmt.Errorf("repository name %q: %v: %w", name, err, ErrInvalid)
		}
	}
	return nil
}

func validPart(part string) error {
	if part == "" {
		return errors.New("empty namespace")
	}
	if !isAlnum(part[0]) {
		return errors.New("each part must start with a letter or digit")
	}
	if strings.HasSuffix(part, ".git") || strings.Contains(part, "..") {
		return errors.New(`no part may end with ".git" or hold ".."`)
	}
	for i := 0; i < len(part); i++ {
		if c := part[i]; !isAlnum(c) && c != '.' && c != '-' && c != '_' {
			return fmt.Errorf("character %q not allowed", c)
		}
	}
	return nil
}

func isAlnum(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9'
}

// dir is the folder of the hosted repository name, which must be valid.
func (r *Repos) dir(name string) string {
	return filepath.Join(r.root, filepath.FromSlash(name)+".git")
}

// existing returns the folder of the hosted repository name, or an error
// wrapping ErrNotFound or ErrInvalid.
func (r *Repos) existing(name string) (string, error) {
	if err := ValidName(name); err != nil {
		return "", err
	}
	d := r.dir(name)
	if !isRepo(d) {
		return "", fmt.Errorf("repository %q: %w", name, ErrNotFound)
	}
	return d, nil
}

// isRepo tells whether d is a bare repository.
func isRepo(d string) bool {
	fi, err := os.Stat(filepath.Join(d, "HEAD"))
	return err == nil && fi.Mode().IsRegular()
}

// Create makes the empty hosted repository name, whose default branch is
// main. A trailing ".git" is not part of the name.
func (r *Repos) Create(ctx context.Context, name string) error {
	name = strings.TrimSuffix(name, ".git")
	if err := ValidName(name); err != nil {
		return err
	}
	d := r.dir(name)
	unlock, err := r.lock(ctx, d)
	if err != nil {
		return err
	}
	defer unlock()
	if _, err := os.Lstat(d); err == nil {
		return fmt.Errorf("repository %q: %w", name, ErrExists)
	}
	// Made aside and renamed into place, so that no request ever sees a
	// half-made repository.
	tmp, err := os.MkdirTemp(filepath.Join(r.root, spoolDir), "create-")
	if err != nil {
		return fmt.Errorf("create repository %q: %w", name, err)
	}
	defer os.RemoveAll(tmp)
	bare := filepath.Join(tmp, "repo.git")
	if _, err := (gitCmd{dir: tmp, args: []string{"init", "--quiet", "--bare", "--template=", "--initial-branch=" + DefaultBranch, bare}}).run(ctx); err != nil {
		return fmt.Errorf("create repository %q: %w", name, err)
	}
	if err := os.MkdirAll(filepath.Dir(d), 0o750); err != nil {
		return fmt.Errorf("create repository %q: %w", name, err)
	}
	if err := os.Rename(bare, d); err != nil {
		if errors.Is(err, fs.ErrExist) {
			return fmt.Errorf("repository %q: %w", name, ErrExists)
		}
		return fmt.Errorf("create repository %q: %w", name, err)
	}
	return nil
}

// Delete removes the hosted repository name and everything in it, waiting
// for a push to it to end.
func (r *Repos) Delete(ctx context.Context, name string) error {
	d, err := r.existing(name)
	if err != nil {
		return err
	}
	unlock, err := r.lock(ctx, d)
	if err != nil {
		return err
	}
	defer unlock()
	tmp, err := os.MkdirTemp(filepath.Join(r.root, spoolDir), "delete-")
	if err != nil {
		return fmt.Errorf("delete repository %q: %w", name, err)
	}
	defer os.RemoveAll(tmp)
	// Renamed away first, so that it disappears at once.
	if err := os.Rename(d, filepath.Join(tmp, "repo.git")); err != nil {
		return fmt.Errorf("delete repository %q: %w", name, err)
	}
	// Namespaces left empty go too.
	for p := filepath.Dir(d); p != r.root && strings.HasPrefix(p, r.root); p = filepath.Dir(p) {
		if os.Remove(p) != nil {
			break
		}
	}
	return nil
}

// List returns the hosted repositories, by name.
func (r *Repos) List(ctx context.Context) ([]Repo, error) {
	var out []Repo
	// The folder may be a link to storage replicas share (the compose
	// file's git -> /shared/git): WalkDir does not follow a root that is a
	// link, and would list nothing.
	root, err := filepath.EvalSymlinks(r.root)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("list repositories: %w", err)
	}
	err = filepath.WalkDir(root, func(p string, e fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		if !e.IsDir() || p == root {
			return nil
		}
		if strings.HasPrefix(e.Name(), ".") {
			return fs.SkipDir
		}
		if !strings.HasSuffix(e.Name(), ".git") {
			return nil
		}
		rel, err := filepath.Rel(root, p)
		if err != nil {
			return err
		}
		name := strings.TrimSuffix(filepath.ToSlash(rel), ".git")
		if ValidName(name) == nil && isRepo(p) {
			out = append(out, Repo{Name: name})
		}
		return fs.SkipDir
	})
	if err != nil {
		return nil, fmt.Errorf("list repositories: %w", err)
	}
	slices.SortFunc(out, func(a, b Repo) int { return strings.Compare(a.Name, b.Name) })
	return out, nil
}

// Heads returns the head of every branch of every hosted repository, with
// Old unknown (""). The server gives them to the pipeline layer when it
// starts, which starts an execution for each head it has not built: a push
// whose notification was lost (a crash between git's update and OnPush, or
// an OnPush that failed) is built then.
func (r *Repos) Heads(ctx context.Context) ([]Push, error) {
	repos, err := r.List(ctx)
	if err != nil {
		return nil, err
	}
	var out []Push
	for _, repo := range repos {
		refs, err := readRefs(r.dir(repo.Name))
		if err != nil {
			return nil, fmt.Errorf("heads of %q: %w", repo.Name, err)
		}
		for _, ref := range sortedKeys(refs) {
			if strings.HasPrefix(ref, "refs/heads/") {
				out = append(out, Push{Repo: repo.Name, Ref: ref, New: refs[ref]})
			}
		}
	}
	return out, nil
}

// Resolve returns the commit ref names in the hosted repository repo. ref
// is a full ref (refs/heads/main), a branch or tag name, HEAD, or a full
// commit hash present in the repository.
func (r *Repos) Resolve(ctx context.Context, repo, ref string) (string, error) {
	if err := ctx.Err(); err != nil {
		return "", err
	}
	d, err := r.existing(repo)
	if err != nil {
		return "", err
	}
	c, err := resolve(d, ref)
	if err != nil {
		return "", fmt.Errorf("resolve %q in %q: %w", ref, repo, err)
	}
	return c, nil
}

// lock takes the lock of the repository folder d, for pushes, fetches,
// creation and deletion; unlock releases it.
func (r *Repos) lock(ctx context.Context, d string) (unlock func(), err error) {
	if r.opts.Lock != nil {
		key, err := filepath.Rel(r.root, d)
		if err != nil {
			return nil, fmt.Errorf("lock %s: %w", d, err)
		}
		unlock, err := r.opts.Lock(ctx, filepath.ToSlash(key))
		if err != nil {
			return nil, fmt.Errorf("lock repository %s: %w", key, err)
		}
		return unlock, nil
	}
	r.mu.Lock()
	ch, ok := r.locks[d]
	if !ok {
		ch = make(chan struct{}, 1)
		r.locks[d] = ch
	}
	r.mu.Unlock()
	select {
	case ch <- struct{}{}:
		return func() { <-ch }, nil
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

func sortedKeys(m map[string]string) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}
