package e2e

import (
	"io"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"testing"

	"github.com/scangate/scangate/internal/servertest"
)

var csrfRe = regexp.MustCompile(`name="csrf" value="([0-9a-f]+)"`)

// consoleClient is a cookie-keeping client of a server's console, which
// does not follow redirects, so that each answer can be checked.
type consoleClient struct {
	t    *testing.T
	base string
	jar  map[string]*http.Cookie
}

func (c *consoleClient) do(method, path string, form url.Values) (*http.Response, string) {
	c.t.Helper()
	var body io.Reader
	if form != nil {
		body = strings.NewReader(form.Encode())
	}
	req, err := http.NewRequest(method, c.base+path, body)
	if err != nil {
		c.t.Fatal(err)
	}
	if form != nil {
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	}
	for _, ck := range c.jar {
		req.AddCookie(ck)
	}
	client := http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err := client.Do(req)
	if err != nil {
		c.t.Fatal(err)
	}
	defer resp.Body.Close()
	data, _ := io.ReadAll(resp.Body)
	for _, ck := range resp.Cookies() {
		if ck.MaxAge < 0 {
			delete(c.jar, ck.Name)
		} else {
			c.jar[ck.Name] = ck
		}
	}
	return resp, string(data)
}

// login logs in with token and returns the session's CSRF token.
func (c *consoleClient) login(token string) string {
	c.t.Helper()
	_, page := c.do("GET", "/login", nil)
	m := csrfRe.FindStringSubmatch(page)
	if m == nil {
		c.t.Fatalf("the login form has no CSRF token:\n%s", page)
	}
	resp, _ := c.do("POST", "/login", url.Values{"token": {token}, "csrf": {m[1]}, "next": {"/pipelines"}})
	if resp.StatusCode != http.StatusSeeOther || resp.Header.Get("Location") != "/pipelines" {
		c.t.Fatalf("login: %s to %q", resp.Status, resp.Header.Get("Location"))
	}
	_, page = c.do("GET", "/pipelines", nil)
	if m = csrfRe.FindStringSubmatch(page); m == nil {
		c.t.Fatalf("a page without a CSRF token in its forms:\n%.500s", page)
	}
	return m[1]
}

// The console's session: the cookie's attributes, the headers of its
// pages, a login form without its CSRF token refused, roles as the API's,
// a revoked token ending its sessions, and logout.
func TestConsoleSession(t *testing.T) {
	t.Parallel()
	s := servertest.Start(t, servertest.Options{Feeds: []string{}})
	status, out := s.API(t, "POST", "/api/v1/tokens", map[string]string{"name": "viewer", "role": "reader"})
	if status != http.StatusCreated {
		t.Fatalf("token: %d %s", status, out)
	}
	reader := string(regexp.MustCompile(`sgt_[0-9a-f]+`).Find(out))
	c := &consoleClient{t: t, base: "http://" + s.Addr, jar: map[string]*http.Cookie{}}

	// No session: every page sends to the login form.
	if resp, _ := c.do("GET", "/findings?image=x", nil); resp.StatusCode != http.StatusSeeOther || !strings.HasPrefix(resp.Header.Get("Location"), "/login?next=") {
		t.Errorf("without a session: %s to %s", resp.Status, resp.Header.Get("Location"))
	}
	// A login post without the form's CSRF token is refused.
	if resp, _ := c.do("POST", "/login", url.Values{"token": {reader}}); resp.StatusCode != http.StatusForbidden {
		t.Errorf("a login without its CSRF token: %s", resp.Status)
	}
	csrf := c.login(reader)
	ck := c.jar["scangate_session"]
	if ck == nil || !ck.HttpOnly || ck.SameSite != http.SameSiteStrictMode || ck.Secure || len(ck.Value) != 64 || strings.Contains(ck.Value, reader) {
		t.Errorf("session cookie %+v: want HttpOnly, SameSite=Strict, not Secure over plain HTTP, a random id", ck)
	}
	resp, page := c.do("GET", "/pipelines", nil)
	if csp := resp.Header.Get("Content-Security-Policy"); !strings.Contains(csp, "script-src 'self'") || !strings.Contains(csp, "frame-ancestors 'none'") {
		t.Errorf("Content-Security-Policy: %q", csp)
	}
	if resp.Header.Get("Cache-Control") != "no-store" || strings.Contains(page, reader) {
		t.Errorf("a page: Cache-Control %q, or the token in it", resp.Header.Get("Cache-Control"))
	}
	// A message in a link made elsewhere is not shown: only the console's
	// own, signed for the session.
	if _, page := c.do("GET", "/pipelines?flash=Your+token+expired:+log+in+at+evil.example", nil); strings.Contains(page, "evil.example") {
		t.Error("a page shows a message from its link")
	}
	// Roles as the API's: a reader may not see tokens or make one, even
	// with a good CSRF token.
	if resp, _ := c.do("GET", "/tokens", nil); resp.StatusCode != http.StatusForbidden {
		t.Errorf("a reader's /tokens: %s", resp.Status)
	}
	if resp, _ := c.do("POST", "/tokens", url.Values{"name": {"mine"}, "role": {"admin"}, "csrf": {csrf}}); resp.StatusCode != http.StatusForbidden {
		t.Errorf("a reader's new token: %s", resp.Status)
	}
	// A form with another session's or no CSRF token is refused.
	if resp, _ := c.do("POST", "/rules/test", url.Values{"pattern": {"{}"}, "event": {"{}"}, "csrf": {strings.Repeat("0", 64)}}); resp.StatusCode != http.StatusForbidden {
		t.Errorf("a stale CSRF token: %s", resp.Status)
	}
	// A body over the form limit is refused.
	if resp, _ := c.do("POST", "/rules/test", url.Values{"pattern": {strings.Repeat("x", 70<<10)}, "csrf": {csrf}}); resp.StatusCode != http.StatusBadRequest {
		t.Errorf("a form over 64 KiB: %s", resp.Status)
	}
	// Revoking the token ends its sessions at once.
	if status, out := s.API(t, "DELETE", "/api/v1/tokens/viewer", nil); status != http.StatusNoContent {
		t.Fatalf("revoke: %d %s", status, out)
	}
	if resp, _ := c.do("GET", "/pipelines", nil); resp.StatusCode != http.StatusSeeOther {
		t.Errorf("after the token's revocation: %s", resp.Status)
	}
	// Logout ends the session.
	c.jar = map[string]*http.Cookie{}
	csrf = c.login(s.Token)
	old := c.jar["scangate_session"]
	if resp, _ := c.do("POST", "/logout", url.Values{"csrf": {csrf}}); resp.StatusCode != http.StatusSeeOther {
		t.Errorf("logout: %s", resp.Status)
	}
	if _, ok := c.jar["scangate_session"]; ok {
		t.Error("logout left the session cookie")
	}
	c.jar["scangate_session"] = old // the server forgot it too
	if resp, _ := c.do("GET", "/tokens", nil); resp.StatusCode != http.StatusSeeOther {
		t.Errorf("after logout: %s", resp.Status)
	}

	// Last, as it locks this client out: failed logins count against the
	// client as failed API calls do: past
	// --auth-failures (10), it must wait.
	fresh := &consoleClient{t: t, base: c.base, jar: map[string]*http.Cookie{}}
	var last int
	for range 11 {
		_, page := fresh.do("GET", "/login", nil)
		m := csrfRe.FindStringSubmatch(page)
		if m == nil {
			t.Fatalf("no login form:\n%.300s", page)
		}
		resp, _ := fresh.do("POST", "/login", url.Values{"token": {"sgt_" + strings.Repeat("1", 64)}, "csrf": {m[1]}})
		last = resp.StatusCode
	}
	if last != http.StatusTooManyRequests {
		t.Errorf("the 11th failed login: %d, want 429", last)
	}

}
