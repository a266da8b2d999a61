package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/scangate/scangate/internal/apptest"
	"github.com/scangate/scangate/internal/cli"
	"github.com/scangate/scangate/internal/deploy"
	"github.com/scangate/scangate/internal/logbuf"
	"github.com/scangate/scangate/internal/pipeline"
	"github.com/scangate/scangate/internal/servertest"
)

// cliResult is what a scangate command printed, and its exit code.
type cliResult struct {
	stdout, stderr string
	code           int
}

// cli runs a scangate client command against the harness's server with
// the token in tokenFile, as a user would from another machine.
func (h *harness) cli(ctx context.Context, out *logbuf.Buffer, tokenFile string, args ...string) cliResult {
	h.t.Helper()
	if out == nil {
		out = new(logbuf.Buffer)
	}
	var errb bytes.Buffer
	args = append(args, "--server", "http://"+h.s.Addr, "--token-file", tokenFile)
	code := cli.Main(ctx, args, out, &errb)
	return cliResult{out.String(), errb.String(), code}
}

// must runs a command that has to succeed and returns what it printed.
func (h *harness) must(tokenFile string, args ...string) string {
	h.t.Helper()
	r := h.cli(context.Background(), nil, tokenFile, args...)
	if r.code != 0 {
		h.t.Fatalf("scangate %s: exit %d\n%s%s", strings.Join(args, " "), r.code, r.stdout, r.stderr)
	}
	return r.stdout
}

// tokenFile makes a token with role and returns a file holding it.
func (h *harness) tokenFile(name, role string) string {
	h.t.Helper()
	var out struct{ Secret string }
	h.decode(h.api("POST", "/api/v1/tokens", map[string]string{"name": name, "role": role}, http.StatusCreated), &out)
	return h.file(name+".token", out.Secret)
}

func (h *harness) file(name, body string) string {
	h.t.Helper()
	path := filepath.Join(h.t.TempDir(), name)
	if err := os.WriteFile(path, []byte(body), 0o600); err != nil {
		h.t.Fatal(err)
	}
	return path
}

// waitFor polls ok until it says yes, or fails the test saying what.
func (h *harness) waitFor(what string, timeout time.Duration, ok func() bool) {
	h.t.Helper()
	for deadline := time.Now().Add(timeout); !ok(); time.Sleep(200 * time.Millisecond) {
		if time.Now().After(deadline) {
			h.t.Fatalf("not %s within %s", what, timeout)
		}
	}
}

// The CLI over a service whose task runs on the Docker Engine: the service
// made at 0 with a load balancer, an admin's override for its image, a
// desired count of 1; the task listed, described and its logs read, tailed
// and followed; stopped by a person and replaced; then the service and its
// cluster deleted, and the cluster's network gone from the engine.
func TestCLIServiceTasks(t *testing.T) {
	t.Parallel()
	h := newHarness(t, servertest.Options{Feeds: []string{}})
	admin := h.file("admin.token", h.s.Token)
	deployer := h.tokenFile("ci", "deployer")
	cluster, family := "cli-"+h.id, "cli-"+h.id

	h.must(deployer, "cluster", "create", cluster)
	image := h.pushApp("shop/cli-" + h.id)
	_, digest, _ := strings.Cut(image, "@")
	def := h.file("app.yaml", fmt.Sprintf(`family: %s
containerDefinitions:
  - name: app
    image: %s
    entryPoint: [/app]
    portMappings: [{containerPort: %d}]
    environment: [{name: MESSAGE, value: hello from the cli}]
    memory: 64
    stopTimeout: 5
`, family, image, apptest.Port))
	h.must(deployer, "taskdef", "register", "-f", def)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	listener := ln.Addr().(*net.TCPAddr).Port
	ln.Close()
	config := h.file("service.yaml", fmt.Sprintf("loadBalancer: {listenerPort: %d, containerName: app, containerPort: %d, deregistrationDelay: 1s}\n",
		listener, apptest.Port))
	h.must(deployer, "service", "create", "--cluster", cluster, "--name", "web", "--taskdef", family, "-f", config)
	h.must(admin, "service", "override", "--cluster", cluster, "web", "--digest", digest, "--reason", "the test app: no pipeline builds it",
		"--expires", time.Now().AddDate(0, 0, 7).UTC().Format(time.DateOnly))
	h.must(deployer, "service", "update", "--cluster", cluster, "web", "--desired-count", "1")

	var svc deploy.Service
	h.waitFor("steady at 1", 2*time.Minute, func() bool {
		svc = deploy.Service{}
		if err := json.Unmarshal([]byte(h.must(deployer, "--format", "json", "service", "describe", "--cluster", cluster, "web")), &svc); err != nil {
			t.Fatal(err)
		}
		return steady(&svc)
	})
	out := h.must(deployer, "service", "describe", "--cluster", cluster, "web", "--events", "50")
	for _, want := range []string{fmt.Sprintf("load balancer http://127.0.0.1:%d to app:%d", listener, apptest.Port), "desired 1, running 1, pending 0",
		"has reached a steady state", "admission override for " + digest} {
		if !strings.Contains(out, want) {
			t.Errorf("service describe lacks %q:\n%s", want, out)
		}
	}
	if !servertest.HasLine(out, svc.Deployments[0].ID, "PRIMARY", "COMPLETED", family+":1") {
		t.Errorf("service describe: no line of the completed deployment:\n%s", out)
	}
	// A deployment read by id counts its tasks as the service does.
	var dep deploy.Deployment
	h.decode(h.api("GET", "/api/v1/deployments/"+svc.Deployments[0].ID, nil, http.StatusOK), &dep)
	if dep.RunningCount != 1 {
		t.Errorf("deployment %s: running %d, want 1", dep.ID, dep.RunningCount)
	}
	lb := fmt.Sprintf("http://127.0.0.1:%d/", listener)
	h.waitFor("answering through the load balancer", 30*time.Second, func() bool {
		body, err := get(lb + "?via=lb")
		return err == nil && strings.Contains(body, "hello from the cli")
	})

	var tasks []deploy.Task
	if err := json.Unmarshal([]byte(h.must(deployer, "--format", "json", "task", "list", "--cluster", cluster, "--service", "web")), &tasks); err != nil || len(tasks) != 1 {
		t.Fatalf("task list: %v %+v", err, tasks)
	}
	task := tasks[0].ID
	if out := h.must(deployer, "task", "list", "--cluster", cluster); !servertest.HasLine(out, task, "web", family+":1", "RUNNING") {
		t.Errorf("task list:\n%s", out)
	}
	if out := h.must(deployer, "task", "describe", task); !strings.Contains(out, "RUNNING (desired RUNNING)") || !servertest.HasLine(out, "app", "running", fmt.Sprintf("->%d/tcp", apptest.Port)) {
		t.Errorf("task describe:\n%s", out)
	}
	// The app logs a request after answering it: the line can reach the
	// engine's log a moment after the answer reached the test.
	for wait := time.Now().Add(10 * time.Second); ; time.Sleep(200 * time.Millisecond) {
		out = h.must(deployer, "task", "logs", task)
		if strings.Contains(out, "app: GET /?via=lb 200") || time.Now().After(wait) {
			break
		}
	}
	if !strings.Contains(out, "app: listening on") || !strings.Contains(out, "app: GET /?via=lb 200") {
		t.Errorf("task logs:\n%s", out)
	}
	if out := h.must(deployer, "task", "logs", task, "--tail", "1", "--container", "app"); strings.Count(out, "\n") != 1 {
		t.Errorf("task logs --tail 1:\n%s", out)
	}
	if r := h.cli(context.Background(), nil, deployer, "task", "logs", task, "--container", "db"); r.code != cli.ExitBadInput || !strings.Contains(r.stderr, `has no container "db"`) {
		t.Errorf("logs of a container the task does not have: exit %d, %s", r.code, r.stderr)
	}

	// --follow prints what the container writes while it runs, until
	// interrupted.
	ctx, cancel := context.WithCancel(context.Background())
	var followed logbuf.Buffer
	done := make(chan cliResult, 1)
	go func() { done <- h.cli(ctx, &followed, deployer, "task", "logs", task, "--follow", "--tail", "1") }()
	h.waitFor("following the logs", 30*time.Second, func() bool {
		_, _ = get(lb + "?via=follow")
		return strings.Contains(followed.String(), "GET /?via=follow 200")
	})
	cancel()
	if r := <-done; r.code != 0 {
		t.Errorf("logs --follow, interrupted: exit %d, %s", r.code, r.stderr)
	}

	// A person stops the task: it is replaced, and kept STOPPED with the
	// reason and its last lines.
	if out := h.must(deployer, "task", "stop", task, "--reason", "cli test"); !strings.Contains(out, "DEPROVISIONING (UserInitiated: cli test)") {
		t.Errorf("task stop said %q", out)
	}
	h.waitFor("stopped and replaced", 2*time.Minute, func() bool {
		var live []deploy.Task
		if err := json.Unmarshal([]byte(h.must(deployer, "--format", "json", "task", "list", "--cluster", cluster)), &live); err != nil {
			t.Fatal(err)
		}
		return servertest.HasLine(h.must(deployer, "task", "list", "--cluster", cluster, "--stopped"), task, "UserInitiated", "cli test") &&
			len(live) == 1 && live[0].ID != task && live[0].LastStatus == deploy.TaskRunning
	})
	if out := h.must(deployer, "task", "describe", task); !strings.Contains(out, "stopped: UserInitiated: cli test") || !strings.Contains(out, "last lines:") ||
		!strings.Contains(out, "app: stopped gracefully") {
		t.Errorf("task describe of the stopped task:\n%s", out)
	}
	if out := h.must(deployer, "task", "logs", task); !strings.Contains(out, "app: stopped gracefully") {
		t.Errorf("the logs of a stopped task are its last lines:\n%s", out)
	}

	// Delete the service, then the cluster; its network leaves the engine.
	h.must(deployer, "service", "delete", "--cluster", cluster, "web")
	h.waitFor("cluster deleted", 2*time.Minute, func() bool {
		return h.cli(context.Background(), nil, deployer, "cluster", "delete", cluster).code == 0
	})
	h.waitFor("the cluster's network removed", 30*time.Second, func() bool {
		return exec.Command("docker", "network", "inspect", "scangate-"+cluster).Run() != nil
	})
	if _, err := get(lb); err == nil {
		t.Errorf("the load balancer of the deleted service still answers")
	}
}

// A second machine drives a whole pipeline through the API: another data
// folder (never made), the server's URL and a token given to scangate
// login, then a repository, a pipeline (a mistyped one refused naming the
// file, line and field; one naming a repository that is not there refused
// at put), a git push, execution get --wait --follow streaming the stages
// and the build log until the approval waits for a person, the approval
// given, and the execution followed to its end.
func TestSecondMachine(t *testing.T) {
	h := newHarness(t, servertest.Options{Feeds: []string{"debian", "ghsa"}})
	clean := h.appBase("laptop", "")
	t.Setenv("SCANGATE_CLIENT_CONFIG", filepath.Join(t.TempDir(), "config.yaml"))
	laptop := filepath.Join(t.TempDir(), "laptop")
	sg := func(stdin string, args ...string) cliResult {
		t.Helper()
		if stdin != "" {
			f := h.file("stdin", stdin)
			fh, err := os.Open(f)
			if err != nil {
				t.Fatal(err)
			}
			defer fh.Close()
			old := os.Stdin
			os.Stdin = fh
			defer func() { os.Stdin = old }()
		}
		var out, errb bytes.Buffer
		code := cli.Main(context.Background(), append([]string{"--data-dir", laptop}, args...), &out, &errb)
		return cliResult{out.String(), errb.String(), code}
	}
	must := func(stdin string, args ...string) cliResult {
		t.Helper()
		r := sg(stdin, args...)
		if r.code != 0 {
			t.Fatalf("scangate %s: exit %d\n%s%s", strings.Join(args, " "), r.code, r.stdout, r.stderr)
		}
		return r
	}
	server := "http://" + h.s.Addr
	must(h.token("lead", "admin")+"\n", "login", server)

	name := "remote-" + h.id
	if out := must("", "repo", "create", name).stdout; !strings.Contains(out, "git clone "+server+"/git/"+name+".git") {
		t.Errorf("repo create said %q", out)
	}
	typo := h.file("typo.yaml", fmt.Sprintf("name: %s\nsource: {repository: %s, branch: main}\nbuidl: {repository: shop/%s}\n", name, name, name))
	if r := sg("", "pipeline", "put", "-f", typo); r.code != 2 || !strings.Contains(r.stderr, typo+": line 3: unknown field buidl") {
		t.Errorf("a mistyped pipeline: exit %d %s", r.code, r.stderr)
	}
	missing := h.file("missing.yaml", fmt.Sprintf("name: %s\nsource: {repository: nosuch-%s, branch: main}\nbuild: {repository: shop/%s}\napproval: {mode: person}\n", name, h.id, name))
	if r := sg("", "pipeline", "put", "-f", missing); r.code != 2 || !strings.Contains(r.stderr, "scangate repo create nosuch-"+h.id) {
		t.Errorf("a pipeline of a repository that is not there: exit %d %s", r.code, r.stderr)
	}
	def := h.file("pipeline.yaml", fmt.Sprintf(`name: %s
source: {repository: %s, branch: main}
build: {repository: shop/%s}
approval:
  mode: person
`, name, name, name))
	r := must("", "pipeline", "put", "-f", def)
	if !strings.Contains(r.stdout, "pipeline "+name+" version 1") || !strings.Contains(r.stderr, "branch main of repository "+name+" has no commit yet") {
		t.Errorf("pipeline put said %q, %q", r.stdout, r.stderr)
	}

	dir := filepath.Join(t.TempDir(), "clone")
	cmd := exec.Command("git", "clone", "--quiet", fmt.Sprintf("http://dev:%s@%s/git/%s.git", h.s.Token, h.s.Addr, name), dir)
	cmd.Env = h.env
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("git clone: %v\n%s", err, out)
	}
	if err := os.WriteFile(filepath.Join(dir, "Dockerfile"), []byte("FROM "+clean+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	h.git(dir, "add", "-A")
	h.git(dir, "commit", "--quiet", "-m", "first")
	commit := h.git(dir, "rev-parse", "HEAD")
	// git push says what it started.
	pushed := h.git(dir, "push", "origin", "HEAD:main")
	var exs []pipeline.Execution
	if err := json.Unmarshal([]byte(must("", "--format", "json", "execution", "list", "--pipeline", name).stdout), &exs); err != nil || len(exs) != 1 || exs[0].Commit != commit {
		t.Fatalf("execution list after the push: %v %+v", err, exs)
	}
	id := exs[0].ID
	if want := "remote: scangate: execution " + id + " started for " + name; !strings.Contains(pushed, want) {
		t.Errorf("git push printed %q, not %q", pushed, want)
	}
	if pushed := h.git(dir, "push", "origin", "HEAD:other"); !strings.Contains(pushed, "remote: scangate: no pipeline builds branch other of "+name) {
		t.Errorf("a push to a branch no pipeline builds printed %q", pushed)
	}
	r = must("", "execution", "get", id, "--wait", "--follow")
	for _, want := range []string{"Source", "Build", "Succeeded", clean, "Approval", "waiting for a person"} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("execution get --wait --follow does not say %q:\n%s", want, r.stdout)
		}
	}
	if !strings.Contains(r.stderr, "waits for a person: scangate approval approve|reject "+id) {
		t.Errorf("execution get --wait ended saying %q", r.stderr)
	}
	if out := must("", "approval", "approve", id, "--comment", "reviewed on my laptop").stdout; !strings.HasPrefix(out, "Approved") {
		t.Errorf("approval approve said %q", out)
	}
	if r := must("", "execution", "get", id, "--wait"); !strings.Contains(r.stderr, "execution "+id+" Succeeded") {
		t.Errorf("the approved execution: %s", r.stderr)
	}
	if _, err := os.Stat(laptop); !os.IsNotExist(err) {
		t.Errorf("the second machine's commands made its data folder: %v", err)
	}
}
