package api

import (
	"errors"
	"net/http"
	"slices"

	"github.com/scangate/scangate/internal/auth"
	"github.com/scangate/scangate/internal/source"
)

func (s *server) routeRepos(mux *http.ServeMux) {
	mux.Handle("GET /api/v1/repositories", s.require(auth.RoleReader, s.repos))
	mux.Handle("POST /api/v1/repositories", s.require(auth.RoleAdmin, s.createRepo))
}

func (s *server) repos(w http.ResponseWriter, r *http.Request) {
	list, err := s.Repos.List(r.Context())
	if err != nil {
		writeError(w, http.StatusInternalServerError, err)
		return
	}
	list = slices.DeleteFunc(list, func(repo source.Repo) bool { return !scopeOf(r).Grants(repo.Name) })
	writeJSON(w, http.StatusOK, map[string]any{"repositories": orEmpty(list)})
}

func (s *server) createRepo(w http.ResponseWriter, r *http.Request) {
	var req struct {
		Name string `json:"name"`
	}
	if err := decode(r.Body, &req); err != nil {
		writeError(w, http.StatusBadRequest, err)
		return
	}
	err := s.Repos.Create(r.Context(), req.Name)
	switch {
	case errors.Is(err, source.ErrExists):
		writeError(w, http.StatusConflict, err)
	case errors.Is(err, source.ErrInvalid):
		writeError(w, http.StatusBadRequest, err)
	case err != nil:
		writeError(w, http.StatusInternalServerError, err)
	default:
		s.audit(r, "create repository", "repository", req.Name)
		writeJSON(w, http.StatusCreated, source.Repo{Name: req.Name})
	}
}
