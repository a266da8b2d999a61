package pipeline_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"github.com/scangate/scangate/internal/events"
	"github.com/scangate/scangate/internal/imagetest"
	"github.com/scangate/scangate/internal/pipeline"
)

// gate is a pipeline definition over source (a YAML flow mapping) with
// extra lines for its approval section, such as "timeout: 2s". It has no
// deploy stage: these tests are the gate's (deploys are internal/e2e's).
func gate(name, source, repository string, approval ...string) string {
	extra := ""
	for _, l := range approval {
		extra += "  " + l + "\n"
	}
	return fmt.Sprintf(`name: %s
source: %s
build: {repository: %s}
approval:
  policy:
    thresholds: {CRITICAL: 0, HIGH: 0}
%s`, name, source, repository, extra)
}

// hosted is a pipeline on the hosted repository of its name.
func hosted(name string, approval ...string) string {
	return gate(name, fmt.Sprintf("{repository: %s, branch: main}", name), "apps/"+name, approval...)
}

// cleanBase loads a Debian base image with no packages: no findings.
func (st *story) cleanBase() string {
	st.t.Helper()
	return st.loadBase("clean",
		imagetest.Entry{Name: "etc/os-release", Body: imagetest.ReadFixture(st.t, "debian", "os-release")},
		imagetest.Entry{Name: "var/lib/dpkg/status", Body: ""})
}

// app is a small build context on base.
func app(base, text string) map[string]string {
	return map[string]string{
		"Dockerfile": "FROM " + base + "\nCOPY app.txt /app/app.txt\n",
		"app.txt":    text + "\n",
	}
}

// execution returns an execution with its stages and approval.
func (st *story) execution(id string) *pipeline.Execution {
	st.t.Helper()
	var ex pipeline.Execution
	if err := json.Unmarshal(st.api("GET", "/api/v1/executions/"+id, nil, http.StatusOK), &ex); err != nil {
		st.t.Fatal(err)
	}
	return &ex
}

// executions lists a pipeline's executions of commit.
func (st *story) executions(name, commit string) []*pipeline.Execution {
	st.t.Helper()
	var list struct{ Executions []*pipeline.Execution }
	if err := json.Unmarshal(st.api("GET", "/api/v1/executions?pipeline="+name, nil, http.StatusOK), &list); err != nil {
		st.t.Fatal(err)
	}
	var out []*pipeline.Execution
	for _, ex := range list.Executions {
		if ex.Commit == commit {
			out = append(out, ex)
		}
	}
	return out
}

// waitStarted waits for an execution of commit to exist and returns its id.
func (st *story) waitStarted(name, commit string, timeout time.Duration) string {
	st.t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		if exs := st.executions(name, commit); len(exs) > 0 {
			return exs[0].ID
		}
		if time.Now().After(deadline) {
			st.t.Fatalf("no execution of %s for %.12s started within %s", name, commit, timeout)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// waitFor polls execution id until ok says it is as wanted.
func (st *story) waitFor(id, what string, timeout time.Duration, ok func(*pipeline.Execution) bool) *pipeline.Execution {
	st.t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		ex := st.execution(id)
		if ok(ex) {
			return ex
		}
		if time.Now().After(deadline) {
			st.t.Fatalf("execution %s: not %s within %s: %s (%s), stages %v, approval %+v", id, what, timeout, ex.Status, ex.Reason, stages(ex), ex.Approval)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// waitApproval waits for execution id to wait at its approval stage.
func (st *story) waitApproval(id string, timeout time.Duration) *pipeline.Execution {
	st.t.Helper()
	return st.waitFor(id, "waiting for approval", timeout, waitingApproval)
}

func waitingApproval(ex *pipeline.Execution) bool {
	return ex.Status == pipeline.StateInProgress && ex.Approval != nil && ex.Approval.Status == pipeline.StatePending
}

func ended(ex *pipeline.Execution) bool { return ex.Status != pipeline.StateInProgress }

// waitEnded waits for execution id to end.
func (st *story) waitEnded(id string, timeout time.Duration) *pipeline.Execution {
	st.t.Helper()
	return st.waitFor(id, "ended", timeout, ended)
}

// start starts an execution of commit by hand.
func (st *story) start(name, commit string) string {
	st.t.Helper()
	var res struct{ ID string }
	if err := json.Unmarshal(st.api("POST", "/api/v1/pipelines/"+name+"/executions", map[string]string{"commit": commit}, http.StatusCreated), &res); err != nil {
		st.t.Fatal(err)
	}
	return res.ID
}

// stages maps stage names to states.
func stages(ex *pipeline.Execution) map[string]string {
	m := map[string]string{}
	for _, s := range ex.Stages {
		m[s.Name] = s.Status
	}
	return m
}

func stage(ex *pipeline.Execution, name string) pipeline.Stage {
	for _, s := range ex.Stages {
		if s.Name == name {
			return s
		}
	}
	return pipeline.Stage{}
}

// logged is one pipeline event of the event log, with its detail decoded.
type logged struct {
	Seq    int64
	Type   string
	Raw    string
	Detail map[string]any
}

// eventsOf returns the pipeline events about execution id, in log order.
func (st *story) eventsOf(id string) []logged {
	st.t.Helper()
	all, err := events.ListLog(context.Background(), st.s.Store, 0, 10000)
	if err != nil {
		st.t.Fatal(err)
	}
	var out []logged
	for _, l := range all {
		if l.Event.Source != events.SourcePipeline {
			continue
		}
		var d map[string]any
		if err := json.Unmarshal(l.Event.Detail, &d); err != nil {
			st.t.Fatal(err)
		}
		if d["execution-id"] != id {
			continue
		}
		raw, _ := json.Marshal(l.Event)
		out = append(out, logged{Seq: l.Seq, Type: l.Event.DetailType, Raw: string(raw), Detail: d})
	}
	return out
}

// finalApprovalEvents counts the Stage State Change events that end an
// execution's approval stage.
func finalApprovalEvents(evs []logged) int {
	n := 0
	for _, e := range evs {
		if e.Type == events.DetailTypeStageStateChange && e.Detail["stage"] == pipeline.StageApproval && e.Detail["state"] != pipeline.StateInProgress {
			n++
		}
	}
	return n
}

func describe(evs []logged) string {
	var b strings.Builder
	for _, e := range evs {
		fmt.Fprintf(&b, "\n  %d %s %v %v %v", e.Seq, e.Type, e.Detail["stage"], e.Detail["state"], e.Detail["message"])
	}
	return b.String()
}

// settle waits until no build, evaluation, scan or event job is left to
// run, so that a count of decisions cannot miss a late one.
func (st *story) settle(timeout time.Duration) {
	st.t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		var n int
		err := st.s.Store.Reader().QueryRow(`SELECT count(*) FROM river_job WHERE state IN ('available', 'pending', 'retryable', 'running', 'scheduled')
			AND kind IN ('pipeline_build', 'pipeline_evaluate', 'scan_image', 'route_event', 'deliver_event')`).Scan(&n)
		if err != nil {
			st.t.Fatal(err)
		}
		if n == 0 {
			return
		}
		if time.Now().After(deadline) {
			st.t.Fatalf("%d jobs still to run after %s", n, timeout)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// dockerBuildArchive builds commit of the clone from its git archive
// with the legacy builder, as the server does, and tags the image tag
// until the test ends.
func (st *story) dockerBuildArchive(commit, tag string) {
	st.t.Helper()
	tar := filepath.Join(st.t.TempDir(), "context.tar")
	st.git("archive", "--format=tar", "-o", tar, commit)
	f, err := os.Open(tar)
	if err != nil {
		st.t.Fatal(err)
	}
	defer f.Close()
	// The base is in the server's registry: log in, in a config folder of
	// this test's own.
	env := append(os.Environ(), "DOCKER_BUILDKIT=0", "DOCKER_CONFIG="+st.t.TempDir())
	login := exec.Command("docker", "login", "--username", "test", "--password-stdin", st.s.Addr)
	login.Stdin, login.Env = strings.NewReader(st.s.Token), env
	if out, err := login.CombinedOutput(); err != nil {
		st.t.Fatalf("docker login: %v\n%s", err, out)
	}
	cmd := exec.Command("docker", "build", "--quiet", "-t", tag, "-")
	cmd.Stdin = f
	cmd.Env = env
	if out, err := cmd.CombinedOutput(); err != nil {
		st.t.Fatalf("docker build %.12s: %v\n%s", commit, err, out)
	}
	st.t.Cleanup(func() { _ = exec.Command("docker", "rmi", tag).Run() })
}
