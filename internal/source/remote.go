package source

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
)

// remoteProtocols are the transports git may use for an external
// repository. file:// is not one (a pipeline definition could otherwise
// read the server's own files), nor is ext:: (it runs commands).
const remoteProtocols = "http:https:ssh:git"

// remoteCache is the folder of the cache of the external repository raw.
func (r *Repos) remoteCache(raw string) string {
	sum := sha256.Sum256([]byte(RepoKey(raw)))
	return filepath.Join(r.root, remoteDir, hex.EncodeToString(sum[:16])+".git")
}

// remote is how git commands reach the external repository raw: its URL is
// configured through the environment, as remote "src", so that it is not
// on a command line other users can read.
func remote(raw string) (config []kv, env []string) {
	return []kv{{"remote.src.url", raw}, {"protocol.version", "2"}},
		[]string{"GIT_ALLOW_PROTOCOL=" + remoteProtocols, "GIT_SSH_COMMAND=" + sshCommand()}
}

// sshCommand never asks a question: a host key is accepted the first time
// and checked afterwards.
func sshCommand() string {
	if c := os.Getenv("GIT_SSH_COMMAND"); c != "" {
		return c
	}
	return "ssh -o BatchMode=yes -o StrictHostKeyChecking=accept-new"
}

// branchRef turns main or refs/heads/main into refs/heads/main.
func branchRef(branch string) (string, error) {
	ref := branch
	if !strings.HasPrefix(ref, "refs/") {
		ref = "refs/heads/" + branch
	}
	if !strings.HasPrefix(ref, "refs/heads/") || ref == "refs/heads/" {
		return "", fmt.Errorf("branch %q: %w", branch, ErrInvalid)
	}
	return ref, validRef(ref)
}

// Fetch brings branch of the external repository at url into its local
// cache and returns the commit it names. The URL may hold credentials;
// they are neither logged nor returned in errors.
func (r *Repos) Fetch(ctx context.Context, url, branch string) (commit string, err error) {
	if err := CheckURL(url); err != nil {
		return "", err
	}
	ref, err := branchRef(branch)
	if err != nil {
		return "", err
	}
	d := r.remoteCache(url)
	unlock, err := r.lock(ctx, d)
	if err != nil {
		return "", err
	}
	defer unlock()
	if err := r.initCache(ctx, d); err != nil {
		return "", err
	}
	pin, err := r.reach(ctx, url)
	if err != nil {
		return "", fmt.Errorf("fetch %s of %s: %w", ref, Redact(url), err)
	}
	config, env := remote(url)
	cmd := gitCmd{dir: d, config: append(config, pin.config...), env: append(env, pin.env...), redact: redactor(url),
		args: []string{"fetch", "--quiet", "--no-tags", "--no-write-fetch-head", "src", "+" + ref + ":" + ref}}
	if _, err := cmd.run(ctx); err != nil {
		return "", fmt.Errorf("fetch %s of %s: %w", ref, Redact(url), err)
	}
	commit, err = resolve(d, ref)
	if err != nil {
		return "", fmt.Errorf("fetch %s of %s: %w", ref, Redact(url), err)
	}
	return commit, nil
}

// initCache makes the bare repository d if it does not exist.
func (r *Repos) initCache(ctx context.Context, d string) error {
	if isRepo(d) {
		return nil
	}
	tmp, err := os.MkdirTemp(r.spoolDir(), "remote-")
	if err != nil {
		return fmt.Errorf("make a repository cache: %w", err)
	}
	defer os.RemoveAll(tmp)
	bare := filepath.Join(tmp, "repo.git")
	if _, err := (gitCmd{dir: tmp, args: []string{"init", "--quiet", "--bare", "--template=", bare}}).run(ctx); err != nil {
		return fmt.Errorf("make a repository cache: %w", err)
	}
	if err := os.Rename(bare, d); err != nil && !isRepo(d) {
		return fmt.Errorf("make a repository cache: %w", err)
	}
	return nil
}

// lsRemote returns the commit branch names in the external repository at
// url, ZeroHash if there is no such branch.
func (r *Repos) lsRemote(ctx context.Context, url, branch string) (string, error) {
	ref, err := branchRef(branch)
	if err != nil {
		return "", err
	}
	d := r.remoteCache(url)
	if err := r.initCache(ctx, d); err != nil {
		return "", err
	}
	pin, err := r.reach(ctx, url)
	if err != nil {
		return "", fmt.Errorf("ls-remote %s of %s: %w", ref, Redact(url), err)
	}
	config, env := remote(url)
	out, err := (gitCmd{dir: d, config: append(config, pin.config...), env: append(env, pin.env...), redact: redactor(url),
		args: []string{"ls-remote", "--quiet", "src", ref}}).run(ctx)
	if err != nil {
		return "", fmt.Errorf("ls-remote %s of %s: %w", ref, Redact(url), err)
	}
	for line := range strings.SplitSeq(string(out), "\n") {
		hash, name, ok := strings.Cut(strings.TrimSpace(line), "\t")
		if ok && name == ref && isCommitHash(hash) {
			return hash, nil
		}
	}
	return ZeroHash, nil
}

// ArchiveRemote is Archive for an external repository, from the commits
// Fetch brought into its cache.
func (r *Repos) ArchiveRemote(ctx context.Context, url, commit string, w io.Writer) error {
	if err := CheckURL(url); err != nil {
		return err
	}
	d := r.remoteCache(url)
	if !isRepo(d) {
		return fmt.Errorf("archive %s of %s: not fetched: %w", commit, Redact(url), ErrNotFound)
	}
	if err := archive(ctx, d, commit, w); err != nil {
		return fmt.Errorf("archive %s of %s: %w", commit, Redact(url), err)
	}
	return nil
}
