// Package e2e tests whole scangate servers the way their users meet them:
// a real server on 127.0.0.1, real git pushes, builds and containers on the
// real Docker Engine, and the REST API.
package e2e

import (
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/scangate/scangate/internal/apptest"
	"github.com/scangate/scangate/internal/deploy"
	"github.com/scangate/scangate/internal/imagetest"
	"github.com/scangate/scangate/internal/pipeline"
	"github.com/scangate/scangate/internal/servertest"
)

// harness is a server with the Docker Engine behind it, and a unique id for
// the names a test makes.
type harness struct {
	t   *testing.T
	s   *servertest.Server
	id  string
	env []string // for git
}

func newHarness(t *testing.T, opts servertest.Options) *harness {
	t.Helper()
	if _, err := exec.LookPath("docker"); err != nil {
		t.Fatal("these tests need a Docker Engine and its CLI (docker): ", err)
	}
	if out, err := exec.Command("docker", "version", "--format", "{{.Server.APIVersion}}").CombinedOutput(); err != nil {
		t.Fatalf("these tests need a running Docker Engine: %v\n%s", err, out)
	}
	var b [4]byte
	_, _ = rand.Read(b[:])
	h := &harness{t: t, id: hex.EncodeToString(b[:])}
	// Registered before the server starts, so that it runs after the
	// server has stopped: a running controller would replace the tasks
	// whose containers it finds gone, and leave those.
	t.Cleanup(func() { h.removeContainers() })
	h.s = servertest.Start(t, opts)
	h.env = gitEnv(t)
	return h
}

// removeContainers removes what the test's clusters left on the engine:
// the server's drain stops the controller, not the tasks (they outlive a
// restart on purpose).
func (h *harness) removeContainers() {
	out, _ := exec.Command("docker", "ps", "-aq", "--filter", "label=io.scangate.cluster").Output()
	for _, id := range strings.Fields(string(out)) {
		name, _ := exec.Command("docker", "inspect", "-f", "{{index .Config.Labels \"io.scangate.cluster\"}}", id).Output()
		if strings.HasSuffix(strings.TrimSpace(string(name)), h.id) {
			_ = exec.Command("docker", "rm", "-f", id).Run()
		}
	}
	nets, _ := exec.Command("docker", "network", "ls", "-q", "--filter", "name=scangate-.*"+h.id).Output()
	for _, n := range strings.Fields(string(nets)) {
		_ = exec.Command("docker", "network", "rm", n).Run()
	}
}

func (h *harness) api(method, path string, body any, want int) []byte {
	h.t.Helper()
	status, data := h.s.API(h.t, method, path, body)
	if status != want {
		h.t.Fatalf("%s %s: %d %s, want %d", method, path, status, data, want)
	}
	return data
}

func (h *harness) decode(data []byte, v any) {
	h.t.Helper()
	if err := json.Unmarshal(data, v); err != nil {
		h.t.Fatalf("%v: %s", err, data)
	}
}

// cluster creates a cluster named after the test's id.
func (h *harness) cluster(name string) string {
	h.t.Helper()
	name += "-" + h.id
	h.api("POST", "/api/v1/clusters", map[string]any{"clusterName": name}, http.StatusCreated)
	return name
}

// pushApp pushes the test app to repository and returns it by digest.
func (h *harness) pushApp(repository string) string {
	h.t.Helper()
	ref := apptest.Push(h.t, h.s.Addr, repository, h.s.Token)
	_, digest, _ := strings.Cut(ref, "@")
	h.s.WaitScan(h.t, repository, digest, time.Minute)
	return ref
}

// taskDef registers a one-container task definition of the app and
// returns family:revision.
func (h *harness) taskDef(family, image string, env map[string]string, extra string) string {
	h.t.Helper()
	var envs []string
	for k, v := range env {
		envs = append(envs, fmt.Sprintf(`{"name": %q, "value": %q}`, k, v))
	}
	doc := fmt.Sprintf(`{"family": %q, "containerDefinitions": [{"name": "app", "image": %q, "entryPoint": ["/app"],
		"portMappings": [{"containerPort": 8080}], "environment": [%s], "memory": 64 %s}]}`, family, image, strings.Join(envs, ","), extra)
	var out struct{ TaskDefinition deploy.TaskDefinition }
	h.decode(h.api("POST", "/api/v1/task-definitions", []byte(doc), http.StatusCreated), &out)
	return out.TaskDefinition.Ref()
}

// overrideAll lets image run in a service for an hour, as an admin would
// for an image that no pipeline approved.
func (h *harness) override(cluster, service, image string) {
	h.t.Helper()
	_, digest, _ := strings.Cut(image, "@")
	h.api("POST", "/api/v1/clusters/"+cluster+"/services/"+service+"/overrides", map[string]any{
		"imageDigest": digest, "reason": "test image, no pipeline", "expiresAt": time.Now().Add(time.Hour).UTC().Format(time.RFC3339)},
		http.StatusCreated)
}

func (h *harness) service(cluster, name string) *deploy.Service {
	h.t.Helper()
	var s deploy.Service
	h.decode(h.api("GET", "/api/v1/clusters/"+cluster+"/services/"+name, nil, http.StatusOK), &s)
	return &s
}

func (h *harness) tasks(cluster, service, status string) []*deploy.Task {
	h.t.Helper()
	var out struct{ Tasks []*deploy.Task }
	h.decode(h.api("GET", fmt.Sprintf("/api/v1/tasks?cluster=%s&service=%s&status=%s", cluster, service, status), nil, http.StatusOK), &out)
	return out.Tasks
}

// waitService waits until ok says yes of the service, and returns it.
func (h *harness) waitService(cluster, name, what string, timeout time.Duration, ok func(*deploy.Service) bool) *deploy.Service {
	h.t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		s := h.service(cluster, name)
		if ok(s) {
			return s
		}
		if time.Now().After(deadline) {
			h.t.Fatalf("service %s: not %s within %s: %s", name, what, timeout, describeService(s))
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func describeService(s *deploy.Service) string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s desired %d running %d pending %d\n", s.TaskDefinition, s.DesiredCount, s.RunningCount, s.PendingCount)
	for _, d := range s.Deployments {
		fmt.Fprintf(&b, "  deployment %s %s %s %s failed=%d running=%d %s\n", d.ID, d.Status, d.RolloutState, d.TaskDefinition, d.FailedTasks, d.RunningCount, d.RolloutStateReason)
	}
	for i := len(s.Events) - 1; i >= 0; i-- {
		fmt.Fprintf(&b, "  event %s\n", s.Events[i].Message)
	}
	return b.String()
}

// steady reports a service whose primary deployment completed with every
// task running.
func steady(s *deploy.Service) bool {
	return len(s.Deployments) == 1 && s.Deployments[0].RolloutState == deploy.RolloutCompleted && s.RunningCount == s.DesiredCount
}

// get fetches url and returns the body.
func get(url string) (string, error) { return getAs(url, "") }

// getAs is get with a Bearer token ("" for none).
func getAs(url, token string) (string, error) {
	c := http.Client{Timeout: 5 * time.Second}
	req, err := http.NewRequest(http.MethodGet, url, nil)
	if err != nil {
		return "", err
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := c.Do(req)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		return string(body), fmt.Errorf("GET %s: %s", url, resp.Status)
	}
	return string(body), err
}

// taskURL is where a task's app answers on the host.
func taskURL(t *deploy.Task) string {
	for _, c := range t.Containers {
		for _, p := range c.Ports {
			if p.ContainerPort == apptest.Port && p.HostPort != 0 {
				return fmt.Sprintf("http://%s:%d/", p.HostIP, p.HostPort)
			}
		}
	}
	return ""
}

// --- pipelines

// loadBase pushes an image made of entries to the server's registry, as a
// base for builds, and returns its reference.
func (h *harness) loadBase(name string, entries ...imagetest.Entry) string {
	h.t.Helper()
	// A file of the test's id makes the base the test's own: the engine's
	// copy, removed when the test ends, is no other test's base.
	entries = append(entries, imagetest.Entry{Name: "etc/scangate-test-id", Body: h.id + "\n"})
	return h.s.PushBase(h.t, fmt.Sprintf("base/%s:%s", name, h.id), imagetest.Build(h.t, imagetest.Layer(h.t, entries...)))
}

// appBase is a Debian base with the app in it, and a dpkg status.
func (h *harness) appBase(name, dpkgStatus string) string {
	h.t.Helper()
	return h.loadBase(name,
		imagetest.Entry{Name: "etc/os-release", Body: imagetest.ReadFixture(h.t, "debian", "os-release")},
		imagetest.Entry{Name: "var/lib/dpkg/status", Body: dpkgStatus},
		imagetest.Entry{Name: "app", Body: string(apptest.Binary(h.t)), Mode: 0o755})
}

func (h *harness) git(dir string, args ...string) string {
	h.t.Helper()
	return runGit(h.t, h.env, dir, args...)
}

// gitEnv is an environment for git of the test's own: a home of its
// own, no system configuration, a fixed author, no prompts.
func gitEnv(t testing.TB) []string {
	return append(os.Environ(), "HOME="+t.TempDir(), "GIT_CONFIG_NOSYSTEM=1",
		"GIT_AUTHOR_NAME=Dev", "GIT_AUTHOR_EMAIL=dev@example.com",
		"GIT_COMMITTER_NAME=Dev", "GIT_COMMITTER_EMAIL=dev@example.com", "GIT_TERMINAL_PROMPT=0")
}

// runGit runs git in dir and returns its output, trimmed.
func runGit(t testing.TB, env []string, dir string, args ...string) string {
	t.Helper()
	cmd := exec.Command("git", args...)
	cmd.Dir = dir
	cmd.Env = env
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("git %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return strings.TrimSpace(string(out))
}

// repo creates a hosted repository and the pipeline, and returns a clone.
func (h *harness) repo(name, definition string) string {
	h.t.Helper()
	h.api("POST", "/api/v1/repositories", map[string]string{"name": name}, http.StatusCreated)
	h.api("PUT", "/api/v1/pipelines/"+name, []byte(definition), http.StatusOK)
	dir := filepath.Join(h.t.TempDir(), "clone")
	url := fmt.Sprintf("http://dev:%s@%s/git/%s.git", h.s.Token, h.s.Addr, name)
	cmd := exec.Command("git", "clone", "--quiet", url, dir)
	cmd.Env = h.env
	if out, err := cmd.CombinedOutput(); err != nil {
		h.t.Fatalf("git clone: %v\n%s", err, out)
	}
	return dir
}

// commit writes files, commits and pushes them, and returns the commit.
func (h *harness) commit(dir, msg string, files map[string]string) string {
	h.t.Helper()
	for name, body := range files {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(body), 0o644); err != nil {
			h.t.Fatal(err)
		}
	}
	h.git(dir, "add", "-A")
	h.git(dir, "commit", "--quiet", "--allow-empty", "-m", msg)
	h.git(dir, "push", "--quiet", "origin", "HEAD:main")
	return h.git(dir, "rev-parse", "HEAD")
}

// waitExecution waits for the pipeline's execution of commit to end.
func (h *harness) waitExecution(pipelineName, commit string, timeout time.Duration) *pipeline.Execution {
	h.t.Helper()
	return h.waitCommit(pipelineName, commit, "ended", timeout, func(ex *pipeline.Execution) bool { return ex.Status != pipeline.StateInProgress })
}

// waitCommit waits for the pipeline's execution of commit to be what ok
// says, and returns it with its stages and approval.
func (h *harness) waitCommit(pipelineName, commit, what string, timeout time.Duration, ok func(*pipeline.Execution) bool) *pipeline.Execution {
	h.t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		var list struct{ Executions []*pipeline.Execution }
		h.decode(h.api("GET", "/api/v1/executions?pipeline="+pipelineName, nil, http.StatusOK), &list)
		for _, ex := range list.Executions {
			if ex.Commit != commit {
				continue
			}
			var full pipeline.Execution
			h.decode(h.api("GET", "/api/v1/executions/"+ex.ID, nil, http.StatusOK), &full)
			if ok(&full) {
				return &full
			}
		}
		if time.Now().After(deadline) {
			h.t.Fatalf("no execution of %.12s %s within %s", commit, what, timeout)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func stageOf(ex *pipeline.Execution, name string) pipeline.Stage {
	for _, s := range ex.Stages {
		if s.Name == name {
			return s
		}
	}
	return pipeline.Stage{}
}
