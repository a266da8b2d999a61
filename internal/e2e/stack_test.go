package e2e

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/scangate/scangate/internal/deploy"
	"github.com/scangate/scangate/internal/pipeline"
	"github.com/scangate/scangate/internal/scanner"
	"github.com/scangate/scangate/internal/servertest"
)

// stackFile is a stack of every kind of resource: the app's repository
// with a Dockerfile as its content, built by a pipeline whose policy lets
// it through and deploys it to a service at desired count 0.
func stackFile(id, base, threshold string) string {
	return fmt.Sprintf(`name: st-%[1]s
parameters:
  cluster: {default: st-%[1]s}
tokens:
  - {name: st-ci-%[1]s, role: pusher}
repositories:
  - {name: st-app-%[1]s, content: app}
clusters:
  - clusterName: ${cluster}
task-definitions:
  - family: st-%[1]s
    containerDefinitions:
      - {name: app, image: "%[2]s", entryPoint: [/app], portMappings: [{containerPort: 8080}], memory: 64}
services:
  - {clusterName: "${cluster}", serviceName: web, taskDefinition: st-%[1]s}
rules:
  - name: st-%[1]s
    pattern: {source: [scangate.pipeline], detail: {pipeline: [st-%[1]s]}}
    targets: [{id: hook, webhook: "http://127.0.0.1:9/st", secret: s3cret}]
pipelines:
  - name: st-%[1]s
    source: {repository: st-app-%[1]s, branch: main}
    build: {repository: st/app-%[1]s}
    approval:
      policy: {thresholds: {CRITICAL: %[3]s, HIGH: 1000}}
    deploy: {cluster: "${cluster}", service: web, container: app}
`, id, base, threshold)
}

// up, a second up, a change, a conflict and down against a real server:
// up makes what the stack file names and pushes the repository's content,
// whose commit runs through the pipeline; a second up changes nothing;
// down asks, then removes what the stack made (with --purge, the images
// its pipeline built) and nothing else.
func TestStackUpDown(t *testing.T) {
	t.Parallel()
	h := newHarness(t, servertest.Options{})
	admin := h.file("admin.token", h.s.Token)
	ctx := context.Background()
	id := h.id

	// What the stack did not make, and must survive its down.
	h.api("POST", "/api/v1/repositories", map[string]string{"name": "keep-" + id}, http.StatusCreated)
	keepCluster := h.cluster("keep")
	h.api("POST", "/api/v1/tokens", map[string]string{"name": "keep-" + id, "role": "reader"}, http.StatusCreated)
	h.api("PUT", "/api/v1/rules/keep-"+id, map[string]any{"pattern": map[string]any{"source": []string{"x"}},
		"targets": []map[string]string{{"id": "a", "webhook": "http://127.0.0.1:9/keep"}}}, http.StatusNoContent)
	base := h.pushApp("st/base-" + id)

	dir := t.TempDir()
	if err := os.MkdirAll(filepath.Join(dir, "app"), 0o755); err != nil {
		t.Fatal(err)
	}
	h.writeStackFile(filepath.Join(dir, "app", "Dockerfile"), "FROM "+base+"\nLABEL made-by=stack-test\n")
	file := filepath.Join(dir, "stack.yaml")
	h.writeStackFile(file, stackFile(id, base, "1000"))

	// --dry-run: the plan, and nothing made.
	out := h.must(admin, "up", "-f", file, "--dry-run")
	if !strings.Contains(out, "7 to create, 0 to change, 0 to delete, 0 left as they are") || !servertest.HasLine(out, "create", "pipeline", "st-"+id) {
		t.Fatalf("dry run's plan:\n%s", out)
	}
	h.api("GET", "/api/v1/stacks/st-"+id, nil, http.StatusNotFound)
	h.api("GET", "/api/v1/pipelines/st-"+id, nil, http.StatusNotFound)

	out = h.must(admin, "up", "-f", file)
	for _, want := range []string{"created token st-ci-" + id, "created repository st-app-" + id, "created cluster st-" + id,
		"created task-definition st-" + id, "created service st-" + id + "/web", "created rule st-" + id, "created pipeline st-" + id,
		"to repository st-app-" + id} {
		if !strings.Contains(out, want) {
			t.Errorf("up's output lacks %q:\n%s", want, out)
		}
	}
	// The token's secret is printed once, and works.
	_, rest, ok := strings.Cut(out, "shown this once: ")
	secret, _, _ := strings.Cut(rest, "\n")
	if !ok || !strings.HasPrefix(secret, "sgt_") {
		t.Fatalf("no secret in up's output:\n%s", out)
	}
	if st := stackAPIStatus(t, h.s.Addr, secret, "GET", "/api/v1/images"); st != http.StatusOK {
		t.Errorf("the stack's token: GET images answered %d", st)
	}
	svc := h.service("st-"+id, "web")
	if svc.DesiredCount != 0 {
		t.Errorf("service's desired count %d, want 0", svc.DesiredCount)
	}
	// The content's commit, pushed with real git, runs through the
	// pipeline: built, approved, deployed as revision 2.
	var ex *pipeline.Execution
	h.waitFor("an execution of the content's commit", 2*time.Minute, func() bool {
		var list struct{ Executions []*pipeline.Execution }
		h.decode(h.api("GET", "/api/v1/executions?pipeline=st-"+id, nil, http.StatusOK), &list)
		if len(list.Executions) == 1 && list.Executions[0].Status != pipeline.StateInProgress {
			ex = list.Executions[0]
		}
		return ex != nil
	})
	if ex.Status != "Succeeded" {
		t.Fatalf("execution of the content: %s (%s)", ex.Status, ex.Reason)
	}
	if msg := h.git(t.TempDir(), "-c", "http.extraHeader=Authorization: Bearer "+h.s.Token, "ls-remote", h.stackGitURL("st-app-"+id)); !strings.Contains(msg, ex.Commit) {
		t.Errorf("the repository's head is not the execution's commit %s:\n%s", ex.Commit, msg)
	}

	// A second up changes nothing, though a deploy made revision 2 and
	// someone set the service's desired count.
	h.api("PATCH", "/api/v1/clusters/st-"+id+"/services/web", map[string]any{"desiredCount": 0}, http.StatusOK)
	out = h.must(admin, "up", "-f", file)
	if !strings.Contains(out, "0 to create, 0 to change, 0 to delete, 7 left as they are") || !strings.Contains(out, "nothing to do") {
		t.Errorf("second up:\n%s", out)
	}
	var tds struct{ TaskDefinitions []deploy.TaskDefinition }
	h.decode(h.api("GET", "/api/v1/task-definitions?family=st-"+id, nil, http.StatusOK), &tds)
	if len(tds.TaskDefinitions) != 2 {
		t.Errorf("%d revisions after the second up, want 2 (up's and the deploy's)", len(tds.TaskDefinitions))
	}

	// A change to the file changes that resource only.
	h.writeStackFile(file, stackFile(id, base, "999"))
	out = h.must(admin, "up", "-f", file)
	if !strings.Contains(out, "0 to create, 1 to change, 0 to delete, 6 left as they are") || !strings.Contains(out, "changed pipeline st-"+id) {
		t.Errorf("up after a change:\n%s", out)
	}
	var def pipeline.Definition
	h.decode(h.api("GET", "/api/v1/pipelines/st-"+id, nil, http.StatusOK), &def)
	if def.Version != 2 || def.Approval.Policy.Thresholds["CRITICAL"] != 999 {
		t.Errorf("pipeline after the change: version %d, thresholds %v", def.Version, def.Approval.Policy.Thresholds)
	}

	// Another stack that names what this one did not make is refused,
	// with the file and line.
	other := filepath.Join(dir, "other.yaml")
	h.writeStackFile(other, "name: other-"+id+"\nrepositories:\n  - name: keep-"+id+"\n")
	r := h.cli(ctx, nil, admin, "up", "-f", other)
	if r.code != 2 || !strings.Contains(r.stderr, "other.yaml:3: repository keep-"+id+" exists and is not the stack's") {
		t.Errorf("up of a stack naming another's repository: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	// A bad file: its line and field.
	bad := filepath.Join(dir, "bad.yaml")
	h.writeStackFile(bad, "name: bad\nclusters:\n  - clusterName: a\n    size: 3\n")
	r = h.cli(ctx, nil, admin, "up", "-f", bad)
	if r.code != 2 || !strings.Contains(r.stderr, "bad.yaml:4: clusters[0].size: no such field") {
		t.Errorf("up of a bad file: exit %d\n%s", r.code, r.stderr)
	}

	// down asks first: with no answer, nothing goes.
	r = h.cli(ctx, nil, admin, "down", "-f", file)
	if r.code == 0 || !strings.Contains(r.stderr, "not confirmed") {
		t.Fatalf("down without --yes: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	h.api("GET", "/api/v1/pipelines/st-"+id, nil, http.StatusOK)

	out = h.must(admin, "down", "-f", file, "--yes", "--purge")
	if !strings.Contains(out, "7 to delete") || !strings.Contains(out, "stack st-"+id+": down") {
		t.Errorf("down:\n%s", out)
	}
	// Gone: everything the stack made, and its pipeline's images.
	h.api("GET", "/api/v1/stacks/st-"+id, nil, http.StatusNotFound)
	h.api("GET", "/api/v1/pipelines/st-"+id, nil, http.StatusNotFound)
	h.api("GET", "/api/v1/clusters/st-"+id+"/services/web", nil, http.StatusNotFound)
	h.decode(h.api("GET", "/api/v1/task-definitions?family=st-"+id, nil, http.StatusOK), &tds)
	for _, td := range tds.TaskDefinitions {
		if td.Status == deploy.StatusActive {
			t.Errorf("task definition %s still ACTIVE after down", td.Ref())
		}
	}
	if st := stackAPIStatus(t, h.s.Addr, secret, "GET", "/api/v1/images"); st != http.StatusUnauthorized {
		t.Errorf("the stack's token after down: %d, want 401", st)
	}
	var imgs struct{ Images []scanner.Image }
	h.decode(h.api("GET", "/api/v1/images?repository="+url.QueryEscape("st/app-"+id), nil, http.StatusOK), &imgs)
	if len(imgs.Images) != 0 {
		t.Errorf("the pipeline's images after down --purge: %v", imgs.Images)
	}
	listed := func(path string) string { return string(h.api("GET", path, nil, http.StatusOK)) }
	repos, clusters, tokens, rules := listed("/api/v1/repositories"), listed("/api/v1/clusters"), listed("/api/v1/tokens"), listed("/api/v1/rules")
	for _, gone := range []struct{ list, name string }{{repos, `"st-app-` + id}, {clusters, `"st-` + id + `"`}, {tokens, `"st-ci-` + id}, {rules, `"st-` + id + `"`}} {
		if strings.Contains(gone.list, gone.name) {
			t.Errorf("%s is still there after down: %s", gone.name, gone.list)
		}
	}
	// Kept: what the stack did not make.
	for _, kept := range []struct{ list, name string }{{repos, `"keep-` + id}, {clusters, `"` + keepCluster + `"`}, {tokens, `"keep-` + id}, {rules, `"keep-` + id}} {
		if !strings.Contains(kept.list, kept.name) {
			t.Errorf("%s is gone after down; the stack did not make it", kept.name)
		}
	}
	h.decode(h.api("GET", "/api/v1/images?repository="+url.QueryEscape("st/base-"+id), nil, http.StatusOK), &imgs)
	if len(imgs.Images) != 1 {
		t.Errorf("the base image the stack did not push: %d images after down, want 1", len(imgs.Images))
	}

	// And up again makes it all afresh.
	out = h.must(admin, "up", "-f", file, "--dry-run")
	if !strings.Contains(out, "7 to create") {
		t.Errorf("up after down:\n%s", out)
	}
}

func (h *harness) writeStackFile(path, body string) {
	h.t.Helper()
	if err := os.WriteFile(path, []byte(body), 0o644); err != nil {
		h.t.Fatal(err)
	}
}

// stackGitURL is a hosted repository's URL; git gets the token in a header.
func (h *harness) stackGitURL(name string) string {
	return "http://" + h.s.Addr + "/git/" + name + ".git"
}

// stackAPIStatus calls the API with token and returns the status.
func stackAPIStatus(t *testing.T, addr, token, method, path string) int {
	t.Helper()
	req, err := http.NewRequest(method, "http://"+addr+path, nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	return resp.StatusCode
}
