package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/scangate/scangate/internal/auth"
	"github.com/scangate/scangate/internal/logbuf"
	"github.com/scangate/scangate/internal/pipeline"
	"github.com/scangate/scangate/internal/server"
	"github.com/scangate/scangate/internal/servertest"
)

// docker runs the docker CLI with a configuration folder of its own, so
// that its logins neither read nor change the user's.
func (h *harness) docker(config string, stdin string, args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "docker", append([]string{"--config", config}, args...)...)
	cmd.Stdin = strings.NewReader(stdin)
	out, err := cmd.CombinedOutput()
	return string(out), err
}

// gitTry runs git in dir, returning its output and error rather than
// failing the test.
func (h *harness) gitTry(dir string, args ...string) (string, error) {
	cmd := exec.Command("git", args...)
	cmd.Dir = dir
	cmd.Env = h.env
	out, err := cmd.CombinedOutput()
	return string(out), err
}

// Per-repository grants, pipeline tags and protected branches, as their
// users meet them: a pusher scoped to shop/* logs in with docker, pushes
// shop/api and is refused billing/api (push and pull); its catalog lists
// shop/* alone. The tags a pipeline pushed and promoted cannot be pushed
// over or deleted by that pusher, nor deleted by an admin. The branch the
// pipeline builds refuses the pusher's force push and deletion (git prints
// the reason) and lets an admin do both. Every refusal is in the audit log.
func TestGrants(t *testing.T) {
	t.Parallel()
	logs := &logbuf.Buffer{}
	h := newHarness(t, servertest.Options{Feeds: []string{"debian", "ghsa", "nvd"},
		Config: server.Config{Logger: slog.New(slog.NewTextHandler(logs, nil))}})
	clean := h.appBase("grants", "")

	// The scope through the API: created, listed; an admin cannot have one.
	var created struct {
		Secret string
		Token  auth.Token
	}
	h.decode(h.api("POST", "/api/v1/tokens", map[string]any{"name": "shop-ci", "role": "pusher",
		"repositories": []string{"shop/*"}}, http.StatusCreated), &created)
	shop := created.Secret
	if created.Token.Repositories.String() != "shop/*" {
		t.Errorf("created token's repositories: %q", created.Token.Repositories)
	}
	var list struct{ Tokens []auth.Token }
	h.decode(h.api("GET", "/api/v1/tokens", nil, http.StatusOK), &list)
	if i := slices.IndexFunc(list.Tokens, func(tk auth.Token) bool { return tk.Name == "shop-ci" }); i < 0 || list.Tokens[i].Repositories.String() != "shop/*" {
		t.Errorf("token list: %+v", list.Tokens)
	}
	h.api("POST", "/api/v1/tokens", map[string]any{"name": "root2", "role": "admin", "repositories": []string{"shop/*"}}, http.StatusBadRequest)
	h.api("POST", "/api/v1/tokens", map[string]any{"name": "bad", "role": "reader", "repositories": []string{"shop/[ab]"}}, http.StatusBadRequest)

	// docker login, push and pull with the scoped token.
	cfg := t.TempDir()
	if out, err := h.docker(cfg, shop+"\n", "login", h.s.Addr, "--username", "ci", "--password-stdin"); err != nil {
		t.Fatalf("docker login: %v\n%s", err, out)
	}
	// The base is in the registry (builds take it from there); an admin
	// pulls it into the engine to tag it.
	adminCfg := t.TempDir()
	if out, err := h.docker(adminCfg, h.s.Token+"\n", "login", h.s.Addr, "--username", "admin", "--password-stdin"); err != nil {
		t.Fatalf("docker login as admin: %v\n%s", err, out)
	}
	if out, err := h.docker(adminCfg, "", "pull", clean); err != nil {
		t.Fatalf("docker pull %s: %v\n%s", clean, err, out)
	}
	shopRef, billingRef := h.s.Addr+"/shop/api:1", h.s.Addr+"/billing/api:1"
	t.Cleanup(func() { _, _ = h.docker(cfg, "", "rmi", "-f", shopRef, billingRef) })
	for _, ref := range []string{shopRef, billingRef} {
		if out, err := h.docker(cfg, "", "tag", clean, ref); err != nil {
			t.Fatalf("docker tag: %v\n%s", err, out)
		}
	}
	if out, err := h.docker(cfg, "", "push", shopRef); err != nil {
		t.Fatalf("a shop/* pusher pushes shop/api: %v\n%s", err, out)
	}
	out, err := h.docker(cfg, "", "push", billingRef)
	if err == nil || !strings.Contains(out, "denied") || !strings.Contains(out, "not granted repository billing/api") {
		t.Fatalf("a shop/* pusher pushes billing/api: %v\n%s", err, out)
	}
	// An admin pushes billing/api; the scoped token still cannot pull it.
	if out, err := h.docker(adminCfg, "", "push", billingRef); err != nil {
		t.Fatalf("an admin pushes billing/api: %v\n%s", err, out)
	}
	if out, err := h.docker(cfg, "", "rmi", billingRef); err != nil {
		t.Fatalf("docker rmi: %v\n%s", err, out)
	}
	out, err = h.docker(cfg, "", "pull", billingRef)
	if err == nil || !strings.Contains(out, "denied") {
		t.Fatalf("a shop/* token pulls billing/api: %v\n%s", err, out)
	}
	if out, err := h.docker(cfg, "", "pull", shopRef); err != nil {
		t.Fatalf("a shop/* token pulls shop/api: %v\n%s", err, out)
	}
	catalog := func(token string) []string {
		req, _ := http.NewRequest(http.MethodGet, "http://"+h.s.Addr+"/v2/_catalog", nil)
		req.SetBasicAuth("ci", token)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var page struct{ Repositories []string }
		if err := json.NewDecoder(resp.Body).Decode(&page); err != nil || resp.StatusCode != http.StatusOK {
			t.Fatalf("catalog: %d %v", resp.StatusCode, err)
		}
		return page.Repositories
	}
	if got := catalog(shop); !slices.Equal(got, []string{"shop/api"}) {
		t.Errorf("the shop/* token's catalog: %q, want [shop/api]", got)
	}
	if got := catalog(h.s.Token); !slices.Contains(got, "billing/api") || !slices.Contains(got, "shop/api") {
		t.Errorf("the admin's catalog: %q", got)
	}

	// A pipeline on the hosted repository shop/app (in the token's scope,
	// for git too), building into shop/app, and a second one on its
	// release branch.
	h.api("POST", "/api/v1/repositories", map[string]string{"name": "shop/app"}, http.StatusCreated)
	for _, p := range []struct{ name, branch string }{{"app", "main"}, {"app-release", "release"}} {
		h.api("PUT", "/api/v1/pipelines/"+p.name, []byte(fmt.Sprintf(`name: %s
source: {repository: shop/app, branch: %s}
build: {repository: shop/%s}
approval:
  policy:
    thresholds: {CRITICAL: 0}
`, p.name, p.branch, p.name)), http.StatusOK)
	}
	dir := filepath.Join(t.TempDir(), "clone")
	h.git("", "clone", "--quiet", fmt.Sprintf("http://ci:%s@%s/git/shop/app.git", shop, h.s.Addr), dir)
	commit := h.commit(dir, "first", map[string]string{"Dockerfile": "FROM " + clean + "\n"})
	h.git(dir, "push", "--quiet", "origin", "HEAD:release")
	ex := h.waitExecution("app", commit, 3*time.Minute)
	if ex.Status != pipeline.StateSucceeded {
		t.Fatalf("execution %s: %s (%s)", ex.ID, ex.Status, ex.Reason)
	}
	h.waitTagged("shop/app", "latest", ex.ImageDigest, 30*time.Second)

	// The API: a token scoped to billing/* sees neither shop/app's pipeline
	// nor its execution, images or findings, and may not answer its
	// approval; the shop/* token sees them.
	var billing struct{ Secret string }
	h.decode(h.api("POST", "/api/v1/tokens", map[string]any{"name": "billing-approver", "role": "approver",
		"repositories": []string{"billing/*"}}, http.StatusCreated), &billing)
	var exs struct{ Executions []pipeline.Execution }
	h.decode(h.as(billing.Secret, "GET", "/api/v1/executions", nil, http.StatusOK), &exs)
	if len(exs.Executions) != 0 {
		t.Errorf("a billing/* token lists %d executions of shop/* pipelines", len(exs.Executions))
	}
	h.decode(h.as(shop, "GET", "/api/v1/executions?pipeline=app", nil, http.StatusOK), &exs)
	if len(exs.Executions) != 1 {
		t.Errorf("the shop/* token lists %d executions of app, want 1", len(exs.Executions))
	}
	for _, path := range []string{"/api/v1/executions/" + ex.ID, "/api/v1/executions/" + ex.ID + "/log",
		"/api/v1/executions/" + ex.ID + "/approval", "/api/v1/pipelines/app", "/api/v1/findings?image=shop/app@" + ex.ImageDigest} {
		h.as(billing.Secret, "GET", path, nil, http.StatusForbidden)
	}
	h.as(billing.Secret, "POST", "/api/v1/executions/"+ex.ID+"/approval",
		map[string]string{"decision": "reject", "comment": "not mine", "token": strings.Repeat("0", 64)}, http.StatusForbidden)
	h.as(shop, "GET", "/api/v1/executions/"+ex.ID, nil, http.StatusOK)
	h.as(shop, "GET", "/api/v1/findings?image=shop/app@"+ex.ImageDigest, nil, http.StatusOK)
	var images struct{ Images []struct{ Repository string } }
	h.decode(h.as(billing.Secret, "GET", "/api/v1/images", nil, http.StatusOK), &images)
	for _, im := range images.Images {
		if !strings.HasPrefix(im.Repository, "billing/") {
			t.Errorf("a billing/* token lists an image of %s", im.Repository)
		}
	}
	if len(images.Images) == 0 {
		t.Error("a billing/* token lists no image of billing/api")
	}

	// A deployer scoped to shop/* registers task definitions of shop/*
	// images only.
	var deployer struct{ Secret string }
	h.decode(h.api("POST", "/api/v1/tokens", map[string]any{"name": "shop-deployer", "role": "deployer",
		"repositories": []string{"shop/*"}}, http.StatusCreated), &deployer)
	taskDef := func(family, image string) []byte {
		return []byte(fmt.Sprintf(`{"family": %q, "containerDefinitions": [{"name": "app", "image": %q, "memory": 64}]}`, family, image))
	}
	h.as(deployer.Secret, "POST", "/api/v1/task-definitions", taskDef("billing", billingRef), http.StatusForbidden)
	h.as(deployer.Secret, "POST", "/api/v1/task-definitions", taskDef("shop", h.s.Addr+"/shop/app@"+ex.ImageDigest), http.StatusCreated)

	// The pipeline's tags: the scoped pusher may push shop/app, but not
	// over latest or the commit tag; an admin may not delete them.
	for _, tag := range []string{"latest", commit} {
		ref := h.s.Addr + "/shop/app:" + tag
		if out, err := h.docker(cfg, "", "tag", clean, ref); err != nil {
			t.Fatalf("docker tag: %v\n%s", err, out)
		}
		t.Cleanup(func() { _, _ = h.docker(cfg, "", "rmi", "-f", ref) })
		out, err := h.docker(cfg, "", "push", ref)
		if err == nil || !strings.Contains(out, "denied") || !strings.Contains(out, "is immutable: pipeline app") {
			t.Fatalf("push over shop/app:%s: %v\n%s", tag, err, out)
		}
		req, _ := http.NewRequest(http.MethodDelete, "http://"+h.s.Addr+"/v2/shop/app/manifests/"+tag, nil)
		req.SetBasicAuth("admin", h.s.Token)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusForbidden {
			t.Errorf("an admin deletes shop/app:%s: %s, want 403", tag, resp.Status)
		}
	}
	if d := h.tagged("shop/app", "latest"); d != ex.ImageDigest {
		t.Errorf("shop/app:latest names %s after the refused pushes, want %s", d, ex.ImageDigest)
	}
	other := h.s.Addr + "/shop/app:mine"
	if out, err := h.docker(cfg, "", "tag", clean, other); err != nil {
		t.Fatalf("docker tag: %v\n%s", err, out)
	}
	t.Cleanup(func() { _, _ = h.docker(cfg, "", "rmi", "-f", other) })
	if out, err := h.docker(cfg, "", "push", other); err != nil {
		t.Fatalf("push of a tag of its own to shop/app: %v\n%s", err, out)
	}

	// Protected branches: the pusher's force push and deletion are refused,
	// with the reason in git's output.
	h.git(dir, "commit", "--quiet", "--amend", "-m", "rewritten")
	rewritten := h.git(dir, "rev-parse", "HEAD")
	out, err = h.gitTry(dir, "push", "--force", "origin", "HEAD:main")
	if err == nil || !strings.Contains(out, "! [remote rejected] HEAD -> main (protected branch: force-push needs the admin role)") {
		t.Fatalf("a pusher's force push: %v\n%s", err, out)
	}
	out, err = h.gitTry(dir, "push", "origin", ":release")
	if err == nil || !strings.Contains(out, "! [remote rejected] release (protected branch: deletion needs the admin role)") {
		t.Fatalf("a pusher's deletion: %v\n%s", err, out)
	}
	h.git(dir, "remote", "set-url", "origin", fmt.Sprintf("http://admin:%s@%s/git/shop/app.git", h.s.Token, h.s.Addr))
	h.git(dir, "push", "--quiet", "--force", "origin", "HEAD:main")
	h.git(dir, "push", "--quiet", "origin", ":release")
	heads := h.git(dir, "ls-remote", "--heads", "origin")
	if !strings.Contains(heads, rewritten+"\trefs/heads/main") || strings.Contains(heads, "refs/heads/release") {
		t.Errorf("after the admin's force push and deletion: %s", heads)
	}

	// Every refusal is audit-logged, naming the token.
	log := logs.String()
	for _, want := range [][]string{
		{`msg="audit: registry request refused"`, "token=shop-ci", "path=/v2/billing/api/", `reason="not in the token's repositories"`},
		{`msg="audit: registry request refused"`, "token=shop-ci", "method=GET", "path=/v2/billing/api/manifests/1"},
		{`msg="audit: registry request refused"`, "token=shop-ci", "method=PUT", "path=/v2/shop/app/manifests/latest", "is immutable"},
		{`msg="audit: registry request refused"`, "token=test-admin", "method=DELETE", "path=/v2/shop/app/manifests/latest"},
		{`msg="audit: API request refused"`, "token=billing-approver", "method=POST", "repository=shop/app"},
		{`msg="audit: git push refused"`, "token=shop-ci", "repo=shop/app", "ref=refs/heads/main", `reason="protected branch: force-push needs the admin role"`},
		{`msg="audit: git push refused"`, "token=shop-ci", "repo=shop/app", "ref=refs/heads/release", `reason="protected branch: deletion needs the admin role"`},
	} {
		if !slices.ContainsFunc(strings.Split(log, "\n"), func(line string) bool {
			return !slices.ContainsFunc(want, func(w string) bool { return !strings.Contains(line, w) })
		}) {
			t.Errorf("no log line has all of %q", want)
		}
	}
	if strings.Contains(log, shop) || strings.Contains(log, h.s.Token) {
		t.Error("a token's secret is in the log")
	}
}
