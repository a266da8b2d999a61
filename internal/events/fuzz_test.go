package events

import (
	"strings"
	"testing"

	"github.com/scangate/scangate/internal/events/pattern"
)

// FuzzCheckEvent checks any input as `rules test` does: no panic; what it
// accepts, Match accepts too.
func FuzzCheckEvent(f *testing.F) {
	for _, e := range []string{detailTypeArrayEvent, detailStringEvent, `{"a": 1}{}`, `[1]`, `{`, ``} {
		f.Add([]byte(e))
	}
	p, err := pattern.Compile([]byte(`{"detail-type": [{"exists": true}], "detail": {"state": [{"anything-but": "x"}]}}`))
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, event []byte) {
		if err := CheckEvent(event); err != nil {
			return
		}
		if _, err := p.Match(event); err != nil {
			t.Fatalf("CheckEvent accepted %q, Match refused it: %v", event, err)
		}
	})
}

// FuzzRedactURL: whatever a webhook URL holds, its redacted form is empty,
// "…", or a scheme and host with "/" or "/…" after them: never a user, a
// path or a query.
func FuzzRedactURL(f *testing.F) {
	for _, s := range []string{"", "https://hooks.example.com/services/T0/B0/XXX", "http://u:p@h:8080/p?q=1#f",
		"https://h", "https://h/", "https://h?", "ftp://h/x", "https://[::1]:80/x", "https://a@b@c/x", "%zz", "https://h/%2F/x"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, raw string) {
		got := RedactURL(raw)
		if raw == "" {
			if got != "" {
				t.Fatalf("RedactURL(%q) = %q", raw, got)
			}
			return
		}
		if got == "…" {
			return
		}
		rest, ok := strings.CutPrefix(got, "https://")
		if !ok {
			rest, ok = strings.CutPrefix(got, "http://")
		}
		host, tail, _ := strings.Cut(rest, "/")
		if !ok || host == "" || (tail != "" && tail != "…") || strings.ContainsAny(host, "@?#") {
			t.Fatalf("RedactURL(%q) = %q: want scheme://host/ or scheme://host/…", raw, got)
		}
	})
}
