package source

import (
	"context"
	"errors"
	"fmt"
	"io"
)

// Archive writes a tar of the tree of commit, a full commit hash, in the
// hosted repository repo: the build context. The tree's .gitattributes
// apply (export-ignore leaves files out).
func (r *Repos) Archive(ctx context.Context, repo, commit string, w io.Writer) error {
	d, err := r.existing(repo)
	if err != nil {
		return err
	}
	if err := archive(ctx, d, commit, w); err != nil {
		return fmt.Errorf("archive %s of %q: %w", commit, repo, err)
	}
	return nil
}

// archive writes the tar of commit in the bare repository d.
func archive(ctx context.Context, d, commit string, w io.Writer) error {
	if !isCommitHash(commit) {
		return fmt.Errorf("commit %q: want a full hash: %w", commit, ErrInvalid)
	}
	if _, err := resolve(d, commit); err != nil {
		if errors.Is(err, ErrInvalid) {
			return fmt.Errorf("not a commit: %w", err)
		}
		return err
	}
	_, err := (gitCmd{dir: d, args: []string{"archive", "--format=tar", commit}, stdout: w}).run(ctx)
	return err
}
