// Package api serves scangate's REST API under /api/v1: JSON in and out,
// Bearer tokens (reader for reads, admin for changes), documented in
// openapi.yaml, which is served at /api/v1/openapi.yaml.
package api

import (
	"bytes"
	"context"
	_ "embed"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/scangate/scangate/internal/auth"
	"github.com/scangate/scangate/internal/deploy"
	"github.com/scangate/scangate/internal/events"
	"github.com/scangate/scangate/internal/pipeline"
	"github.com/scangate/scangate/internal/scanner"
	"github.com/scangate/scangate/internal/source"
	"github.com/scangate/scangate/internal/stack"
)

//go:embed openapi.yaml
var openAPI []byte

// OpenAPI returns the API's OpenAPI document, for clients and tests that
// check answers against it.
func OpenAPI() []byte { return bytes.Clone(openAPI) }

// MaxBody is the most bytes a request body may have.
const MaxBody = 1 << 20

// Deps are what the API serves.
type Deps struct {
	Tokens  *auth.Tokens
	Bus     *events.Bus
	Scanner *scanner.Scanner
	// Results reads images and their scans.
	Results *scanner.Results
	// Stacks are the records of what each stack made.
	Stacks    *stack.Records
	Pipelines *pipeline.Service
	// Heads resolves a pipeline's branch head, for a start without a
	// commit.
	Heads func(context.Context, *pipeline.Definition) (string, error)
	// Repos are the hosted git repositories.
	Repos *source.Repos
	// Deploy runs clusters, task definitions, services and tasks.
	Deploy *deploy.Controller
	// Logger receives the audit lines of changes.
	Logger *slog.Logger
}

type server struct{ Deps }

// New returns the API's handler.
func New(d Deps) http.Handler {
	if d.Logger == nil {
		d.Logger = slog.New(slog.DiscardHandler)
	}
	s := &server{d}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /api/v1/openapi.yaml", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/yaml")
		_, _ = w.Write(openAPI)
	})
	reader := func(h http.HandlerFunc) http.Handler { return s.require(auth.RoleReader, h) }
	admin := func(h http.HandlerFunc) http.Handler { return s.require(auth.RoleAdmin, h) }
	mux.Handle("GET /api/v1/whoami", reader(s.whoami))
	mux.Handle("GET /api/v1/images", reader(s.images))
	mux.Handle("GET /api/v1/findings", reader(s.findings))
	mux.Handle("GET /api/v1/events", reader(s.eventLog))
	mux.Handle("POST /api/v1/events/replay", admin(s.replayEvents))
	mux.Handle("GET /api/v1/rules", reader(s.rules))
	mux.Handle("PUT /api/v1/rules/{name}", admin(s.putRule))
	mux.Handle("DELETE /api/v1/rules/{name}", admin(s.deleteRule))
	mux.Handle("GET /api/v1/dead-letters", reader(s.deadLetters))
	mux.Handle("POST /api/v1/dead-letters/replay", admin(s.replayDeadLetters))
	mux.Handle("GET /api/v1/tokens", admin(s.tokens))
	mux.Handle("POST /api/v1/tokens", admin(s.createToken))
	mux.Handle("DELETE /api/v1/tokens/{name}", admin(s.revokeToken))
	if d.Pipelines != nil {
		s.routePipelines(mux)
	}
	if d.Repos != nil {
		s.routeRepos(mux)
	}
	if d.Deploy != nil {
		s.routeDeploy(mux)
	}
	s.routeStacks(mux)
	mux.HandleFunc("/api/v1/", func(w http.ResponseWriter, r *http.Request) {
		writeError(w, http.StatusNotFound, fmt.Errorf("no such endpoint: %s %s", r.Method, r.URL.Path))
	})
	return mux
}

func (s *server) require(role auth.Role, h http.HandlerFunc) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		secret, ok := auth.Secret(r)
		if !ok {
			w.Header().Set("WWW-Authenticate", `Bearer realm="scangate"`)
			writeError(w, http.StatusUnauthorized, errors.New("a token is required: Authorization: Bearer <token>"))
			return
		}
		tok, err := s.Tokens.Verify(r.Context(), secret)
		if err != nil {
			w.Header().Set("WWW-Authenticate", `Bearer realm="scangate"`)
			writeError(w, http.StatusUnauthorized, err)
			return
		}
		if !tok.Role.Allows(role) {
			writeError(w, http.StatusForbidden, fmt.Errorf("this needs the %s role; token %s is %s %s", role, tok.Name, article(string(tok.Role)), tok.Role))
			return
		}
		ctx := context.WithValue(r.Context(), tokenKey{}, tok)
		h(w, r.WithContext(ctx))
	})
}

func (s *server) images(w http.ResponseWriter, r *http.Request) {
	list, err := s.Results.ListImages(r.Context(), r.URL.Query().Get("repository"))
	if err != nil {
		writeError(w, http.StatusInternalServerError, err)
		return
	}
	list = slices.DeleteFunc(list, func(im scanner.Image) bool { return !scopeOf(r).Grants(im.Repository) })
	// Which running tasks use each image.
	out, err := s.Deploy.WithUse(r.Context(), list)
	if err != nil {
		writeError(w, http.StatusInternalServerError, err)
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"images": out})
}

func (s *server) findings(w http.ResponseWriter, r *http.Request) {
	name := stripRegistryHost(r.URL.Query().Get("image"))
	if name == "" {
		writeError(w, http.StatusBadRequest, errors.New("give the image: ?image=REPOSITORY@DIGEST or REPOSITORY:TAG"))
		return
	}
	if !s.granted(w, r, imageRepository(name), "image "+name) {
		return
	}
	rep, err := s.Results.Findings(r.Context(), name)
	switch {
	case errors.Is(err, scanner.ErrNoImage), errors.Is(err, scanner.ErrNotScanned):
		writeError(w, http.StatusNotFound, err)
	case err != nil:
		writeError(w, http.StatusInternalServerError, err)
	default:
		writeJSON(w, http.StatusOK, rep)
	}
}

// stripRegistryHost takes an image name as docker push wrote it
// (127.0.0.1:5000/shop/api:1) to the repository in scangate's registry
// (shop/api:1): a first part with a dot or a colon, or localhost, is a
// registry host, as Docker reads names.
func stripRegistryHost(name string) string {
	if host, rest, ok := strings.Cut(name, "/"); ok && (strings.ContainsAny(host, ".:") || host == "localhost") {
		return rest
	}
	return name
}

func (s *server) eventLog(w http.ResponseWriter, r *http.Request) {
	after, err := intParam(r, "after", 0)
	if err != nil {
		writeError(w, http.StatusBadRequest, err)
		return
	}
	limit, err := intParam(r, "limit", 100)
	if err != nil || limit < 1 || limit > events.MaxLogPage {
		writeError(w, http.StatusBadRequest, fmt.Errorf("limit: a number from 1 to %d", events.MaxLogPage))
		return
	}
	q := events.LogQuery{After: int64(after), Limit: int(limit), Types: r.URL.Query()["type"], Tail: r.URL.Query().Get("tail") == "true"}
	if len(q.Types) > 20 {
		writeError(w, http.StatusBadRequest, errors.New("type: at most 20"))
		return
	}
	if v := r.URL.Query().Get("since"); v != "" {
		if q.Since, err = time.Parse(time.RFC3339, v); err != nil {
			writeError(w, http.StatusBadRequest, fmt.Errorf("since: an RFC 3339 time such as 2026-12-05T10:00:00Z"))
			return
		}
	}
	log, err := s.Bus.QueryLog(r.Context(), q)
	if err != nil {
		writeError(w, http.StatusInternalServerError, err)
		return
	}
	type entry struct {
		Seq   int64           `json:"seq"`
		Event events.Envelope `json:"event"`
	}
	out := make([]entry, 0, len(log))
	for _, l := range log {
		out = append(out, entry{l.Seq, l.Event})
	}
	writeJSON(w, http.StatusOK, map[string]any{"events": out})
}

// ReplayRequest asks for logged events to be routed again.
type ReplayRequest struct {
	Since time.Time `json:"since"`
	Until time.Time `json:"until"`
	Rule  string    `json:"rule,omitempty"`
}

func (s *server) replayEvents(w http.ResponseWriter, r *http.Request) {
	var req ReplayRequest
	if err := decode(r.Body, &req); err != nil {
		writeError(w, http.StatusBadRequest, err)
		return
	}
	if req.Until.IsZero() {
		req.Until = time.Now()
	}
	n, err := s.Bus.ReplayEvents(r.Context(), req.Since, req.Until, req.Rule)
	if errors.Is(err, events.ErrNoRule) {
		writeError(w, http.StatusNotFound, err)
		return
	}
	if err != nil {
		writeError(w, http.StatusInternalServerError, err)
		return
	}
	s.audit(r, "replay events", "since", req.Since, "until", req.Until, "rule", req.Rule, "replayed", n)
	writeJSON(w, http.StatusAccepted, map[string]int{"replayed": n})
}

func (s *server) rules(w http.ResponseWriter, r *http.Request) {
	list, err := s.Bus.Rules(r.Context())
	if err != nil {
		writeError(w, http.StatusInternalServerError, err)
		return
	}
	// Secrets are write-only. A webhook's URL holds one too (chat
	// services put their token in its path or query): admins, who may
	// change the rule, see it whole; readers see scheme and host.
	full := role(r).Allows(auth.RoleAdmin)
	for i := range list {
		for j := range list[i].Targets {
			t := &list[i].Targets[j]
			if t.Secret != "" {
				t.Secret = "********"
			}
			if !full {
				t.Webhook = events.RedactURL(t.Webhook)
			}
		}
	}
	writeJSON(w, http.StatusOK, map[string]any{"rules": orEmpty(list)})
}

func (s *server) putRule(w http.ResponseWriter, r *http.Request) {
	rule, err := events.ParseRule(r.PathValue("name"), io.LimitReader(r.Body, MaxBody+1))
	if err != nil {
		writeError(w, http.StatusBadRequest, err)
		return
	}
	switch err := s.Bus.PutRule(r.Context(), rule); {
	case errors.Is(err, events.ErrInvalidRule):
		writeError(w, http.StatusBadRequest, err)
		return
	case err != nil:
		writeError(w, http.StatusInternalServerError, err)
		return
	}
	var hooks []string
	for _, t := range rule.Targets {
		if t.Webhook != "" {
			hooks = append(hooks, events.RedactURL(t.Webhook))
		}
	}
	s.audit(r, "put rule", "rule", rule.Name, "webhooks", hooks)
	w.WriteHeader(http.StatusNoContent)
}

func (s *server) deleteRule(w http.ResponseWriter, r *http.Request) {
	err := s.Bus.DeleteRule(r.Context(), r.PathValue("name"))
	switch {
	case errors.Is(err, events.ErrNoRule):
		writeError(w, http.StatusNotFound, err)
	case err != nil:
		writeError(w, http.StatusInternalServerError, err)
	default:
		s.audit(r, "delete rule", "rule", r.PathValue("name"))
		w.WriteHeader(http.StatusNoContent)
	}
}

func (s *server) deadLetters(w http.ResponseWriter, r *http.Request) {
	list, err := s.Bus.DeadLetters(r.Context(), r.URL.Query().Get("pending") == "true")
	if err != nil {
		writeError(w, http.StatusInternalServerError, err)
		return
	}
	for i := range list {
		if list[i].Target.Secret != "" {
			list[i].Target.Secret = "********"
		}
	}
	writeJSON(w, http.StatusOK, map[string]any{"deadLetters": orEmpty(list)})
}

func (s *server) replayDeadLetters(w http.ResponseWriter, r *http.Request) {
	var req struct {
		IDs []int64 `json:"ids"`
	}
	if err := decode(r.Body, &req); err != nil {
		writeError(w, http.StatusBadRequest, err)
		return
	}
	n, refused, err := s.Bus.ReplayDeadLetters(r.Context(), req.IDs)
	if err != nil {
		writeError(w, http.StatusInternalServerError, err)
		return
	}
	s.audit(r, "replay dead letters", "ids", req.IDs, "replayed", n, "refused", len(refused))
	writeJSON(w, http.StatusAccepted, map[string]any{"replayed": n, "refused": orEmpty(refused)})
}

func (s *server) tokens(w http.ResponseWriter, r *http.Request) {
	list, err := s.Tokens.List(r.Context())
	if err != nil {
		writeError(w, http.StatusInternalServerError, err)
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"tokens": orEmpty(list)})
}

func (s *server) createToken(w http.ResponseWriter, r *http.Request) {
	var req struct {
		Name      string    `json:"name"`
		Role      string    `json:"role"`
		ExpiresAt time.Time `json:"expiresAt"` // zero: the token does not expire
		// Repositories limits the token to these patterns; empty is all.
		Repositories auth.Scope `json:"repositories"`
	}
	if err := decode(r.Body, &req); err != nil {
		writeError(w, http.StatusBadRequest, err)
		return
	}
	role, err := auth.ParseRole(req.Role)
	if err != nil {
		writeError(w, http.StatusBadRequest, err)
		return
	}
	secret, tok, err := s.Tokens.CreateToken(r.Context(), auth.Spec{Name: req.Name, Role: role, Expires: req.ExpiresAt,
		Repositories: req.Repositories})
	switch {
	case errors.Is(err, auth.ErrExists):
		writeError(w, http.StatusConflict, err)
	case err != nil:
		writeError(w, http.StatusBadRequest, err)
	default:
		s.audit(r, "create token", "name", tok.Name, "role", tok.Role, "repositories", tok.Repositories.String()) // never the secret
		writeJSON(w, http.StatusCreated, map[string]any{"token": tok, "secret": secret})
	}
}

func (s *server) revokeToken(w http.ResponseWriter, r *http.Request) {
	if err := s.Tokens.Revoke(r.Context(), r.PathValue("name")); err != nil {
		writeError(w, http.StatusNotFound, err)
		return
	}
	s.audit(r, "revoke token", "name", r.PathValue("name"))
	w.WriteHeader(http.StatusNoContent)
}

type tokenKey struct{}

// token is the token a request was let in with.
func token(r *http.Request) auth.Token {
	t, _ := r.Context().Value(tokenKey{}).(auth.Token)
	return t
}

// role is the role of the token a request was let in with.
func role(r *http.Request) auth.Role { return token(r).Role }

// tokenName is the name of the token a request was let in with.
func tokenName(r *http.Request) string { return token(r).Name }

// article is "an" before a vowel, else "a".
func article(word string) string {
	if word != "" && strings.ContainsRune("aeiou", rune(word[0])) {
		return "an"
	}
	return "a"
}

// whoami answers which token the request carries: its name, role and
// expiry, never its secret. scangate login checks a token with it.
func (s *server) whoami(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, http.StatusOK, token(r))
}

// decode reads one JSON object of at most MaxBody bytes into v, refusing
// unknown fields and trailing data.
func decode(body io.Reader, v any) error {
	data, err := io.ReadAll(io.LimitReader(body, MaxBody+1))
	if err != nil {
		return fmt.Errorf("read body: %w", err)
	}
	if len(data) > MaxBody {
		return fmt.Errorf("body is over %d bytes", MaxBody)
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return fmt.Errorf("body: %w", err)
	}
	// More() misses a stray closing bracket; only EOF means nothing follows.
	if err := dec.Decode(&struct{}{}); !errors.Is(err, io.EOF) {
		return errors.New("body: more than one JSON value")
	}
	return nil
}

func intParam(r *http.Request, name string, def int64) (int64, error) {
	s := r.URL.Query().Get(name)
	if s == "" {
		return def, nil
	}
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil || n < 0 {
		return 0, fmt.Errorf("%s: %q is not a number", name, s)
	}
	return n, nil
}

func orEmpty[T any](s []T) []T {
	if s == nil {
		return []T{}
	}
	return s
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	_ = enc.Encode(v)
}

func writeError(w http.ResponseWriter, status int, err error) {
	writeJSON(w, status, map[string]string{"error": err.Error()})
}
