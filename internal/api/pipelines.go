package api

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"slices"

	"github.com/scangate/scangate/internal/auth"
	"github.com/scangate/scangate/internal/egress"
	"github.com/scangate/scangate/internal/pipeline"
	"github.com/scangate/scangate/internal/source"
)

func (s *server) routePipelines(mux *http.ServeMux) {
	reader := func(h http.HandlerFunc) http.Handler { return s.require(auth.RoleReader, h) }
	admin := func(h http.HandlerFunc) http.Handler { return s.require(auth.RoleAdmin, h) }
	mux.Handle("GET /api/v1/pipelines", reader(s.pipelines))
	mux.Handle("GET /api/v1/pipelines/{name}", reader(s.getPipeline))
	mux.Handle("PUT /api/v1/pipelines/{name}", admin(s.putPipeline))
	mux.Handle("POST /api/v1/pipelines/{name}/executions", admin(s.startExecution))
	mux.Handle("GET /api/v1/executions", reader(s.executions))
	mux.Handle("GET /api/v1/executions/{id}", reader(s.execution))
	mux.Handle("GET /api/v1/executions/{id}/artifact", reader(s.artifact))
	mux.Handle("GET /api/v1/executions/{id}/log", reader(s.buildLog))
	mux.Handle("POST /api/v1/executions/{id}/stop", admin(s.stopExecution))
	approver := func(h http.HandlerFunc) http.Handler { return s.require(auth.RoleApprover, h) }
	mux.Handle("GET /api/v1/executions/{id}/approval", approver(s.approval))
	mux.Handle("POST /api/v1/executions/{id}/approval", approver(s.review))
}

// pipelineStatus maps the pipeline service's errors to HTTP statuses.
func pipelineStatus(err error) int {
	switch {
	case errors.Is(err, pipeline.ErrNoPipeline), errors.Is(err, pipeline.ErrNoExecution), errors.Is(err, pipeline.ErrNoApproval):
		return http.StatusNotFound
	case errors.Is(err, pipeline.ErrDecided), errors.Is(err, pipeline.ErrNotRunning), errors.Is(err, pipeline.ErrPolicyDecides),
		errors.Is(err, pipeline.ErrNoOverride):
		return http.StatusConflict
	case errors.Is(err, pipeline.ErrBadToken), errors.Is(err, pipeline.ErrTwoPerson):
		return http.StatusForbidden
	case errors.Is(err, pipeline.ErrBadAnswer), errors.Is(err, egress.ErrRefused):
		return http.StatusBadRequest
	}
	return http.StatusInternalServerError
}

func (s *server) pipelines(w http.ResponseWriter, r *http.Request) {
	defs, err := s.Pipelines.List(r.Context())
	if err != nil {
		writeError(w, pipelineStatus(err), err)
		return
	}
	defs = slices.DeleteFunc(defs, func(d *pipeline.Definition) bool { return !scopeOf(r).Grants(d.Build.Repository) })
	for i, d := range defs {
		defs[i] = s.showDefinition(r, d)
	}
	writeJSON(w, http.StatusOK, map[string]any{"pipelines": orEmpty(defs)})
}

func (s *server) getPipeline(w http.ResponseWriter, r *http.Request) {
	d, err := s.Pipelines.Get(r.Context(), r.PathValue("name"), 0)
	if err != nil {
		writeError(w, pipelineStatus(err), err)
		return
	}
	if !s.granted(w, r, d.Build.Repository, "pipeline "+d.Name) {
		return
	}
	writeJSON(w, http.StatusOK, s.showDefinition(r, d))
}

// showDefinition is d as the request's token may see it: never its
// secrets, and for those who may not change it, no build arg values.
func (s *server) showDefinition(r *http.Request, d *pipeline.Definition) *pipeline.Definition {
	if role(r).Allows(auth.RoleAdmin) {
		return d.Redacted()
	}
	return d.ForReaders()
}

func (s *server) putPipeline(w http.ResponseWriter, r *http.Request) {
	data, err := io.ReadAll(io.LimitReader(r.Body, pipeline.MaxDefinitionSize+1))
	if err != nil {
		writeError(w, http.StatusBadRequest, err)
		return
	}
	d, err := pipeline.ParseDefinition(data)
	if err != nil {
		writeError(w, http.StatusBadRequest, err)
		return
	}
	if d.Name != r.PathValue("name") {
		writeError(w, http.StatusBadRequest, errors.New("the definition's name is not the one in the path"))
		return
	}
	warnings, err := s.checkSource(r.Context(), d)
	if err != nil {
		writeError(w, http.StatusBadRequest, err)
		return
	}
	v, err := s.Pipelines.Put(r.Context(), d)
	if err != nil {
		writeError(w, pipelineStatus(err), err)
		return
	}
	s.audit(r, "put pipeline", "pipeline", d.Name, "version", v)
	writeJSON(w, http.StatusOK, map[string]any{"name": d.Name, "version": v, "warnings": orEmpty(warnings)})
}

// checkSource refuses a hosted repository that does not exist, which
// would otherwise surface only as a failed build, and warns of a branch
// with no commit yet (normal before the first push).
func (s *server) checkSource(ctx context.Context, d *pipeline.Definition) (warnings []string, err error) {
	if d.Source.Repository == "" || s.Repos == nil {
		return nil, nil
	}
	repos, err := s.Repos.List(ctx)
	if err != nil {
		return nil, err
	}
	if !slices.ContainsFunc(repos, func(r source.Repo) bool { return r.Name == d.Source.Repository }) {
		return nil, fmt.Errorf("pipeline %s: source.repository %s is not a repository hosted here: create it first (scangate repo create %s)",
			d.Name, d.Source.Repository, d.Source.Repository)
	}
	if _, err := s.Repos.Resolve(ctx, d.Source.Repository, "refs/heads/"+d.Source.Branch); err != nil {
		warnings = append(warnings, fmt.Sprintf("branch %s of repository %s has no commit yet: the first push to it starts an execution",
			d.Source.Branch, d.Source.Repository))
	}
	return warnings, nil
}

func (s *server) startExecution(w http.ResponseWriter, r *http.Request) {
	var req struct {
		Commit string `json:"commit"`
	}
	if err := decode(r.Body, &req); err != nil {
		writeError(w, http.StatusBadRequest, err)
		return
	}
	name := r.PathValue("name")
	d, err := s.Pipelines.Get(r.Context(), name, 0)
	if err != nil {
		writeError(w, pipelineStatus(err), err)
		return
	}
	if req.Commit == "" && s.Heads != nil {
		if req.Commit, err = s.Heads(r.Context(), d); err != nil {
			writeError(w, http.StatusBadRequest, err)
			return
		}
	}
	id, err := s.Pipelines.Start(r.Context(), name, pipeline.Trigger{Kind: "manual", Commit: req.Commit, Ref: "refs/heads/" + d.Source.Branch, By: "token:" + tokenName(r)})
	if err != nil {
		status := pipelineStatus(err)
		if status == http.StatusInternalServerError {
			status = http.StatusBadRequest // a commit that is not one
		}
		writeError(w, status, err)
		return
	}
	s.audit(r, "start execution", "pipeline", name, "execution", id, "commit", req.Commit)
	writeJSON(w, http.StatusCreated, map[string]string{"id": id})
}

func (s *server) executions(w http.ResponseWriter, r *http.Request) {
	limit, err := intParam(r, "limit", 50)
	if err != nil || limit < 1 || limit > 1000 {
		writeError(w, http.StatusBadRequest, errors.New("limit: a number from 1 to 1000"))
		return
	}
	exs, err := s.Pipelines.Executions(r.Context(), r.URL.Query().Get("pipeline"), int(limit))
	if err == nil {
		exs, err = s.grantedExecutions(r, exs)
	}
	if err != nil {
		writeError(w, pipelineStatus(err), err)
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"executions": orEmpty(exs)})
}

func (s *server) execution(w http.ResponseWriter, r *http.Request) {
	ex, err := s.Pipelines.Execution(r.Context(), r.PathValue("id"))
	if err != nil {
		writeError(w, pipelineStatus(err), err)
		return
	}
	if !s.executionGranted(w, r, ex.ID) {
		return
	}
	writeJSON(w, http.StatusOK, ex)
}

func (s *server) artifact(w http.ResponseWriter, r *http.Request) {
	if !s.executionGranted(w, r, r.PathValue("id")) {
		return
	}
	doc, err := s.Pipelines.Artifact(r.Context(), r.PathValue("id"))
	if err != nil {
		status := pipelineStatus(err)
		if status == http.StatusInternalServerError {
			status = http.StatusNotFound // not built yet
		}
		writeError(w, status, err)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Content-Disposition", `attachment; filename="imagedefinitions.json"`)
	_, _ = w.Write(doc)
}

// buildLog answers the build log, from ?offset= on: a client that follows
// a build asks again from where it stopped.
func (s *server) buildLog(w http.ResponseWriter, r *http.Request) {
	if !s.executionGranted(w, r, r.PathValue("id")) {
		return
	}
	offset, err := intParam(r, "offset", 0)
	if err != nil {
		writeError(w, http.StatusBadRequest, err)
		return
	}
	log, err := s.Pipelines.BuildLog(r.Context(), r.PathValue("id"))
	if err != nil {
		writeError(w, pipelineStatus(err), err)
		return
	}
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	if offset > int64(len(log)) {
		offset = int64(len(log))
	}
	_, _ = io.WriteString(w, log[offset:])
}

func (s *server) stopExecution(w http.ResponseWriter, r *http.Request) {
	var req struct {
		Reason string `json:"reason"`
	}
	if err := decode(r.Body, &req); err != nil {
		writeError(w, http.StatusBadRequest, err)
		return
	}
	who := "token:" + tokenName(r)
	reason := "stopped by " + who
	if req.Reason != "" {
		reason += ": " + req.Reason
	}
	if err := s.Pipelines.Stop(r.Context(), r.PathValue("id"), reason); err != nil {
		writeError(w, pipelineStatus(err), err)
		return
	}
	s.audit(r, "stop execution", "execution", r.PathValue("id"), "reason", req.Reason)
	w.WriteHeader(http.StatusNoContent)
}

// approval answers an execution's approval request with its token, for
// those who may answer it (CodePipeline's GetPipelineState gives approvers
// the token the same way).
func (s *server) approval(w http.ResponseWriter, r *http.Request) {
	if !s.executionGranted(w, r, r.PathValue("id")) {
		return
	}
	a, err := s.Pipelines.ApprovalFor(r.Context(), r.PathValue("id"))
	if err != nil {
		writeError(w, pipelineStatus(err), err)
		return
	}
	w.Header().Set("Cache-Control", "no-store")
	writeJSON(w, http.StatusOK, a)
}

// review records a person's answer: approve, reject, or override the
// policy's rejection. The request's token must be presented, as
// CodePipeline's PutApprovalResult requires.
func (s *server) review(w http.ResponseWriter, r *http.Request) {
	var req struct {
		Decision string `json:"decision"`
		Comment  string `json:"comment"`
		Token    string `json:"token"`
		Expires  string `json:"expires"`
	}
	if err := decode(r.Body, &req); err != nil {
		writeError(w, http.StatusBadRequest, err)
		return
	}
	if req.Decision != pipeline.ActionApprove && req.Decision != pipeline.ActionReject && req.Decision != pipeline.ActionOverride {
		writeError(w, http.StatusBadRequest, errors.New(`decision: "approve", "reject" or "override"`))
		return
	}
	if req.Token == "" {
		writeError(w, http.StatusBadRequest, errors.New("token: present the approval request's token (GET this path gives it to approvers)"))
		return
	}
	if !s.executionGranted(w, r, r.PathValue("id")) {
		return
	}
	ans := pipeline.Answer{Action: req.Decision, Token: req.Token, By: "token:" + tokenName(r), Comment: req.Comment}
	if req.Expires != "" {
		t, err := pipeline.ParseExpiry(req.Expires)
		if err != nil {
			writeError(w, http.StatusBadRequest, err)
			return
		}
		ans.Expires = t
	}
	a, err := s.Pipelines.Respond(r.Context(), r.PathValue("id"), ans)
	if err != nil {
		s.Logger.Warn("audit: approval answer refused", "token", tokenName(r), "execution", r.PathValue("id"), "decision", req.Decision, "err", err)
		writeError(w, pipelineStatus(err), err)
		return
	}
	s.audit(r, "approval answered", "execution", r.PathValue("id"), "approval", a.ID, "decision", req.Decision, "status", a.Status, "comment", req.Comment, "expires", req.Expires)
	writeJSON(w, http.StatusOK, a)
}
