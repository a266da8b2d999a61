package console

import (
	"context"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/scangate/scangate/internal/auth"
	"github.com/scangate/scangate/internal/store"
	"github.com/scangate/scangate/internal/storetest"
)

// Sessions live in the database: a console on a second handle of it (a
// replica) knows a login made on the first. A token check that fails
// (here: the request ended while it ran, as when a page's live updates
// stop on navigation) keeps the session; only a token that is no longer
// valid ends it.
func TestSessions(t *testing.T) {
	ctx := context.Background()
	database, dir := storetest.Database(t), t.TempDir()
	open := func() *auth.Tokens {
		st, err := store.OpenDatabase(ctx, database, dir)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { st.Close() })
		return auth.NewTokens(st)
	}
	tokens := open()
	_, tok, err := tokens.Create(ctx, "alice", auth.RoleReader)
	if err != nil {
		t.Fatal(err)
	}
	one, err := New(Deps{Tokens: tokens})
	if err != nil {
		t.Fatal(err)
	}
	s, err := one.sessions.Create(ctx, tok, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	request := func(ctx context.Context) *http.Request {
		r := httptest.NewRequest(http.MethodGet, "/pipelines", nil).WithContext(ctx)
		r.AddCookie(&http.Cookie{Name: SessionCookie, Value: s.ID})
		return r
	}

	// The other replica: its own handle on the same database.
	two, err := New(Deps{Tokens: open()})
	if err != nil {
		t.Fatal(err)
	}
	if got, err := two.current(request(ctx)); err != nil || got == nil || got.TokenName != "alice" || got.CSRF != s.CSRF {
		t.Fatalf("the session on another replica: %+v, %v; want alice's", got, err)
	}

	ended, cancel := context.WithCancel(ctx)
	cancel()
	if got, err := one.current(request(ended)); got != nil || err == nil {
		t.Fatalf("a check whose request ended: %v, %v; want an error", got, err)
	}
	if got, err := one.current(request(ctx)); err != nil || got == nil || got.TokenName != "alice" {
		t.Fatalf("the next request: %v, %v; want alice's session, kept", got, err)
	}

	if err := tokens.Revoke(ctx, "alice"); err != nil {
		t.Fatal(err)
	}
	if got, err := two.current(request(ctx)); got != nil || err != nil {
		t.Fatalf("a revoked token: %v, %v; want no session and no error", got, err)
	}
}
