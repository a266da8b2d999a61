package registry

import (
	"encoding/json"
	"errors"
	"net/http"
	"strings"
	"time"

	"github.com/scangate/scangate/internal/auth"
)

// TokenPath is the registry's token endpoint, in the distribution
// specification's token authentication: with anonymous pulls on, the
// registry's challenge is Bearer and names it as the realm. Docker sends
// Basic credentials only where a challenge asks for them and never asks
// a Basic realm without any, so a docker pull with no login could not use
// anonymous pulls under a Basic challenge; under a Bearer challenge it
// asks this endpoint for a token first, with its login if it has one.
const TokenPath = "/v2/token"

// tokenTTL is what the answers say a token lasts. The token is the
// client's own scangate token (or auth.AnonymousToken), checked at every
// request, so the figure only tells the client when to ask again.
const tokenTTL = time.Hour

// unauthorized answers 401 with the challenge a client must answer: Basic
// (the password is a scangate token), or, with anonymous pulls, Bearer
// through TokenPath.
func (r *Registry) unauthorized(w http.ResponseWriter, req *http.Request, msg string) {
	if r.cfg.AnonymousPull {
		scheme := "http"
		if req.TLS != nil || strings.EqualFold(req.Header.Get("X-Forwarded-Proto"), "https") {
			scheme = "https" // the server drops X-Forwarded-Proto from untrusted clients
		}
		w.Header().Set("WWW-Authenticate", `Bearer realm="`+scheme+`://`+req.Host+TokenPath+`",service="scangate"`)
	} else {
		w.Header().Set("WWW-Authenticate", `Basic realm="scangate"`)
	}
	deny(w, http.StatusUnauthorized, "UNAUTHORIZED", msg)
}

// serveToken answers a token request: Basic credentials whose password is
// a scangate token get that token back (the Bearer the client then sends
// is checked like Basic); no credentials get auth.AnonymousToken when anonymous
// pulls are on. The request carries no body; scope and service are not
// needed, since every request is checked against the token's role and
// repositories.
func (r *Registry) serveToken(w http.ResponseWriter, req *http.Request) {
	if req.Method != http.MethodGet {
		w.Header().Set("Allow", http.MethodGet)
		deny(w, http.StatusMethodNotAllowed, "UNSUPPORTED", "the token endpoint answers GET")
		return
	}
	token := auth.AnonymousToken
	if _, secret, ok := req.BasicAuth(); ok {
		if _, err := r.cfg.Tokens.Verify(req.Context(), secret); err != nil {
			if !errors.Is(err, auth.ErrInvalid) {
				r.logger().Error("registry: check a token", "err", err)
				deny(w, http.StatusServiceUnavailable, "UNAVAILABLE", "cannot check the token")
				return
			}
			r.logger().Warn("audit: registry token refused", "client", req.RemoteAddr, "reason", "invalid token")
			w.Header().Set("WWW-Authenticate", `Basic realm="scangate"`)
			deny(w, http.StatusUnauthorized, "UNAUTHORIZED", "invalid token")
			return
		}
		token = secret
	} else if !r.cfg.AnonymousPull {
		w.Header().Set("WWW-Authenticate", `Basic realm="scangate"`)
		deny(w, http.StatusUnauthorized, "UNAUTHORIZED", "authentication required")
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	_ = json.NewEncoder(w).Encode(map[string]any{
		"token": token, "access_token": token,
		"expires_in": int(tokenTTL.Seconds()), "issued_at": time.Now().UTC().Format(time.RFC3339),
	})
}
