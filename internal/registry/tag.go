package registry

import (
	"context"
	"errors"
	"fmt"

	"github.com/distribution/distribution/v3"
	"github.com/opencontainers/go-digest"

	"github.com/scangate/scangate/internal/lazyregexp"
)

// Tag points repository:tag at the stored manifest dgst, as a push of the
// manifest by that tag would, and tells Hooks. The pipeline promotes an
// approved image this way: it moves a tag without pulling and pushing the
// manifest through HTTP. When Hooks refuse it, the tag goes back to where
// it was.
func (r *Registry) Tag(ctx context.Context, repository, dgst, tag string) error {
	d, err := digest.Parse(dgst)
	if err != nil {
		return fmt.Errorf("tag %s:%s: %w", repository, tag, err)
	}
	if isDigest(tag) || !tagRe.MatchString(tag) {
		return fmt.Errorf("tag %s:%s: not a tag", repository, tag)
	}
	unlock, err := r.lockTag(ctx, repository+":"+tag)
	if err != nil {
		return err
	}
	defer unlock()
	repo, err := r.repository(ctx, repository)
	if err != nil {
		return fmt.Errorf("tag %s:%s: %w", repository, tag, err)
	}
	ms, err := repo.Manifests(ctx)
	if err != nil {
		return fmt.Errorf("tag %s:%s: %w", repository, tag, err)
	}
	m, err := ms.Get(ctx, d)
	if err != nil {
		return fmt.Errorf("tag %s:%s: manifest %s: %w", repository, tag, dgst, err)
	}
	mediaType, _, err := m.Payload()
	if err != nil {
		return fmt.Errorf("tag %s:%s: %w", repository, tag, err)
	}
	before := pushState{repository: repository, digest: d, existed: true, tag: tag}
	tags := repo.Tags(ctx)
	switch desc, err := tags.Get(ctx, tag); {
	case err == nil:
		before.tagged = desc.Digest
	case !errors.As(err, new(distribution.ErrTagUnknown)):
		return fmt.Errorf("tag %s:%s: %w", repository, tag, err)
	}
	if before.tagged == d {
		return nil
	}
	if err := tags.Tag(ctx, tag, distribution.Descriptor{Digest: d, MediaType: mediaType}); err != nil {
		return fmt.Errorf("tag %s:%s: %w", repository, tag, err)
	}
	if r.cfg.Hooks == nil {
		return nil
	}
	if err := r.cfg.Hooks.ManifestPushed(ctx, Manifest{Repository: repository, Digest: dgst, MediaType: mediaType, Tag: tag}); err != nil {
		undo := r.undo(context.WithoutCancel(ctx), before)
		return fmt.Errorf("tag %s:%s: record it: %w (undo: %s)", repository, tag, err, errString(undo))
	}
	return nil
}

// tagRe is the distribution specification's tag grammar.
var tagRe = lazyregexp.New(`^[a-zA-Z0-9_][a-zA-Z0-9._-]{0,127}$`)
