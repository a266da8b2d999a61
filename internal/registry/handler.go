package registry

import (
	"encoding/json"
	"net/http"
	"strings"

	v2 "github.com/distribution/distribution/v3/registry/api/v2"

	"github.com/scangate/scangate/internal/auth"
)

// ServeHTTP serves the registry API at /v2/, checking the request's token
// and telling Hooks of manifest pushes, pulls and deletes.
func (r *Registry) ServeHTTP(w http.ResponseWriter, req *http.Request) {
	if req.URL.Path == TokenPath {
		r.serveToken(w, req)
		return
	}
	g, ok := r.authorize(w, req)
	if !ok {
		return
	}
	who := g.who
	if !r.inScope(w, req, g) {
		return
	}
	if !g.scope.All() && req.Method == http.MethodGet {
		if route, _ := routeOf(req); route == v2.RouteNameCatalog {
			r.serveCatalog(w, req, g)
			return
		}
	}
	if req.Method == http.MethodDelete && r.cfg.RepositoryQuota > 0 {
		if repo, ok := repositoryOf(req.URL.Path); ok {
			defer r.quotas.forget(repo) // a blob may be unlinked
		}
	}
	if repo, id, upload := uploadName(req); upload && r.cfg.RepositoryQuota > 0 {
		qw, finish, ok := r.quota(w, req, repo, id)
		if !ok {
			return
		}
		defer finish()
		w = qw
	}
	name, ref, ok := manifestPath(req.URL.Path)
	if ok && !isDigest(ref) && !r.mayMoveTag(w, req, g, name, ref) {
		return
	}
	if ok && r.cfg.PullGate != nil && (req.Method == http.MethodGet || req.Method == http.MethodHead) {
		gw := r.gatePull(w, req, who, name)
		defer gw.finish()
		w = gw
	}
	if !ok || r.cfg.Hooks == nil {
		r.app.ServeHTTP(w, req)
		return
	}
	if !isDigest(ref) && (req.Method == http.MethodPut || req.Method == http.MethodDelete) {
		// One change to a tag at a time, stored and recorded (Registry.tags).
		unlock, err := r.lockTag(req.Context(), name+":"+ref)
		if err != nil {
			r.logger().Warn("registry: lock a tag", "err", err)
			http.Error(w, "the tag is busy; try again", http.StatusServiceUnavailable)
			return
		}
		defer unlock()
	}
	switch req.Method {
	case http.MethodPut:
		r.putManifest(w, req, name, ref)
	case http.MethodGet:
		rec := &statusWriter{ResponseWriter: w}
		r.app.ServeHTTP(rec, req)
		if g, gated := w.(*gatedWriter); gated && g.replaced {
			return // the gate refused: no pull happened
		}
		if rec.status == http.StatusOK {
			m := Manifest{Repository: name, Digest: w.Header().Get("Docker-Content-Digest"), MediaType: w.Header().Get("Content-Type")}
			if !isDigest(ref) {
				m.Tag = ref
			}
			r.cfg.Hooks.ManifestPulled(req.Context(), m)
		}
	case http.MethodDelete:
		rec := &statusWriter{ResponseWriter: w}
		r.app.ServeHTTP(rec, req)
		if rec.status == http.StatusAccepted {
			m := Manifest{Repository: name, Tag: ref}
			if isDigest(ref) {
				m = Manifest{Repository: name, Digest: ref}
			}
			r.cfg.Hooks.ManifestDeleted(req.Context(), m)
		}
	default:
		r.app.ServeHTTP(w, req)
	}
}

// isDigest tells a manifest reference that is a digest from a tag: a tag
// cannot hold a colon, a digest always does (algorithm:hex).
func isDigest(ref string) bool { return strings.Contains(ref, ":") }

// need is the role a registry request needs.
func need(req *http.Request) auth.Role {
	switch req.Method {
	case http.MethodGet, http.MethodHead:
		return auth.RoleReader
	case http.MethodDelete:
		// Cancelling an upload is part of pushing (clients cancel the
		// uploads they give up on); deleting content is an admin's.
		if isUpload(req.URL.Path) {
			return auth.RolePusher
		}
		return auth.RoleAdmin
	default:
		return auth.RolePusher
	}
}

// isUpload tells whether p is an upload session, /v2/NAME/blobs/uploads/ID.
func isUpload(p string) bool {
	i := strings.LastIndex(p, "/blobs/uploads/")
	return strings.HasPrefix(p, "/v2/") && i > len("/v2") && !strings.Contains(p[i+len("/blobs/uploads/"):], "/")
}

// authorize checks the request's token, answering 401 or 403 itself when
// the request may not go on; it returns who asks (no token: anonymous)
// and the repositories granted.
func (r *Registry) authorize(w http.ResponseWriter, req *http.Request) (grant, bool) {
	want := need(req)
	secret, has := auth.Secret(req)
	if has && r.cfg.AnonymousPull && secret == auth.AnonymousToken {
		has = false // the token endpoint's answer to a client with no credentials
	}
	if !has {
		// /v2/ always asks for credentials: Docker pings it to learn how to
		// authenticate, and would never send a token for a push if the
		// ping had not asked for one.
		base := req.URL.Path == "/v2/" || req.URL.Path == "/v2"
		if r.cfg.AnonymousPull && want == auth.RoleReader && !base {
			return grant{}, true
		}
		r.unauthorized(w, req, "authentication required")
		return grant{}, false
	}
	tok, err := r.cfg.Tokens.Verify(req.Context(), secret)
	if err != nil {
		r.unauthorized(w, req, "invalid token")
		return grant{}, false
	}
	if !tok.Role.Allows(want) {
		deny(w, http.StatusForbidden, "DENIED", "token "+tok.Name+" ("+string(tok.Role)+") may not "+req.Method+" here; it needs the "+string(want)+" role")
		return grant{}, false
	}
	return grant{who: Puller{Token: tok.Name, Role: tok.Role, Process: tok.Process}, scope: tok.Repositories}, true
}

// gatedWriter asks the pull gate about a manifest as its status is written:
// only then has the registry resolved a tag to the digest it serves. A
// refusal replaces the response with 403 DENIED and the gate's reason.
type gatedWriter struct {
	*hookWriter
	refusal error
}

func (r *Registry) gatePull(w http.ResponseWriter, req *http.Request, who Puller, name string) *gatedWriter {
	gw := &gatedWriter{hookWriter: &hookWriter{ResponseWriter: w}}
	gw.onStatus = func(status int) int {
		if status != http.StatusOK {
			return status
		}
		gw.refusal = r.cfg.PullGate.AllowPull(req.Context(), who, name, w.Header().Get("Docker-Content-Digest"))
		if gw.refusal == nil {
			return status
		}
		w.Header().Set("Content-Type", "application/json")
		return http.StatusForbidden
	}
	return gw
}

// finish writes the refusal's body, if the gate refused.
func (g *gatedWriter) finish() {
	if g.replaced && g.refusal != nil {
		_ = json.NewEncoder(g.ResponseWriter).Encode(errorBody("DENIED", g.refusal.Error()))
	}
}

// deny writes an error in the distribution specification's shape.
func deny(w http.ResponseWriter, status int, code, msg string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(errorBody(code, msg))
}

// errorBody is an error response body in the distribution specification's
// shape.
func errorBody(code, msg string) any {
	return map[string]any{"errors": []map[string]string{{"code": code, "message": msg}}}
}

// manifestPath splits /v2/NAME/manifests/REF.
func manifestPath(p string) (name, ref string, ok bool) {
	rest, ok := strings.CutPrefix(p, "/v2/")
	if !ok {
		return "", "", false
	}
	i := strings.LastIndex(rest, "/manifests/")
	if i <= 0 {
		return "", "", false
	}
	name, ref = rest[:i], rest[i+len("/manifests/"):]
	if ref == "" || strings.Contains(ref, "/") {
		return "", "", false
	}
	return name, ref, true
}

// hookWriter lets onStatus see, and change, the status before it is sent.
// Once the status is changed, the wrapped handler's body is dropped and
// replaced is set, for the caller to write its own.
type hookWriter struct {
	http.ResponseWriter
	onStatus func(int) int
	done     bool
	replaced bool
}

func (h *hookWriter) WriteHeader(status int) {
	if h.done {
		return
	}
	h.done = true
	if s := h.onStatus(status); s != status {
		h.replaced = true
		h.Header().Del("Content-Length")
		status = s
	}
	h.ResponseWriter.WriteHeader(status)
}

func (h *hookWriter) Write(b []byte) (int, error) {
	if !h.done {
		h.WriteHeader(http.StatusOK)
	}
	if h.replaced {
		return len(b), nil
	}
	return h.ResponseWriter.Write(b)
}

func (h *hookWriter) Unwrap() http.ResponseWriter { return h.ResponseWriter }

// statusWriter remembers the status sent.
type statusWriter struct {
	http.ResponseWriter
	status int
}

func (s *statusWriter) WriteHeader(status int) {
	if s.status == 0 {
		s.status = status
	}
	s.ResponseWriter.WriteHeader(status)
}

func (s *statusWriter) Write(b []byte) (int, error) {
	if s.status == 0 {
		s.status = http.StatusOK
	}
	return s.ResponseWriter.Write(b)
}

func (s *statusWriter) Unwrap() http.ResponseWriter { return s.ResponseWriter }
