package auth

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/scangate/scangate/internal/store"
	"github.com/scangate/scangate/internal/storetest"
)

func TestScopeGrants(t *testing.T) {
	cases := []struct {
		scope string
		name  string
		want  bool
	}{
		{"", "billing/api", true}, // no scope: every repository
		{"shop/*", "shop/api", true},
		{"shop/*", "shop/team/api", false},
		{"shop/*", "shop", false},
		{"shop/*", "billing/api", false},
		{"shop/*", "shopping/api", false},
		{"shop/**", "shop/team/api", true},
		{"shop/**", "shop/api", true},
		{"shop/**", "shop", false},
		{"billing/api", "billing/api", true},
		{"billing/api", "billing/api2", false},
		{"billing/api", "billing/api/x", false},
		{"shop/*,billing/api", "billing/api", true},
		{"shop/*,billing/api", "billing/web", false},
		{"*", "app", true},
		{"*", "shop/api", false},
		{"**", "shop/team/api", true},
		{"shop-*", "shop-api", true},
		{"shop-*", "shop/api", false},
		{"*/api", "shop/api", true},
		{"*/api", "shop/web", false},
	}
	for _, c := range cases {
		sc, err := ParseScope(c.scope)
		if err != nil {
			t.Fatalf("ParseScope(%q): %v", c.scope, err)
		}
		if got := sc.Grants(c.name); got != c.want {
			t.Errorf("scope %q grants %q: %v, want %v", c.scope, c.name, got, c.want)
		}
	}
}

func TestParseScopeRefuses(t *testing.T) {
	for _, s := range []string{
		"shop/",       // trailing slash
		"/shop",       // leading slash
		"shop//api",   // empty segment
		"shop/*,",     // empty pattern
		"shop/**/api", // ** before the end
		"shop/a**",    // ** inside a segment
		"shop/[ab]",   // a character class
		"shop/ap?",    // ?
		`shop\*`,      // an escape
		"shop api",    // a space
		strings.Repeat("a", MaxPatternLen+1),
		strings.Repeat("a,", MaxScopePatterns) + "a",
	} {
		if _, err := ParseScope(s); !errors.Is(err, ErrBadScope) {
			t.Errorf("ParseScope(%.40q): %v, want ErrBadScope", s, err)
		}
	}
	sc, err := ParseScope(" shop/* , billing/api ")
	if err != nil || sc.String() != "shop/*,billing/api" {
		t.Fatalf("spaces around patterns: %q, %v", sc, err)
	}
}

// FuzzParseScope checks that any input is either refused or a scope that
// reads back to itself and whose patterns are within the limits.
func FuzzParseScope(f *testing.F) {
	for _, s := range []string{"", "shop/*", "shop/**,billing/api", "*", "a/**/b", "x,,y", strings.Repeat("a/", 200)} {
		f.Add(s, "shop/api")
	}
	f.Fuzz(func(t *testing.T, s, name string) {
		sc, err := ParseScope(s)
		if err != nil {
			if !errors.Is(err, ErrBadScope) {
				t.Fatalf("ParseScope(%q): %v is not ErrBadScope", s, err)
			}
			return
		}
		if len(sc) > MaxScopePatterns {
			t.Fatalf("%d patterns", len(sc))
		}
		for _, p := range sc {
			if len(p) == 0 || len(p) > MaxPatternLen {
				t.Fatalf("pattern of %d bytes", len(p))
			}
		}
		again, err := ParseScope(sc.String())
		if err != nil || again.String() != sc.String() {
			t.Fatalf("%q read back as %q, %v", sc.String(), again.String(), err)
		}
		// Matching never panics, and the empty scope grants everything.
		_ = sc.Grants(name)
		if sc.All() && !sc.Grants(name) {
			t.Fatalf("the empty scope refused %q", name)
		}
	})
}

func TestTokenScopeStored(t *testing.T) {
	ctx := context.Background()
	st, err := store.OpenDatabase(ctx, storetest.Database(t), t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	toks := NewTokens(st)
	scope, _ := ParseScope("shop/*,billing/api")
	secret, tok, err := toks.CreateToken(ctx, Spec{Name: "shop-ci", Role: RolePusher, Repositories: scope})
	if err != nil {
		t.Fatal(err)
	}
	if tok.Repositories.String() != "shop/*,billing/api" {
		t.Fatalf("created with %q", tok.Repositories)
	}
	got, err := toks.Verify(ctx, secret)
	if err != nil {
		t.Fatal(err)
	}
	if !got.Grants("shop/api") || !got.Grants("billing/api") || got.Grants("billing/web") {
		t.Fatalf("verified token's scope %q grants the wrong repositories", got.Repositories)
	}
	// A token without a scope reaches every repository.
	plain, _, err := toks.Create(ctx, "plain", RolePusher)
	if err != nil {
		t.Fatal(err)
	}
	if got, err := toks.Verify(ctx, plain); err != nil || !got.Repositories.All() || !got.Grants("billing/web") {
		t.Fatalf("unscoped token: %+v, %v", got, err)
	}
	list, err := toks.List(ctx)
	if err != nil || len(list) != 2 || list[1].Name != "shop-ci" || list[1].Repositories.String() != "shop/*,billing/api" {
		t.Fatalf("list: %+v, %v", list, err)
	}
	// Admins are not scoped; bad patterns are refused.
	if _, _, err := toks.CreateToken(ctx, Spec{Name: "a", Role: RoleAdmin, Repositories: scope}); !errors.Is(err, ErrBadScope) {
		t.Fatalf("scoped admin: %v", err)
	}
	if _, _, err := toks.CreateToken(ctx, Spec{Name: "b", Role: RoleReader, Repositories: Scope{"shop/[a]"}}); !errors.Is(err, ErrBadScope) {
		t.Fatalf("bad pattern: %v", err)
	}
}
