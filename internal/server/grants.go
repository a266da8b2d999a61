package server

import (
	"context"
	"fmt"

	"github.com/scangate/scangate/internal/lazyregexp"
	"github.com/scangate/scangate/internal/pipeline"
	"github.com/scangate/scangate/internal/registry"
)

// commitTag is a tag a pipeline's build gives an image: its commit's SHA-1
// or SHA-256.
var commitTag = lazyregexp.New(`^[0-9a-f]{40}([0-9a-f]{24})?$`)

// pipelineTags keeps the pipelines' tags immutable (registry.TagGuard): in
// a repository a pipeline builds into, the commit tags its builds push and
// the tag its approvals promote ("latest") are moved by the pipeline only
// — its builder's pushes and the promotion, which tags in process — never
// by a docker push or a delete, an admin's included (an admin may still
// delete the image by digest). A commit tag is kept before any build
// pushes it, so that no one can put an image there first.
type pipelineTags struct{ pipes *pipeline.Service }

func (g pipelineTags) MayMoveTag(ctx context.Context, who registry.Puller, repository, tag string) error {
	if who.Process && who.Token == builderToken {
		return nil
	}
	defs, err := g.pipes.List(ctx)
	if err != nil {
		return fmt.Errorf("%s:%s: the pipelines' tags could not be read (%v); try again", repository, tag, err)
	}
	for _, d := range defs {
		if d.Build.Repository != repository {
			continue
		}
		promote := d.Approval.Promote
		if promote == "" {
			promote = pipeline.DefaultPromote
		}
		switch {
		case tag == promote:
			return fmt.Errorf("tag %s:%s is immutable: pipeline %s moves it to the images it approves; push another tag", repository, tag, d.Name)
		case commitTag.MatchString(tag):
			return fmt.Errorf("tag %s:%s is immutable: pipeline %s tags its builds with their commits; push another tag", repository, tag, d.Name)
		}
	}
	return nil
}

// protectedBranches returns the branches of the hosted repository repo
// that pipelines build: they refuse non-admin force pushes and deletions
// (source.Options.Protected).
func (s *sources) protectedBranches(ctx context.Context, repo string) ([]string, error) {
	s.mu.Lock()
	pipes := s.pipes
	s.mu.Unlock()
	if pipes == nil {
		return nil, nil
	}
	defs, err := pipes.List(ctx)
	if err != nil {
		return nil, err
	}
	var out []string
	for _, d := range defs {
		if d.Source.Repository == repo && d.Source.Branch != "" {
			out = append(out, d.Source.Branch)
		}
	}
	return out, nil
}
