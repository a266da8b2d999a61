package cli

import (
	"strings"
	"testing"
)

// token create --repositories limits a token (here in the data folder, as
// the first admin's is made; the API takes the same scope); list shows the limit; bad
// patterns and a limited admin are refused as bad input.
func TestTokenRepositoriesFlag(t *testing.T) {
	dir := t.TempDir()
	run(t, dir, "token", "--local", "create", "--name", "shop-ci", "--role", "pusher", "--repositories", "shop/*,billing/api").must(t)
	run(t, dir, "token", "--local", "create", "--name", "any", "--role", "reader").must(t)
	list := run(t, dir, "token", "--local", "list").must(t).stdout
	if !strings.Contains(list, "REPOSITORIES") || !strings.Contains(list, "shop/*,billing/api") || !strings.Contains(list, "all") {
		t.Errorf("token list:\n%s", list)
	}
	for _, args := range [][]string{
		{"--name", "bad", "--role", "pusher", "--repositories", "shop/[ab]"},
		{"--name", "root", "--role", "admin", "--repositories", "shop/*"},
	} {
		if r := run(t, dir, append([]string{"token", "--local", "create"}, args...)...); r.code != ExitBadInput || !strings.Contains(r.stderr, "repository scope") {
			t.Errorf("token create %q: exit %d %s, want 2", args, r.code, r.stderr)
		}
	}
}
