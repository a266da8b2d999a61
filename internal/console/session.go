package console

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/scangate/scangate/internal/auth"
)

// Cookie names. The session cookie names a session kept on the server;
// the login cookie carries the login form's CSRF token (double submit),
// since there is no session yet to hold one.
const (
	SessionCookie = "scangate_session"
	LoginCookie   = "scangate_login"
	// CSRFField is the hidden field every form carries.
	CSRFField = "csrf"
)

// session is a logged-in viewer, as auth.Sessions keeps it in the
// database (every replica knows it; a restart ends none). Its token is
// read again at every request, so that revoking or expiring the token ends
// the session; the token's secret is never kept.
type session struct {
	ID        string
	TokenName string
	Role      auth.Role
	CSRF      string
	Expires   time.Time
}

func newSession(s auth.Session) *session {
	return &session{ID: s.ID, TokenName: s.Token.Name, Role: s.Token.Role, CSRF: s.CSRF, Expires: s.Expires}
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// secure says whether cookies must be Secure: the request came over TLS,
// directly or through a trusted proxy (the server removes X-Forwarded-Proto
// from everyone else's requests).
func secure(r *http.Request) bool {
	return r.TLS != nil || strings.EqualFold(r.Header.Get("X-Forwarded-Proto"), "https")
}

func setCookie(w http.ResponseWriter, r *http.Request, name, value string, maxAge int) {
	http.SetCookie(w, &http.Cookie{Name: name, Value: value, Path: "/", MaxAge: maxAge,
		HttpOnly: true, Secure: secure(r), SameSite: http.SameSiteStrictMode})
}

// current returns the request's session, its token read again: nil when
// there is none, or its token is no longer valid. An error is a failure to
// check (the database, a request that ended): the session is kept, since
// logging a user out because a page was left mid-check, or the database
// blinked, would be wrong.
func (c *Console) current(r *http.Request) (*session, error) {
	ck, err := r.Cookie(SessionCookie)
	if err != nil || len(ck.Value) != 64 {
		return nil, nil
	}
	s, err := c.sessions.Get(r.Context(), ck.Value)
	if errors.Is(err, auth.ErrInvalid) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("check the session: %w", err)
	}
	return newSession(s), nil
}

type handler func(http.ResponseWriter, *http.Request, *session)

// page serves a GET to viewers whose role allows need; others are sent to
// log in (no session) or refused (too small a role).
func (c *Console) page(need auth.Role, h handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s, err := c.current(r)
		if err != nil {
			c.fail(w, r, nil, http.StatusServiceUnavailable, err)
			return
		}
		if s == nil {
			http.Redirect(w, r, "/login?next="+url.QueryEscape(r.URL.RequestURI()), http.StatusSeeOther)
			return
		}
		if !s.Role.Allows(need) {
			c.fail(w, r, s, http.StatusForbidden, fmt.Errorf("token %s has the %s role; this page needs %s", s.TokenName, s.Role, need))
			return
		}
		h(w, r, s)
	})
}

// action serves a POST: a session whose role allows need, a form within
// MaxForm, and the session's CSRF token in it. A refusal is logged as the
// API logs refused answers.
func (c *Console) action(need auth.Role, h handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s, err := c.current(r)
		if err != nil {
			c.fail(w, r, nil, http.StatusServiceUnavailable, err)
			return
		}
		if s == nil {
			c.fail(w, r, nil, http.StatusUnauthorized, errors.New("log in first"))
			return
		}
		r.Body = http.MaxBytesReader(w, r.Body, MaxForm)
		if err := r.ParseForm(); err != nil {
			c.fail(w, r, s, http.StatusBadRequest, fmt.Errorf("form: %w", err))
			return
		}
		if got := r.PostForm.Get(CSRFField); subtle.ConstantTimeCompare([]byte(got), []byte(s.CSRF)) != 1 {
			c.Logger.Warn("audit: console form refused: bad CSRF token", "token", s.TokenName, "path", r.URL.Path, "client", r.RemoteAddr)
			c.fail(w, r, s, http.StatusForbidden, errors.New("the form's CSRF token is missing or stale: reload the page and try again"))
			return
		}
		if !s.Role.Allows(need) {
			c.Logger.Warn("audit: console action refused", "token", s.TokenName, "role", s.Role, "need", need, "path", r.URL.Path, "client", r.RemoteAddr)
			c.fail(w, r, s, http.StatusForbidden, fmt.Errorf("token %s has the %s role; this needs %s", s.TokenName, s.Role, need))
			return
		}
		h(w, r, s)
	})
}

type loginData struct {
	Next, CSRF string
}

func (c *Console) loginPage(w http.ResponseWriter, r *http.Request) {
	if s, _ := c.current(r); s != nil {
		http.Redirect(w, r, safeNext(r.URL.Query().Get("next")), http.StatusSeeOther)
		return
	}
	c.showLogin(w, r, http.StatusOK, "")
}

func (c *Console) showLogin(w http.ResponseWriter, r *http.Request, status int, msg string) {
	tok := randomHex(16)
	setCookie(w, r, LoginCookie, tok, 3600)
	next := r.URL.Query().Get("next")
	if r.Method == http.MethodPost {
		next = r.PostForm.Get("next")
	}
	c.render(w, r, nil, status, "login", &view{Title: "Log in", Error: msg, Data: loginData{Next: safeNext(next), CSRF: tok}})
}

// login trades a token for a session.
func (c *Console) login(w http.ResponseWriter, r *http.Request) {
	r.Body = http.MaxBytesReader(w, r.Body, MaxForm)
	if err := r.ParseForm(); err != nil {
		c.fail(w, r, nil, http.StatusBadRequest, fmt.Errorf("form: %w", err))
		return
	}
	ck, err := r.Cookie(LoginCookie)
	if err != nil || ck.Value == "" || subtle.ConstantTimeCompare([]byte(ck.Value), []byte(r.PostForm.Get(CSRFField))) != 1 {
		c.showLogin(w, r, http.StatusForbidden, "The login form expired: try again.")
		return
	}
	secret := strings.TrimSpace(r.PostForm.Get("token"))
	tok, err := c.Tokens.Verify(r.Context(), secret)
	if err != nil {
		// As the API logs a 401: never the secret.
		c.Logger.Warn("authentication failed", "via", "console", "client", r.RemoteAddr, "err", err)
		c.showLogin(w, r, http.StatusUnauthorized, "That token is not valid (unknown, revoked or expired).")
		return
	}
	created, err := c.sessions.Create(r.Context(), tok, c.SessionTTL)
	if err != nil {
		c.fail(w, r, nil, http.StatusServiceUnavailable, err)
		return
	}
	s := newSession(created)
	setCookie(w, r, LoginCookie, "", -1)
	setCookie(w, r, SessionCookie, s.ID, int(time.Until(s.Expires).Seconds()))
	c.audit(r, s, "console login", "role", tok.Role)
	http.Redirect(w, r, safeNext(r.PostForm.Get("next")), http.StatusSeeOther)
}

func (c *Console) logout(w http.ResponseWriter, r *http.Request, s *session) {
	if err := c.sessions.End(r.Context(), s.ID); err != nil {
		c.fail(w, r, s, http.StatusServiceUnavailable, err)
		return
	}
	setCookie(w, r, SessionCookie, "", -1)
	c.audit(r, s, "console logout")
	http.Redirect(w, r, "/login", http.StatusSeeOther)
}

// safeNext keeps a redirect after login on this site: a path, never
// another host ("//evil", "/\evil").
func safeNext(next string) string {
	if !strings.HasPrefix(next, "/") || strings.HasPrefix(next, "//") || strings.HasPrefix(next, "/\\") || len(next) > 2048 {
		return "/pipelines"
	}
	return next
}

// redirect sends the viewer to path after an action, with a message for
// the next page. The message is signed with the session's CSRF token
// (flashSig), so that a link made elsewhere cannot put words on a
// console page.
func (c *Console) redirect(w http.ResponseWriter, r *http.Request, s *session, path, flash, fragment string) {
	v := url.Values{"flash": {flash}, "fs": {flashSig(s, flash)}}
	u := path + "?" + v.Encode()
	if fragment != "" {
		u += "#" + url.PathEscape(fragment)
	}
	http.Redirect(w, r, u, http.StatusSeeOther)
}

func flashSig(s *session, msg string) string {
	m := hmac.New(sha256.New, []byte(s.CSRF))
	m.Write([]byte("flash:" + msg))
	return hex.EncodeToString(m.Sum(nil))[:32]
}

// flash is the request's signed message, or "".
func flash(r *http.Request, s *session) string {
	msg, sig := r.URL.Query().Get("flash"), r.URL.Query().Get("fs")
	if msg == "" || s == nil || !hmac.Equal([]byte(sig), []byte(flashSig(s, msg))) {
		return ""
	}
	return msg
}
