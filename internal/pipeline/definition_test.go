package pipeline

import (
	"strings"
	"testing"
	"time"
)

const example = `
name: shop-api
source:
  repository: shop-api
  branch: main
build:
  context: .
  dockerfile: Dockerfile
  args: {VERSION: "1"}
  repository: shop/api
approval:
  policy:
    thresholds: {CRITICAL: 0, HIGH: 0, MEDIUM: 5}
    ignore-unfixed: true
    exceptions:
      - id: CVE-2023-45853
        package: zlib1g
        reason: MiniZip is not built
        expires: 2027-01-31
  notify: approvals
deploy:
  cluster: default
  service: shop-api
  container: api
`

func TestParseDefinition(t *testing.T) {
	d, err := ParseDefinition([]byte(example))
	if err != nil {
		t.Fatal(err)
	}
	if d.Name != "shop-api" || d.Source.Repository != "shop-api" || d.Build.Repository != "shop/api" || d.Deploy.Container != "api" {
		t.Errorf("parsed %+v", d)
	}
	if time.Duration(d.Approval.Timeout) != DefaultApprovalTimeout {
		t.Errorf("timeout %v, want the 7-day default", time.Duration(d.Approval.Timeout))
	}
	p, err := d.Policy()
	if err != nil {
		t.Fatal(err)
	}
	if p.Thresholds["CRITICAL"] != 0 || p.Thresholds["MEDIUM"] != 5 || !p.IgnoreUnfixed || len(p.Ignores) != 1 ||
		p.Ignores[0].Expires != time.Date(2027, 1, 31, 0, 0, 0, 0, time.UTC) {
		t.Errorf("policy %+v", p)
	}
}

func TestParseDefinitionErrors(t *testing.T) {
	for _, tc := range []struct{ name, edit, want string }{
		{"unknown field", "name: shop-api\nnmae: x", "field nmae not found"},
		{"bad name", "name: Shop API", "pipeline name"},
		{"no source", "source:\n  branch: main", "either a hosted repository or an external url"},
		{"both sources", "source:\n  repository: a\n  url: https://example.com/a.git", "either a hosted repository"},
		{"bad branch", "source:\n  repository: a\n  branch: ../x", "not a branch name"},
		{"poll on hosted", "source:\n  repository: a\n  poll: 10s", "for external repositories"},
		{"fast poll", "source:\n  url: https://example.com/a.git\n  poll: 1s", "at most every 5s"},
		{"bad url", "source:\n  url: ssh://example.com/a.git", "want an http(s) git URL"},
		{"file url", "source:\n  url: file:///srv/git/a.git", "want an http(s) git URL"},
		{"no host", "source:\n  url: 'http:///a.git'", "want an http(s) git URL"},
		{"space in url", "source:\n  url: 'https://example.com/a b.git'", "want an http(s) git URL"},
		{"bad image repo", "build:\n  repository: Shop/API", "not an image repository"},
		{"escaping context", "build:\n  repository: a\n  context: ../secrets", "inside the repository"},
		{"no thresholds", "approval:\n  policy:\n    ignore-unfixed: true", "no thresholds"},
		{"bad severity", "approval:\n  policy:\n    thresholds: {SEVERE: 0}", "SEVERE"},
		{"exception without reason", "approval:\n  policy:\n    thresholds: {HIGH: 0}\n    exceptions: [{id: CVE-2023-1}]", "reason"},
		{"bad timeout", "approval:\n  policy:\n    thresholds: {HIGH: 0}\n  timeout: soon", "duration"},
		{"deploy without container", "deploy:\n  service: a", "container"},
		{"two documents", "---\n---\nname: b", "more than one"},
	} {
		doc := override(example, tc.edit)
		_, err := ParseDefinition([]byte(doc))
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: error %v, want %q", tc.name, err, tc.want)
		}
	}
	if _, err := ParseDefinition([]byte(strings.Repeat("#", MaxDefinitionSize+1))); err == nil {
		t.Error("an oversized definition was accepted")
	}
}

// override replaces the example's top-level sections that edit gives.
func override(base, edit string) string {
	if strings.HasPrefix(edit, "---") {
		return base + "\n" + edit
	}
	sections := map[string]string{}
	var order []string
	for _, doc := range []string{base, edit} {
		cur := ""
		for _, line := range strings.Split(strings.TrimSpace(doc), "\n") {
			if line != "" && line[0] != ' ' {
				cur = strings.SplitN(line, ":", 2)[0]
				if _, ok := sections[cur]; !ok {
					order = append(order, cur)
				}
				if doc == edit {
					sections[cur] = ""
				}
			}
			sections[cur] += line + "\n"
		}
	}
	var b strings.Builder
	for _, k := range order {
		b.WriteString(sections[k])
	}
	return b.String()
}

func FuzzParseDefinition(f *testing.F) {
	f.Add([]byte(example))
	f.Add([]byte("name: a\nsource: {url: 'https://x/y.git', poll: 7d}\nbuild: {repository: a}\napproval: {policy: {thresholds: {HIGH: 0}}}"))
	f.Add([]byte("a: &a [*a, *a]"))
	f.Fuzz(func(t *testing.T, data []byte) {
		d, err := ParseDefinition(data)
		if err != nil {
			return
		}
		if err := d.Check(); err != nil {
			t.Fatalf("accepted a definition that fails Check: %v", err)
		}
		if _, err := d.Policy(); err != nil {
			t.Fatalf("accepted a definition without a valid policy: %v", err)
		}
	})
}

func TestRedacted(t *testing.T) {
	d, err := ParseDefinition([]byte(override(example, "source:\n  url: 'https://ci:s3cret-token@git.example.com/a.git'\n  webhook-secret: hook-s3cret")))
	if err != nil {
		t.Fatal(err)
	}
	r := d.Redacted()
	if strings.Contains(r.Source.URL, "s3cret") || !strings.Contains(r.Source.URL, "git.example.com/a.git") || r.Source.WebhookSecret != "xxxxx" {
		t.Errorf("redacted source %+v", r.Source)
	}
	if d.Source.URL != "https://ci:s3cret-token@git.example.com/a.git" || d.Source.WebhookSecret != "hook-s3cret" {
		t.Errorf("Redacted changed the definition: %+v", d.Source)
	}
}
