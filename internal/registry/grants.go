package registry

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"

	v2 "github.com/distribution/distribution/v3/registry/api/v2"
	"github.com/gorilla/mux"

	"github.com/scangate/scangate/internal/auth"
)

// TagGuard keeps some tags for their owner: the tags a pipeline pushes
// and promotes are immutable to everyone else's pushes and deletes, as
// ECR's tag immutability is, so that a pull of a pipeline's tag always
// gets what the pipeline put there.
type TagGuard interface {
	// MayMoveTag returns why who may not point repository:tag at another
	// manifest or delete it, or nil.
	MayMoveTag(ctx context.Context, who Puller, repository, tag string) error
}

// grant is what authorize learnt of a request's token.
type grant struct {
	who   Puller
	scope auth.Scope // empty: every repository
}

// routeOf names the registry route of req and the repository it is about,
// as distribution's own router reads the path, so that the check and the
// handler never disagree on which repository a path names.
func routeOf(req *http.Request) (route, name string) {
	var m mux.RouteMatch
	if !v2.Router().Match(req, &m) || m.Route == nil {
		return "", ""
	}
	return m.Route.GetName(), m.Vars["name"]
}

// inScope answers 403 and returns false when the request is about a
// repository the token is not granted: pulls, pushes and deletes alike,
// and a blob mounted from another repository (?from=), which would copy
// what the token may not read. A refusal is audit-logged.
func (r *Registry) inScope(w http.ResponseWriter, req *http.Request, g grant) bool {
	if g.scope.All() {
		return true
	}
	route, name := routeOf(req)
	if route == "" || name == "" {
		return true // the base, the catalog (filtered) or no route (404)
	}
	refuse := name
	if g.scope.Grants(name) {
		from := req.URL.Query().Get("from")
		if route != v2.RouteNameBlobUpload || from == "" || g.scope.Grants(from) {
			return true
		}
		refuse = from
	}
	msg := fmt.Sprintf("token %s is not granted repository %s (its repositories: %s)", g.who.Token, refuse, g.scope)
	r.logger().Warn("audit: registry request refused", "token", g.who.Token, "method", req.Method, "path", req.URL.Path,
		"repository", refuse, "reason", "not in the token's repositories")
	deny(w, http.StatusForbidden, "DENIED", msg)
	return false
}

// mayMoveTag answers 403 and returns false when the request would point a
// tag the TagGuard keeps at another manifest, or delete it. A refusal is
// audit-logged.
func (r *Registry) mayMoveTag(w http.ResponseWriter, req *http.Request, g grant, name, tag string) bool {
	if r.cfg.TagGuard == nil || (req.Method != http.MethodPut && req.Method != http.MethodDelete) {
		return true
	}
	err := r.cfg.TagGuard.MayMoveTag(req.Context(), g.who, name, tag)
	if err == nil {
		return true
	}
	r.logger().Warn("audit: registry request refused", "token", g.who.Token, "method", req.Method, "path", req.URL.Path,
		"repository", name, "tag", tag, "reason", err.Error())
	// DENIED, as for any request the token may not make; the message
	// names the rule (ECR's equivalent is ImageTagAlreadyExistsException).
	deny(w, http.StatusForbidden, "DENIED", err.Error())
	return false
}

// catalogWriter holds distribution's catalog page back, to be written
// with only the repositories the token is granted.
type catalogWriter struct {
	http.ResponseWriter
	status int
	body   bytes.Buffer
}

func (c *catalogWriter) WriteHeader(status int) {
	if c.status == 0 {
		c.status = status
	}
}

func (c *catalogWriter) Write(b []byte) (int, error) {
	if c.status == 0 {
		c.status = http.StatusOK
	}
	// A page is at most MaxCatalog names of at most 255 bytes.
	if c.body.Len()+len(b) > 64<<20 {
		return 0, fmt.Errorf("catalog page over 64 MiB")
	}
	return c.body.Write(b)
}

// serveCatalog serves /v2/_catalog with only the repositories of g's
// scope. A page may so hold fewer names than asked for, even none, while
// its Link header still leads to the next one, as distribution's own
// pages do when repositories are deleted between two.
func (r *Registry) serveCatalog(w http.ResponseWriter, req *http.Request, g grant) {
	cw := &catalogWriter{ResponseWriter: w}
	r.app.ServeHTTP(cw, req)
	if cw.status != http.StatusOK {
		w.WriteHeader(cw.status)
		_, _ = w.Write(cw.body.Bytes())
		return
	}
	var page struct {
		Repositories []string `json:"repositories"`
	}
	if err := json.Unmarshal(cw.body.Bytes(), &page); err != nil {
		deny(w, http.StatusInternalServerError, "UNKNOWN", "reading the catalog: "+err.Error())
		return
	}
	kept := []string{}
	for _, name := range page.Repositories {
		if g.scope.Grants(name) {
			kept = append(kept, name)
		}
	}
	page.Repositories = kept
	out, _ := json.Marshal(page)
	w.Header().Set("Content-Length", strconv.Itoa(len(out)+1))
	w.WriteHeader(http.StatusOK)
	_, _ = w.Write(append(out, '\n'))
}
