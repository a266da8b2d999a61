package console

import (
	"context"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/scangate/scangate/internal/auth"
	"github.com/scangate/scangate/internal/storetest"
)

// A token check that fails (here: the request ended while it ran, as when
// a page's live updates stop on navigation) keeps the session; only a
// token that is no longer valid ends it.
func TestSessionSurvivesAFailedCheck(t *testing.T) {
	ctx := context.Background()
	tokens := auth.NewTokens(storetest.Open(t, t.TempDir()))
	secret, tok, err := tokens.Create(ctx, "alice", auth.RoleReader)
	if err != nil {
		t.Fatal(err)
	}
	c := &Console{Deps: Deps{Tokens: tokens}, sessions: newSessions(time.Hour)}
	s := c.sessions.create(tok, secret)
	request := func(ctx context.Context) *http.Request {
		r := httptest.NewRequest(http.MethodGet, "/pipelines", nil).WithContext(ctx)
		r.AddCookie(&http.Cookie{Name: SessionCookie, Value: s.ID})
		return r
	}

	ended, cancel := context.WithCancel(ctx)
	cancel()
	if got, err := c.current(request(ended)); got != nil || err == nil {
		t.Fatalf("a check whose request ended: %v, %v; want an error", got, err)
	}
	if got, err := c.current(request(ctx)); err != nil || got == nil || got.TokenName != "alice" {
		t.Fatalf("the next request: %v, %v; want alice's session, kept", got, err)
	}

	if err := tokens.Revoke(ctx, "alice"); err != nil {
		t.Fatal(err)
	}
	if got, err := c.current(request(ctx)); got != nil || err != nil {
		t.Fatalf("a revoked token: %v, %v; want no session and no error", got, err)
	}
	if c.sessions.get(s.ID) != nil {
		t.Error("the revoked token's session is still kept")
	}
}
