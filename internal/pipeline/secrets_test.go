package pipeline

import (
	"context"
	"fmt"
	"strings"
	"testing"

	"github.com/scangate/scangate/internal/dnstest"
	"github.com/scangate/scangate/internal/egress"
	"github.com/scangate/scangate/internal/events"
	"github.com/scangate/scangate/internal/jobs"
	"github.com/scangate/scangate/internal/secret"
	"github.com/scangate/scangate/internal/store"
	"github.com/scangate/scangate/internal/storetest"
)

func newSealingService(t *testing.T) (*Service, *store.Store) {
	t.Helper()
	ctx := context.Background()
	st, err := store.OpenDatabase(ctx, storetest.Database(t), t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	if err := jobs.Migrate(ctx, st); err != nil {
		t.Fatal(err)
	}
	client, err := jobs.New(st, nil, jobs.Config{})
	if err != nil {
		t.Fatal(err)
	}
	// git.example.com resolves, for the put's check, to a public address
	// on the test's own DNS server.
	dns := dnstest.Start(t)
	dns.Set("git.example.com", "93.184.215.14")
	return New(st, events.NewBus(st, client, events.BusOptions{}), client, Options{Key: make([]byte, 32),
		Egress: egress.New(nil).WithResolver(dns.Resolver())}), st
}

const sealedExample = `name: shop
source: {url: 'https://ci:%s@git.example.com/shop.git', branch: main, webhook-secret: hook-s3cret}
build:
  repository: shop/api
  args: {VERSION: "1"}
  secret-args: {NPM_TOKEN: %s}
approval:
  policy:
    thresholds: {CRITICAL: 0}
`

func definitionWith(t *testing.T, token, npm string) *Definition {
	t.Helper()
	d, err := ParseDefinition([]byte(fmt.Sprintf(sealedExample, token, npm)))
	if err != nil {
		t.Fatal(err)
	}
	return d
}

func docs(t *testing.T, st *store.Store) []string {
	t.Helper()
	rows, err := st.Reader().Query(`SELECT doc FROM pipeline_versions ORDER BY version`)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var d string
		if err := rows.Scan(&d); err != nil {
			t.Fatal(err)
		}
		out = append(out, d)
	}
	return out
}

// Every version of a definition keeps its secrets sealed — the old one
// with the old secrets too — and opens to them; a key rotation seals them
// all again under the new key.
func TestDefinitionSecretsAreSealedInEveryVersion(t *testing.T) {
	ctx := context.Background()
	s, st := newSealingService(t)
	for _, v := range [][2]string{{"git-tok3n-1", "npm-s3cret-1"}, {"git-tok3n-2", "npm-s3cret-2"}} {
		if _, err := s.Put(ctx, definitionWith(t, v[0], v[1])); err != nil {
			t.Fatal(err)
		}
	}
	stored := docs(t, st)
	if len(stored) != 2 {
		t.Fatalf("%d versions stored", len(stored))
	}
	for _, doc := range stored {
		for _, sec := range []string{"git-tok3n", "npm-s3cret", "hook-s3cret"} {
			if strings.Contains(doc, sec) {
				t.Errorf("a stored version holds %s: %s", sec, doc)
			}
		}
		if !strings.Contains(doc, `"sealed":"sealed:k1:`) || !strings.Contains(doc, "git.example.com/shop.git") || !strings.Contains(doc, `"NPM_TOKEN":""`) {
			t.Errorf("stored version %s: want the secrets sealed, the repository and the arg's name shown", doc)
		}
	}
	v1, err := s.Get(ctx, "shop", 1)
	if err != nil {
		t.Fatal(err)
	}
	if v1.Source.URL != "https://ci:git-tok3n-1@git.example.com/shop.git" || v1.Source.WebhookSecret != "hook-s3cret" || v1.Build.SecretArgs["NPM_TOKEN"] != "npm-s3cret-1" {
		t.Errorf("version 1 opens to %+v %+v", v1.Source, v1.Build)
	}
	if got := v1.Build.AllArgs(); got["VERSION"] != "1" || got["NPM_TOKEN"] != "npm-s3cret-1" {
		t.Errorf("the build gets args %v", got)
	}
	if r := v1.ForReaders(); r.Build.Args["VERSION"] != "xxxxx" || r.Build.SecretArgs["NPM_TOKEN"] != "xxxxx" || strings.Contains(r.Source.URL, "tok3n") {
		t.Errorf("readers see %+v %+v", r.Source, r.Build)
	}

	keys := secret.InDataDir(st.DataDir())
	rot, err := keys.Rotate(ctx, st, Reseal)
	if err != nil || rot.Resealed != 2 {
		t.Fatalf("rotation %+v, %v; want both versions sealed again", rot, err)
	}
	for _, doc := range docs(t, st) {
		if !strings.Contains(doc, `"sealed":"sealed:k2:`) {
			t.Errorf("after the rotation: %s", doc)
		}
	}
	list, err := s.List(ctx)
	if err != nil || len(list) != 1 || list[0].Build.SecretArgs["NPM_TOKEN"] != "npm-s3cret-2" {
		t.Fatalf("after the rotation List = %+v, %v", list, err)
	}
}

// A definition an older scangate stored with its secrets in the clear is
// sealed by the Resealer the server runs when it starts.
func TestDefinitionStoredInTheClearIsSealed(t *testing.T) {
	ctx := context.Background()
	s, st := newSealingService(t)
	if _, err := st.Writer().Exec(`INSERT INTO pipelines (name, version, created_at, updated_at) VALUES ('old', 1, 'x', 'x')`); err != nil {
		t.Fatal(err)
	}
	if _, err := st.Writer().Exec(`INSERT INTO pipeline_versions (name, version, doc, created_at) VALUES ('old', 1, $1, 'x')`,
		`{"name":"old","source":{"url":"https://ci:git-tok3n@git.example.com/old.git","branch":"main","webhook-secret":"hook-s3cret"},"build":{"repository":"old/api"},"approval":{"policy":{"thresholds":{"CRITICAL":0}}},"version":1}`); err != nil {
		t.Fatal(err)
	}
	n, err := secret.InDataDir(st.DataDir()).ResealAll(ctx, st, Reseal)
	if err != nil || n != 1 {
		t.Fatalf("reseal: %d, %v", n, err)
	}
	if doc := docs(t, st)[0]; strings.Contains(doc, "git-tok3n") || strings.Contains(doc, "hook-s3cret") {
		t.Errorf("still in the clear: %s", doc)
	}
	d, err := s.Get(ctx, "old", 0)
	if err != nil || d.Source.URL != "https://ci:git-tok3n@git.example.com/old.git" || d.Source.WebhookSecret != "hook-s3cret" {
		t.Errorf("the sealed definition opens to %+v, %v", d, err)
	}
}

// The build log keeps no secret value, even one split across two writes
// or cut by the log's cap.
func TestBuildLogHidesSecretArgs(t *testing.T) {
	d := &Definition{Build: BuildSpec{SecretArgs: map[string]string{"A": "npm-s3cret", "B": "npm-s3cret-longer"}},
		Source: SourceSpec{URL: "https://ci:git-tok3n@git.example.com/x.git"}}
	l := &cappedLog{max: 1 << 10, hide: hider(d)}
	_, _ = l.Write([]byte("token=npm-s3"))
	_, _ = l.Write([]byte("cret and npm-s3cret-longer, fetched with git-tok3n\n"))
	if got := l.String(); got != "token=xxxxx and xxxxx, fetched with xxxxx\n" {
		t.Errorf("log %q", got)
	}
	small := &cappedLog{max: 20, hide: hider(d)}
	_, _ = small.Write([]byte("first line npm-s3cret-longer\nsecond line\n"))
	if got := small.String(); strings.Contains(got, "longer") || strings.Contains(got, "s3cret") {
		t.Errorf("capped log %q keeps part of a secret", got)
	}
}
