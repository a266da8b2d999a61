package api

import (
	"context"
	"fmt"
	"net/http"
	"strings"

	"github.com/distribution/reference"

	"github.com/scangate/scangate/internal/auth"
	"github.com/scangate/scangate/internal/pipeline"
	"github.com/scangate/scangate/internal/taskdef"
)

// A token's repository scope (auth.Scope) applies to the API where a
// request names a repository or image: the images, findings, hosted
// repositories, pipelines and executions a scoped token lists are those
// of its repositories, and one outside them is refused (403), its approval
// included, as is a task definition that runs an image of another. A
// pipeline's repository is its build's image repository.

// scopeOf is the repository scope of the token a request was let in with.
func scopeOf(r *http.Request) auth.Scope { return token(r).Repositories }

// granted answers 403, audit-logged, and returns false when the request's
// token is not granted repository; what names the object refused.
func (s *server) granted(w http.ResponseWriter, r *http.Request, repository, what string) bool {
	sc := scopeOf(r)
	if sc.Grants(repository) {
		return true
	}
	s.Logger.Warn("audit: API request refused", "token", tokenName(r), "method", r.Method, "path", r.URL.Path,
		"repository", repository, "reason", "not in the token's repositories")
	writeError(w, http.StatusForbidden, fmt.Errorf("token %s is not granted repository %s (%s; its repositories: %s)", tokenName(r), repository, what, sc))
	return false
}

// imageRepository is the repository of REPOSITORY@DIGEST or
// REPOSITORY:TAG (a registry host in front is kept: it is not granted).
func imageRepository(name string) string {
	if i := strings.Index(name, "@"); i >= 0 {
		return name[:i]
	}
	if i := strings.LastIndex(name, ":"); i > strings.LastIndex(name, "/") {
		return name[:i]
	}
	return name
}

// pipelineRepos caches the build repositories of pipeline versions for
// one request.
type pipelineRepos struct {
	s    *server
	seen map[string]string
}

func (s *server) pipelineRepos() *pipelineRepos {
	return &pipelineRepos{s: s, seen: map[string]string{}}
}

// of returns the image repository of pipeline name at version v (0: the
// latest).
func (p *pipelineRepos) of(ctx context.Context, name string, v int) (string, error) {
	key := fmt.Sprintf("%s@%d", name, v)
	if repo, ok := p.seen[key]; ok {
		return repo, nil
	}
	d, err := p.s.Pipelines.Get(ctx, name, v)
	if err != nil {
		return "", err
	}
	p.seen[key] = d.Build.Repository
	return d.Build.Repository, nil
}

// executionGranted answers 403 or an error, and returns false, when the
// request's token is not granted the repository of execution id's
// pipeline.
func (s *server) executionGranted(w http.ResponseWriter, r *http.Request, id string) bool {
	if scopeOf(r).All() {
		return true
	}
	ex, err := s.Pipelines.Execution(r.Context(), id)
	if err != nil {
		writeError(w, pipelineStatus(err), err)
		return false
	}
	repo, err := s.pipelineRepos().of(r.Context(), ex.Pipeline, ex.Version)
	if err != nil {
		writeError(w, pipelineStatus(err), err)
		return false
	}
	return s.granted(w, r, repo, "execution "+id+" of pipeline "+ex.Pipeline)
}

// grantedExecutions keeps the executions the request's token may see.
func (s *server) grantedExecutions(r *http.Request, exs []*pipeline.Execution) ([]*pipeline.Execution, error) {
	sc := scopeOf(r)
	if sc.All() {
		return exs, nil
	}
	repos := s.pipelineRepos()
	var out []*pipeline.Execution
	for _, ex := range exs {
		repo, err := repos.of(r.Context(), ex.Pipeline, ex.Version)
		if err != nil {
			return nil, err
		}
		if sc.Grants(repo) {
			out = append(out, ex)
		}
	}
	return out, nil
}

// taskDefinitionGranted answers 403, and returns false, when def runs an
// image of a repository the request's token is not granted. An image that
// is not a reference is left to the registration, which refuses it.
func (s *server) taskDefinitionGranted(w http.ResponseWriter, r *http.Request, def *taskdef.Definition) bool {
	if scopeOf(r).All() {
		return true
	}
	for _, c := range def.ContainerDefinitions {
		named, err := reference.ParseNormalizedNamed(c.Image)
		if err != nil {
			continue
		}
		if !s.granted(w, r, reference.Path(named), "container "+c.Name+"'s image "+c.Image) {
			return false
		}
	}
	return true
}
