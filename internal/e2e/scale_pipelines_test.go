package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/scangate/scangate/internal/apptest"
	"github.com/scangate/scangate/internal/deploy"
	"github.com/scangate/scangate/internal/engine"
	"github.com/scangate/scangate/internal/events"
	"github.com/scangate/scangate/internal/imagetest"
	"github.com/scangate/scangate/internal/pipeline"
	"github.com/scangate/scangate/internal/servertest"
)

// replicaPipelines are pipelines with deploys on a cluster of replicas:
// each a hosted repository, a pipeline that builds, gates and deploys it
// to a service of its own, and the commit pushed to start it, all through
// the proxy (the replicas' --registry-host).
type replicaPipelines struct {
	c       *cluster
	cluster string
	names   []string
	commits []string
	env     []string
}

// startPipelines makes n pipelines on c and pushes a commit to each; the
// executions run while the caller goes on.
func (c *cluster) startPipelines(t *testing.T, ctx context.Context, n int) *replicaPipelines {
	t.Helper()
	if out, err := exec.Command("docker", "version", "--format", "{{.Server.APIVersion}}").CombinedOutput(); err != nil {
		t.Fatalf("pipelines on replicas need a running Docker Engine: %v\n%s", err, out)
	}
	p := &replicaPipelines{c: c, cluster: "scale-" + c.id, env: gitEnv(t)}
	c.afterStop = append(c.afterStop, p.removeContainers)
	// The app on a clean Debian base (no findings: the policy approves),
	// pushed through the proxy as a user's base is.
	img := imagetest.Build(t, imagetest.Layer(t,
		imagetest.Entry{Name: "etc/os-release", Body: imagetest.ReadFixture(t, "debian", "os-release")},
		imagetest.Entry{Name: "var/lib/dpkg/status", Body: ""},
		imagetest.Entry{Name: "app", Body: string(apptest.Binary(t)), Mode: 0o755},
		imagetest.Entry{Name: "etc/scangate-test-id", Body: c.id + "\n"}))
	baseRef := "base/app-" + c.id + ":1"
	if err := c.pushRetrying(ctx, baseRef, img); err != nil {
		t.Fatal(err)
	}
	id, err := img.ConfigName()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { servertest.RemoveImageFamily(t, id.String()) })
	digest, err := img.Digest()
	if err != nil {
		t.Fatal(err)
	}
	base := c.host() + "/" + baseRef
	placeholder := c.host() + "/base/app-" + c.id + "@" + digest.String()

	// A service's first task definition is checked against the base's
	// scan.
	waitUntilCtx(t, ctx, "the base's scan", func() bool {
		code, body := c.api(t, http.MethodGet, "/api/v1/images?repository=base/app-"+c.id, nil)
		var list struct {
			Images []struct{ Digest, ScanStatus string }
		}
		return code == http.StatusOK && json.Unmarshal(body, &list) == nil && len(list.Images) == 1 && list.Images[0].ScanStatus == "COMPLETE"
	})
	c.apiWant(t, http.MethodPost, "/api/v1/clusters", fmt.Sprintf(`{"clusterName": %q}`, p.cluster), http.StatusCreated)
	for i := range n {
		name := fmt.Sprintf("p%d-%s", i, c.id)
		// The service first, as the seed makes it: at desired count 0 on an
		// image no pipeline approved, then 1; it runs nothing until its
		// pipeline deploys.
		c.apiWant(t, http.MethodPost, "/api/v1/task-definitions", fmt.Sprintf(`{"family": %q, "containerDefinitions": [{"name": "app",
			"image": %q, "entryPoint": ["/app"], "portMappings": [{"containerPort": 8080}], "memory": 64}]}`, name, placeholder), http.StatusCreated)
		c.apiWant(t, http.MethodPost, "/api/v1/services", fmt.Sprintf(`{"clusterName": %q, "serviceName": %q, "taskDefinition": "%s:1", "desiredCount": 0}`,
			p.cluster, name, name), http.StatusCreated)
		c.apiWant(t, http.MethodPatch, "/api/v1/clusters/"+p.cluster+"/services/"+name, `{"desiredCount": 1}`, http.StatusOK)
		c.apiWant(t, http.MethodPost, "/api/v1/repositories", fmt.Sprintf(`{"name": %q}`, name), http.StatusCreated)
		c.apiWant(t, http.MethodPut, "/api/v1/pipelines/"+name, fmt.Sprintf(`name: %s
source: {repository: %s, branch: main}
build: {repository: scale/%s}
approval:
  policy:
    thresholds: {CRITICAL: 0, HIGH: 0}
deploy: {cluster: %s, service: %s, container: app, timeout: 4m}
`, name, name, name, p.cluster, name), http.StatusOK)
		p.names = append(p.names, name)
	}
	for _, name := range p.names {
		dir := filepath.Join(t.TempDir(), name)
		runGit(t, p.env, "", "clone", "--quiet", fmt.Sprintf("http://dev:%s@%s/git/%s.git", c.token, c.host(), name), dir)
		if err := os.WriteFile(filepath.Join(dir, "Dockerfile"), []byte("FROM "+base+"\nENV MESSAGE="+name+"\n"), 0o644); err != nil {
			t.Fatal(err)
		}
		runGit(t, p.env, dir, "add", "-A")
		runGit(t, p.env, dir, "commit", "--quiet", "-m", "the app")
		runGit(t, p.env, dir, "push", "--quiet", "origin", "HEAD:main")
		p.commits = append(p.commits, runGit(t, p.env, dir, "rev-parse", "HEAD"))
	}
	return p
}

// inFlight counts the executions not ended yet, by their current stage.
func (p *replicaPipelines) inFlight(t *testing.T) map[string]int {
	t.Helper()
	out := map[string]int{}
	code, body := p.c.api(t, http.MethodGet, "/api/v1/executions", nil)
	var list struct{ Executions []*pipeline.Execution }
	if code != http.StatusOK || json.Unmarshal(body, &list) != nil {
		t.Fatalf("executions: %d %.200s", code, body)
	}
	for _, ex := range list.Executions {
		if ex.Status != pipeline.StateInProgress {
			continue
		}
		// The list has no stages; the execution itself does.
		code, body := p.c.api(t, http.MethodGet, "/api/v1/executions/"+ex.ID, nil)
		if code != http.StatusOK || json.Unmarshal(body, ex) != nil {
			t.Fatalf("execution %s: %d %.200s", ex.ID, code, body)
		}
		for _, st := range ex.Stages {
			if st.Status == pipeline.StateInProgress {
				out[st.Name]++
			}
		}
	}
	return out
}

// check waits for every execution to end and checks, against the event
// log and the engine, that each was decided once, deployed once, and runs.
func (p *replicaPipelines) check(t *testing.T, ctx context.Context) {
	t.Helper()
	c := p.c
	executions := map[string]*pipeline.Execution{}
	waitUntilCtx(t, ctx, "every pipeline execution to end", func() bool {
		for i, name := range p.names {
			if ex := executions[name]; ex != nil && ex.Status != pipeline.StateInProgress {
				continue
			}
			code, body := c.api(t, http.MethodGet, "/api/v1/executions?pipeline="+name, nil)
			var list struct{ Executions []*pipeline.Execution }
			if code != http.StatusOK || json.Unmarshal(body, &list) != nil {
				return false
			}
			for _, ex := range list.Executions {
				if ex.Commit == p.commits[i] {
					executions[name] = ex
				}
			}
			if ex := executions[name]; ex == nil || ex.Status == pipeline.StateInProgress {
				return false
			}
		}
		return true
	})
	all, err := c.allEvents()
	if err != nil {
		t.Fatal(err)
	}
	final := map[string]bool{pipeline.ExecutionSucceeded: true, pipeline.ExecutionFailed: true, pipeline.ExecutionStopped: true, pipeline.ExecutionSuperseded: true}
	decided := map[string]int{}  // final approval stage events, by execution
	ended := map[string]int{}    // final execution state events
	deployed := map[string]int{} // completed deployments asked by an execution
	for _, l := range all {
		switch l.Event.DetailType {
		case events.DetailTypeStageStateChange:
			var d pipeline.StageDetail
			if json.Unmarshal(l.Event.Detail, &d) == nil && d.Stage == pipeline.StageApproval && d.State != pipeline.StateInProgress {
				decided[d.ExecutionID]++
			}
		case events.DetailTypePipelineExecutionStateChange:
			var d pipeline.ExecutionDetail
			if json.Unmarshal(l.Event.Detail, &d) == nil && final[d.State] {
				ended[d.ExecutionID]++
			}
		case deploy.DetailTypeDeploymentStateChange:
			var d deploy.DeploymentStateDetail
			if json.Unmarshal(l.Event.Detail, &d) == nil && d.ExecutionID != "" && d.EventName == deploy.EventDeploymentCompleted {
				deployed[d.ExecutionID]++
			}
		}
	}
	for i, name := range p.names {
		ex := executions[name]
		if ex.Status != pipeline.StateSucceeded {
			t.Errorf("%s: execution %s of %.12s %s (%s), want Succeeded", name, ex.ID, p.commits[i], ex.Status, ex.Reason)
			continue
		}
		if decided[ex.ID] != 1 || ended[ex.ID] != 1 || deployed[ex.ID] != 1 {
			t.Errorf("%s: execution %s decided %d times, ended %d times, deployed %d times; want once each",
				name, ex.ID, decided[ex.ID], ended[ex.ID], deployed[ex.ID])
		}
		// One revision registered by the deploy step, running in one task.
		var tds struct{ TaskDefinitions []deploy.TaskDefinition }
		if code, body := c.api(t, http.MethodGet, "/api/v1/task-definitions?family="+name, nil); code != http.StatusOK || json.Unmarshal(body, &tds) != nil {
			t.Fatalf("task definitions of %s: %d %.200s", name, code, body)
		}
		if len(tds.TaskDefinitions) != 2 {
			t.Errorf("%s: %d task definition revisions, want 2 (the first and the deploy's)", name, len(tds.TaskDefinitions))
		}
		var s deploy.Service
		waitUntilCtx(t, ctx, name+" steady on its second revision", func() bool {
			code, body := c.api(t, http.MethodGet, "/api/v1/clusters/"+p.cluster+"/services/"+name, nil)
			return code == http.StatusOK && json.Unmarshal(body, &s) == nil && s.TaskDefinition == name+":2" && steady(&s)
		})
		out, err := exec.Command("docker", "ps", "-q", "--filter", "label="+engine.LabelService+"="+name,
			"--filter", "label="+engine.LabelCluster+"="+p.cluster).Output()
		if err != nil {
			t.Fatal(err)
		}
		if n := len(strings.Fields(string(out))); n != 1 {
			t.Errorf("%s: %d containers running on the engine, want 1", name, n)
		}
	}
	t.Logf("%d pipelines built, approved and deployed across the replicas", len(p.names))
}

// removeContainers removes the cluster's containers and network from the
// engine, once the replicas have stopped.
func (p *replicaPipelines) removeContainers() {
	out, _ := exec.Command("docker", "ps", "-aq", "--filter", "label="+engine.LabelCluster+"="+p.cluster).Output()
	for _, id := range strings.Fields(string(out)) {
		_ = exec.Command("docker", "rm", "-f", id).Run()
	}
	_ = exec.Command("docker", "network", "rm", "scangate-"+p.cluster).Run()
}

// host is the proxy's host:port: the replicas' --registry-host.
func (c *cluster) host() string { return strings.TrimPrefix(c.proxy.URL, "http://") }

// apiWant calls the API through the proxy and fails unless it answers want.
func (c *cluster) apiWant(t testing.TB, method, path, body string, want int) []byte {
	t.Helper()
	code, data := c.api(t, method, path, []byte(body))
	if code != want {
		t.Fatalf("%s %s: %d %.300s, want %d", method, path, code, data, want)
	}
	return data
}
