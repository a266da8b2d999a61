package console

import (
	"fmt"
	"html/template"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/scangate/scangate/internal/scan"
)

var funcs = template.FuncMap{
	"when":     when,
	"short":    short,
	"shortSHA": shortSHA,
	"sevClass": sevClass,
	"stateClass": func(s string) string {
		return "state-" + strings.ToLower(strings.ReplaceAll(s, "_", "-"))
	},
	"dur":       dur,
	"q":         url.QueryEscape,
	"path":      url.PathEscape,
	"join":      strings.Join,
	"counts":    countsList,
	"imageRef":  func(repo, digest string) string { return repo + "@" + digest },
	"add":       func(a, b int) int { return a + b },
	"list":      func(s ...string) []string { return s },
	"clip":      clip,
	"sevRankOf": sevRank,
}

// when writes a time as a <time> element: UTC in the page (readable
// without JavaScript), turned into the viewer's zone by console.js, with
// the absolute time on hover.
func when(v any) template.HTML {
	var t time.Time
	switch x := v.(type) {
	case time.Time:
		t = x
	case *time.Time:
		if x == nil {
			return "—"
		}
		t = *x
	default:
		return ""
	}
	if t.IsZero() {
		return "—"
	}
	u := t.UTC()
	return template.HTML(fmt.Sprintf(`<time datetime="%s" title="%s">%s</time>`,
		u.Format(time.RFC3339), u.Format("2006-01-02 15:04:05 UTC"), u.Format("2006-01-02 15:04 UTC")))
}

// dur is how long from a to b (or until now, if b is nil).
func dur(a, b *time.Time) string {
	if a == nil {
		return ""
	}
	end := time.Now()
	if b != nil {
		end = *b
	}
	return end.Sub(*a).Round(time.Second).String()
}

// short is a digest's first 12 hex digits, as docker shows image IDs.
func short(d string) string {
	_, hex, ok := strings.Cut(d, ":")
	if !ok {
		hex = d
	}
	if len(hex) > 12 {
		hex = hex[:12]
	}
	return hex
}

func shortSHA(s string) string {
	if len(s) > 8 {
		return s[:8]
	}
	return s
}

// sevClass is a severity's style; its name is always written beside it, so
// colour is never the only sign.
func sevClass(s string) string { return "sev sev-" + strings.ToLower(s) }

type sevCount struct {
	Severity string
	N        int
}

// countsList lists the non-zero counts, worst first.
func countsList(c scan.Counts) []sevCount {
	var out []sevCount
	for _, x := range []sevCount{{"CRITICAL", c.Critical}, {"HIGH", c.High}, {"MEDIUM", c.Medium}, {"LOW", c.Low}, {"UNKNOWN", c.Unknown}} {
		if x.N > 0 {
			out = append(out, x)
		}
	}
	return out
}

// severities, worst first.
var severities = []string{"CRITICAL", "HIGH", "MEDIUM", "LOW", "UNKNOWN"}

func sevRank(s string) int {
	for i, x := range severities {
		if x == s {
			return i
		}
	}
	return len(severities)
}

// worst is the worst severity counted in c, or "".
func worst(c scan.Counts) string {
	if l := countsList(c); len(l) > 0 {
		return l[0].Severity
	}
	return ""
}

// commitCache remembers commits' authors and subjects, which never change,
// so that a page of executions costs at most one git process.
type commitCache struct {
	mu  sync.Mutex
	max int
	m   map[string]commitInfo
}

type commitInfo struct{ Author, Subject string }

func newCommitCache(max int) *commitCache { return &commitCache{max: max, m: map[string]commitInfo{}} }

func (cc *commitCache) get(sha string) (commitInfo, bool) {
	cc.mu.Lock()
	defer cc.mu.Unlock()
	ci, ok := cc.m[sha]
	return ci, ok
}

func (cc *commitCache) put(sha string, ci commitInfo) {
	cc.mu.Lock()
	defer cc.mu.Unlock()
	if len(cc.m) >= cc.max {
		clear(cc.m) // rare; a page refills what it needs
	}
	cc.m[sha] = ci
}

// clip shortens an advisory's title for a table cell; the whole text is on
// the advisory's page.
func clip(s string) string {
	if r := []rune(s); len(r) > 140 {
		return strings.TrimSpace(string(r[:140])) + "…"
	}
	return s
}
