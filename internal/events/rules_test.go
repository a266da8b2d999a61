package events_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/scangate/scangate/internal/events"
	"github.com/scangate/scangate/internal/events/pattern"
	"github.com/scangate/scangate/internal/store"
	"github.com/scangate/scangate/internal/storetest"
)

func openStore(t *testing.T) *store.Store {
	t.Helper()
	st, err := store.OpenDatabase(context.Background(), storetest.Database(t), t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	return st
}

const scanPattern = `{"source": ["scangate.scanner"], "detail-type": ["Scan"]}`

func TestRulesRoundTrip(t *testing.T) {
	ctx := context.Background()
	rs := events.NewRules(openStore(t))

	if list, err := rs.List(ctx); err != nil || len(list) != 0 {
		t.Fatalf("List on an empty table = %v, %v", list, err)
	}
	a := events.Rule{Name: "alerts", Pattern: json.RawMessage(scanPattern), Targets: []events.Target{
		{Webhook: "https://hooks.example/scan", Secret: "s3cret"},
		{ID: "gate", Handler: "gate"},
	}}
	b := events.Rule{Name: "b.rule_1-x", Pattern: json.RawMessage(`{"detail-type": ["Finding"]}`), Targets: []events.Target{
		{ID: "hook", Webhook: "http://127.0.0.1:9/x"},
	}}
	for _, r := range []events.Rule{b, a} {
		if err := rs.Put(ctx, r); err != nil {
			t.Fatalf("Put %s: %v", r.Name, err)
		}
	}

	got, err := rs.Get(ctx, "alerts")
	if err != nil {
		t.Fatal(err)
	}
	if string(got.Pattern) != scanPattern {
		t.Errorf("pattern %s, want %s", got.Pattern, scanPattern)
	}
	// A target without an id is numbered by its place.
	want := []events.Target{{ID: "1", Webhook: "https://hooks.example/scan", Secret: "s3cret"}, {ID: "gate", Handler: "gate"}}
	if gotJSON, wantJSON := mustJSON(t, got.Targets), mustJSON(t, want); gotJSON != wantJSON {
		t.Errorf("targets %+v, want %+v", got.Targets, want)
	}
	if got.CreatedAt.IsZero() || got.UpdatedAt.IsZero() || got.Builtin {
		t.Errorf("stored rule %+v: want times set, not builtin", got)
	}

	list, err := rs.List(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(list) != 2 || list[0].Name != "alerts" || list[1].Name != "b.rule_1-x" {
		t.Fatalf("List = %+v, want alerts and b.rule_1-x by name", list)
	}

	// Put replaces: pattern and targets change, the creation time stays.
	a2 := events.Rule{Name: "alerts", Pattern: json.RawMessage(`{"detail-type": ["Scan"]}`), Targets: []events.Target{{ID: "only", Handler: "gate"}}}
	if err := rs.Put(ctx, a2); err != nil {
		t.Fatal(err)
	}
	got2, err := rs.Get(ctx, "alerts")
	if err != nil {
		t.Fatal(err)
	}
	if string(got2.Pattern) != `{"detail-type": ["Scan"]}` || len(got2.Targets) != 1 || got2.Targets[0].ID != "only" {
		t.Errorf("after a second Put: %+v", got2)
	}
	if !got2.CreatedAt.Equal(got.CreatedAt) {
		t.Errorf("created at changed from %v to %v", got.CreatedAt, got2.CreatedAt)
	}
	if list, _ := rs.List(ctx); len(list) != 2 {
		t.Errorf("a second Put of a name made %d rules, want 2", len(list))
	}

	if err := rs.Delete(ctx, "alerts"); err != nil {
		t.Fatal(err)
	}
	if _, err := rs.Get(ctx, "alerts"); !errors.Is(err, events.ErrNoRule) {
		t.Errorf("Get after Delete: %v, want ErrNoRule", err)
	}
	if err := rs.Delete(ctx, "alerts"); !errors.Is(err, events.ErrNoRule) {
		t.Errorf("second Delete: %v, want ErrNoRule", err)
	}
	if list, _ := rs.List(ctx); len(list) != 1 || list[0].Name != "b.rule_1-x" {
		t.Errorf("List after Delete = %+v", list)
	}

	// Put refuses what Check refuses, and stores nothing.
	if err := rs.Put(ctx, events.Rule{Name: "bad", Pattern: json.RawMessage(`{}`), Targets: []events.Target{{Handler: "h"}}}); err == nil {
		t.Error("Put stored a rule with an empty pattern")
	}
	if _, err := rs.Get(ctx, "bad"); !errors.Is(err, events.ErrNoRule) {
		t.Errorf("a refused rule was stored: %v", err)
	}
}

func TestRuleCheck(t *testing.T) {
	hook := events.Target{Webhook: "https://hooks.example/x"}
	targets := func(n int) []events.Target {
		out := make([]events.Target, n)
		for i := range out {
			out[i] = events.Target{ID: fmt.Sprint("t", i), Webhook: "http://127.0.0.1/x"}
		}
		return out
	}
	tests := []struct {
		name string
		rule events.Rule
		want string // "" for a good rule
	}{
		{"good", events.Rule{Name: "ok", Pattern: json.RawMessage(scanPattern), Targets: []events.Target{hook}}, ""},
		{"five targets", events.Rule{Name: "ok", Pattern: json.RawMessage(scanPattern), Targets: targets(5)}, ""},
		{"handler", events.Rule{Name: "ok", Pattern: json.RawMessage(scanPattern), Targets: []events.Target{{Handler: "gate"}}}, ""},
		{"64-char name", events.Rule{Name: strings.Repeat("n", 64), Pattern: json.RawMessage(scanPattern), Targets: []events.Target{hook}}, ""},
		{"empty name", events.Rule{Name: "", Pattern: json.RawMessage(scanPattern), Targets: []events.Target{hook}}, "rule name"},
		{"name with a slash", events.Rule{Name: "a/b", Pattern: json.RawMessage(scanPattern), Targets: []events.Target{hook}}, "rule name"},
		{"name with a space", events.Rule{Name: "a b", Pattern: json.RawMessage(scanPattern), Targets: []events.Target{hook}}, "rule name"},
		{"65-char name", events.Rule{Name: strings.Repeat("n", 65), Pattern: json.RawMessage(scanPattern), Targets: []events.Target{hook}}, "rule name"},
		{"no pattern", events.Rule{Name: "ok", Targets: []events.Target{hook}}, "no value"},
		{"bad pattern", events.Rule{Name: "ok", Pattern: json.RawMessage(`{"source": "x"}`), Targets: []events.Target{hook}}, "want an array"},
		{"pattern not JSON", events.Rule{Name: "ok", Pattern: json.RawMessage(`{"source": [`), Targets: []events.Target{hook}}, "rule ok"},
		{"no target", events.Rule{Name: "ok", Pattern: json.RawMessage(scanPattern)}, "no targets"},
		{"six targets", events.Rule{Name: "ok", Pattern: json.RawMessage(scanPattern), Targets: targets(6)}, "at most 5"},
		{"neither webhook nor handler", events.Rule{Name: "ok", Pattern: json.RawMessage(scanPattern), Targets: []events.Target{{ID: "x"}}}, "either a webhook or a handler"},
		{"webhook and handler", events.Rule{Name: "ok", Pattern: json.RawMessage(scanPattern), Targets: []events.Target{{Webhook: "https://h/x", Handler: "gate"}}}, "either a webhook or a handler"},
		{"ftp webhook", events.Rule{Name: "ok", Pattern: json.RawMessage(scanPattern), Targets: []events.Target{{Webhook: "ftp://h/x"}}}, "not an http(s) URL"},
		{"webhook without host", events.Rule{Name: "ok", Pattern: json.RawMessage(scanPattern), Targets: []events.Target{{Webhook: "http:///x"}}}, "not an http(s) URL"},
		{"relative webhook", events.Rule{Name: "ok", Pattern: json.RawMessage(scanPattern), Targets: []events.Target{{Webhook: "/hooks/x"}}}, "not an http(s) URL"},
		{"webhook not a URL", events.Rule{Name: "ok", Pattern: json.RawMessage(scanPattern), Targets: []events.Target{{Webhook: "http://[::1"}}}, "not an http(s) URL"},
		{"two targets, one id", events.Rule{Name: "ok", Pattern: json.RawMessage(scanPattern), Targets: []events.Target{{ID: "a", Handler: "x"}, {ID: "a", Handler: "y"}}}, "two targets with id"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.rule.Check()
			switch {
			case tt.want == "" && err != nil:
				t.Errorf("Check: %v, want nil", err)
			case tt.want != "" && (err == nil || !strings.Contains(err.Error(), tt.want)):
				t.Errorf("Check: %v, want an error containing %q", err, tt.want)
			}
		})
	}
}

func TestParseRule(t *testing.T) {
	const good = `{"pattern": {"detail-type": ["Scan"]}, "targets": [{"id": "hook", "webhook": "https://hooks.example/x", "secret": "k"}]}`
	r, err := events.ParseRule("from-api", strings.NewReader(good))
	if err != nil {
		t.Fatal(err)
	}
	if r.Name != "from-api" || string(r.Pattern) != `{"detail-type": ["Scan"]}` || len(r.Targets) != 1 ||
		r.Targets[0] != (events.Target{ID: "hook", Webhook: "https://hooks.example/x", Secret: "k"}) {
		t.Errorf("ParseRule = %+v", r)
	}
	if _, err := events.ParseRule("from-api", strings.NewReader(good+"\n\t ")); err != nil {
		t.Errorf("trailing white space: %v", err)
	}

	// A body of exactly MaxRuleSize bytes is read; one more byte is not.
	pad := func(body string, size int) string { return body + strings.Repeat(" ", size-len(body)) }
	if _, err := events.ParseRule("big", strings.NewReader(pad(good, events.MaxRuleSize))); err != nil {
		t.Errorf("%d-byte body: %v", events.MaxRuleSize, err)
	}

	for _, tt := range []struct{ name, rule, body, want string }{
		{"unknown field", "r", `{"pattern": {"source": ["a"]}, "targets": [{"handler": "h"}], "enabled": true}`, `unknown field "enabled"`},
		{"unknown target field", "r", `{"pattern": {"source": ["a"]}, "targets": [{"handler": "h", "url": "x"}]}`, `unknown field "url"`},
		{"trailing value", "r", `{"pattern": {"source": ["a"]}, "targets": [{"handler": "h"}]} {}`, "r:"},
		{"trailing garbage", "r", `{"pattern": {"source": ["a"]}, "targets": [{"handler": "h"}]} x`, "r:"},
		{"trailing brace", "r", `{"pattern": {"source": ["a"]}, "targets": [{"handler": "h"}]}}`, "r:"},
		{"trailing bracket", "r", `{"pattern": {"source": ["a"]}, "targets": [{"handler": "h"}]}]`, "r:"},
		{"too big", "r", pad(good, events.MaxRuleSize+1), "over 65536 bytes"},
		{"empty", "r", ``, "EOF"},
		{"not an object", "r", `[]`, "cannot unmarshal"},
		{"null pattern", "r", `{"pattern": null, "targets": [{"handler": "h"}]}`, "rule r"},
		{"bad pattern", "r", `{"pattern": {"source": "a"}, "targets": [{"handler": "h"}]}`, "want an array"},
		{"no targets", "r", `{"pattern": {"source": ["a"]}}`, "no targets"},
		{"bad name", "a/b", good, "rule name"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			_, err := events.ParseRule(tt.rule, strings.NewReader(tt.body))
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("ParseRule: %v, want an error containing %q", err, tt.want)
			}
		})
	}
}

// FuzzParseRule feeds rule bodies as the API takes them: ParseRule never
// panics, and a rule it accepts passes Check and has a pattern that
// compiles, so routing can use every stored rule.
func FuzzParseRule(f *testing.F) {
	for _, s := range []string{
		`{"pattern": {"detail-type": ["Scan"]}, "targets": [{"id": "hook", "webhook": "https://hooks.example/x", "secret": "k"}]}`,
		`{"pattern": {"detail": {"$or": [{"finding-severity-counts": {"CRITICAL": [{"numeric": [">", 0]}]}}, {"finding-severity-counts": {"HIGH": [{"numeric": [">", 0]}]}}]}}, "targets": [{"handler": "gate"}]}`,
		`{"pattern": {"source": [{"prefix": "scangate."}]}, "targets": [{"webhook": "http://127.0.0.1:1/a"}, {"webhook": "http://127.0.0.1:1/b"}]}`,
		`{"pattern": {"source": ["a"]}, "targets": [{"handler": "h"}]}}`,
		`{"pattern": {"source": ["a"]}, "targets": [{"handler": "h", "webhook": "http://x/"}]}`,
		`{"pattern": {"source": ["a"]}, "targets": [{"id": "a", "handler": "h"}, {"id": "a", "handler": "h"}]}`,
		`{"pattern": null, "targets": []}`,
		`{"pattern": {}, "targets": [{"webhook": "ftp://x"}], "x": 1}`,
		`null`,
		``,
	} {
		f.Add("rule", []byte(s))
	}
	f.Fuzz(func(t *testing.T, name string, body []byte) {
		r, err := events.ParseRule(name, strings.NewReader(string(body)))
		if err != nil {
			return
		}
		if r.Name != name {
			t.Fatalf("rule named %q from name %q", r.Name, name)
		}
		if err := r.Check(); err != nil {
			t.Fatalf("accepted rule fails Check: %v\nbody: %q", err, body)
		}
		if _, err := pattern.Compile(r.Pattern); err != nil {
			t.Fatalf("accepted rule's pattern does not compile: %v\nbody: %q", err, body)
		}
		if len(r.Targets) == 0 || len(r.Targets) > 5 {
			t.Fatalf("accepted %d targets", len(r.Targets))
		}
		var v any
		if err := json.Unmarshal(body, &v); err != nil {
			t.Fatalf("accepted a body that is not one JSON value: %v\nbody: %q", err, body)
		}
	})
}

func mustJSON(t *testing.T, v any) string {
	t.Helper()
	data, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return string(data)
}
