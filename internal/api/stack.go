package api

import (
	"errors"
	"net/http"

	"github.com/scangate/scangate/internal/auth"
	"github.com/scangate/scangate/internal/pipeline"
	"github.com/scangate/scangate/internal/source"
	"github.com/scangate/scangate/internal/stack"
)

// routeStacks serves the records of `scangate up` (what each stack made)
// and the deletes `scangate down` needs beside the other routes'. All are
// admin's: a record may hold digests of the secrets in a stack file.
func (s *server) routeStacks(mux *http.ServeMux) {
	admin := func(h http.HandlerFunc) http.Handler { return s.require(auth.RoleAdmin, h) }
	mux.Handle("GET /api/v1/stacks/{name}", admin(s.getStack))
	mux.Handle("PUT /api/v1/stacks/{name}", admin(s.putStack))
	mux.Handle("DELETE /api/v1/stacks/{name}", admin(s.deleteStack))
	if s.Repos != nil {
		mux.Handle("DELETE /api/v1/repositories/{name}", admin(s.deleteRepo))
	}
	if s.Pipelines != nil {
		mux.Handle("DELETE /api/v1/pipelines/{name}", admin(s.deletePipeline))
	}
}

func (s *server) getStack(w http.ResponseWriter, r *http.Request) {
	rec, err := s.Stacks.Load(r.Context(), r.PathValue("name"))
	switch {
	case errors.Is(err, stack.ErrNoStack):
		writeError(w, http.StatusNotFound, err)
	case err != nil:
		writeError(w, http.StatusInternalServerError, err)
	default:
		writeJSON(w, http.StatusOK, rec)
	}
}

func (s *server) putStack(w http.ResponseWriter, r *http.Request) {
	var rec stack.Record
	// decode bounds the body to MaxBody, which is stack.MaxRecordSize.
	if err := decode(r.Body, &rec); err != nil {
		writeError(w, http.StatusBadRequest, err)
		return
	}
	if rec.Name != r.PathValue("name") {
		writeError(w, http.StatusBadRequest, errors.New("the record's name is not the one in the path"))
		return
	}
	if err := s.Stacks.Save(r.Context(), &rec); err != nil {
		if errors.Is(err, stack.ErrInvalid) {
			writeError(w, http.StatusBadRequest, err)
			return
		}
		writeError(w, http.StatusInternalServerError, err)
		return
	}
	s.audit(r, "stack record saved", "stack", rec.Name, "resources", len(rec.Resources))
	writeJSON(w, http.StatusOK, &rec)
}

func (s *server) deleteStack(w http.ResponseWriter, r *http.Request) {
	err := s.Stacks.Delete(r.Context(), r.PathValue("name"))
	switch {
	case errors.Is(err, stack.ErrNoStack):
		writeError(w, http.StatusNotFound, err)
	case err != nil:
		writeError(w, http.StatusInternalServerError, err)
	default:
		s.audit(r, "stack record deleted", "stack", r.PathValue("name"))
		w.WriteHeader(http.StatusNoContent)
	}
}

func (s *server) deleteRepo(w http.ResponseWriter, r *http.Request) {
	r.Body = http.MaxBytesReader(w, r.Body, MaxBody)
	err := s.Repos.Delete(r.Context(), r.PathValue("name"))
	switch {
	case errors.Is(err, source.ErrNotFound):
		writeError(w, http.StatusNotFound, err)
	case errors.Is(err, source.ErrInvalid):
		writeError(w, http.StatusBadRequest, err)
	case err != nil:
		writeError(w, http.StatusInternalServerError, err)
	default:
		s.audit(r, "repository deleted", "repository", r.PathValue("name"))
		w.WriteHeader(http.StatusNoContent)
	}
}

// deletePipeline removes a pipeline; ?purge=true also its executions
// (artifacts and build logs with them).
func (s *server) deletePipeline(w http.ResponseWriter, r *http.Request) {
	r.Body = http.MaxBytesReader(w, r.Body, MaxBody)
	purge := r.URL.Query().Get("purge") == "true"
	err := s.Pipelines.Delete(r.Context(), r.PathValue("name"), purge)
	switch {
	case errors.Is(err, pipeline.ErrBusy):
		writeError(w, http.StatusConflict, err)
	case err != nil:
		writeError(w, pipelineStatus(err), err)
	default:
		s.audit(r, "pipeline deleted", "pipeline", r.PathValue("name"), "purge", purge)
		w.WriteHeader(http.StatusNoContent)
	}
}
