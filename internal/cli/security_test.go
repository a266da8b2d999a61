package cli

import (
	"encoding/json"
	"strings"
	"testing"
	"time"
)

// token create --expires takes days, a date or a time; list shows it.
func TestTokenExpiresFlag(t *testing.T) {
	dir := t.TempDir()
	before := time.Now().UTC()
	out := run(t, dir, "--format", "json", "token", "create", "--name", "ci", "--role", "pusher", "--expires", "90d").must(t).stdout
	var created struct {
		Token struct {
			ExpiresAt *time.Time `json:"expiresAt"`
		} `json:"token"`
	}
	if err := json.Unmarshal([]byte(out), &created); err != nil || created.Token.ExpiresAt == nil {
		t.Fatalf("token create --expires 90d: %v\n%s", err, out)
	}
	if d := created.Token.ExpiresAt.Sub(before); d < 89*24*time.Hour || d > 91*24*time.Hour {
		t.Errorf("--expires 90d expires %s, %s from now", created.Token.ExpiresAt, d)
	}
	run(t, dir, "token", "create", "--name", "dated", "--expires", "2099-01-31").must(t)
	list := run(t, dir, "token", "list", "--local").must(t).stdout
	if !strings.Contains(list, "EXPIRES") || !strings.Contains(list, "2099-01-31T00:00:00Z") {
		t.Errorf("token list:\n%s", list)
	}
	for _, bad := range []string{"0d", "soon", "2001-01-01"} {
		if r := run(t, dir, "token", "create", "--name", "bad-"+bad, "--expires", bad); r.code != ExitBadInput {
			t.Errorf("--expires %s: exit %d %s, want 2", bad, r.code, r.stderr)
		}
	}
}

// The server's security flags are checked before it starts.
func TestServerSecurityFlags(t *testing.T) {
	dir := t.TempDir()
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"--tls-cert", "server.crt"}, "--tls-cert and --tls-key go together"},
		{[]string{"--trusted-proxies", "10.0.0.0/33"}, "--trusted-proxies"},
		{[]string{"--event-retention-days", "0"}, "--event-retention-days: at least 1"},
		{[]string{"--addr", "0.0.0.0:0"}, "--insecure-plaintext"},
	} {
		r := run(t, dir, append([]string{"server"}, c.args...)...)
		if r.code == 0 || !strings.Contains(r.stderr, c.want) {
			t.Errorf("server %s: exit %d %s; want a refusal naming %s", strings.Join(c.args, " "), r.code, r.stderr, c.want)
		}
	}
}
