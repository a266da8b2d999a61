package server_test

import (
	"bufio"
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/scangate/scangate/internal/apptest"
	"github.com/scangate/scangate/internal/deploy"
	"github.com/scangate/scangate/internal/nettest"
)

// These tests kill `scangate server` with SIGKILL in the middle of a
// rolling deployment of a service of three tasks (with a health check and
// a load balancer), start it again on the same data folder, and check on
// the real Docker Engine that the service converges: the desired count of
// tasks of the new revision running and healthy, the deployment COMPLETED,
// every container of the cluster a live task's and only one per task and
// container name, every other task recorded STOPPED, and no task made
// twice. Containers the killed server started, and that are healthy, are
// adopted by the next one: the same containers, never started again.

const deployKillTasks = 3

// deployKillHarness is a server's data folder with a cluster, a service
// and the app image in the registry.
type deployKillHarness struct {
	*pipelineHarness
	db            *sql.DB
	cluster, name string
	image, lbURL  string
	revisions     []string // family:revision, v1 first
}

func newDeployKillHarness(t *testing.T) (*deployKillHarness, *server) {
	p := newPipelineHarness(t)
	d := &deployKillHarness{pipelineHarness: p, cluster: "kill-" + p.id, name: "svc-" + p.id}
	// Registered before the first server starts, so that it runs after
	// every server's kill: the containers outlive their servers.
	t.Cleanup(func() { removeCluster(d.cluster) })
	srv := p.start(t)
	d.db = p.db(t)
	d.post("/api/v1/clusters", map[string]any{"clusterName": d.cluster}, http.StatusCreated)
	d.image = apptest.Push(t, p.addr, "kill/app-"+p.id, p.token)
	port := nettest.FreePort(t)
	d.lbURL = fmt.Sprintf("http://127.0.0.1:%d/", port)
	v1 := d.revision("v1")
	d.post("/api/v1/services", map[string]any{"clusterName": d.cluster, "serviceName": d.name, "taskDefinition": v1, "desiredCount": 0,
		"config": map[string]any{
			"deploymentConfiguration": map[string]any{"minimumHealthyPercent": 100, "maximumPercent": 200},
			"loadBalancer":            map[string]any{"listenerPort": port, "containerName": "app", "containerPort": apptest.Port},
		}}, http.StatusCreated)
	_, digest, _ := strings.Cut(d.image, "@")
	d.post("/api/v1/clusters/"+d.cluster+"/services/"+d.name+"/overrides", map[string]any{"imageDigest": digest,
		"reason": "test image, no pipeline", "expiresAt": time.Now().Add(time.Hour).UTC().Format(time.RFC3339)}, http.StatusCreated)
	d.patch(map[string]any{"desiredCount": deployKillTasks})
	return d, srv
}

func (d *deployKillHarness) post(path string, body any, want int) []byte {
	d.t.Helper()
	data, err := json.Marshal(body)
	if err != nil {
		d.t.Fatal(err)
	}
	return d.api("POST", path, data, want)
}

func (d *deployKillHarness) patch(body any) {
	d.t.Helper()
	data, err := json.Marshal(body)
	if err != nil {
		d.t.Fatal(err)
	}
	d.api("PATCH", "/api/v1/clusters/"+d.cluster+"/services/"+d.name, data, http.StatusOK)
}

// revision registers the next revision of the service's task definition,
// answering message, with the app's health check at ECS's shortest
// interval.
func (d *deployKillHarness) revision(message string) string {
	d.t.Helper()
	doc := fmt.Sprintf(`{"family": %q, "containerDefinitions": [{"name": "app", "image": %q, "entryPoint": ["/app"],
		"portMappings": [{"containerPort": 8080}], "environment": [{"name": "MESSAGE", "value": %q}], "memory": 64,
		"healthCheck": {"command": ["CMD", "/app", "probe", "http://127.0.0.1:8080/health"], "interval": 5, "timeout": 2, "retries": 2}}]}`,
		d.name, d.image, message)
	var out struct{ TaskDefinition deploy.TaskDefinition }
	if err := json.Unmarshal(d.api("POST", "/api/v1/task-definitions", []byte(doc), http.StatusCreated), &out); err != nil {
		d.t.Fatal(err)
	}
	ref := out.TaskDefinition.Ref()
	d.revisions = append(d.revisions, ref)
	return ref
}

func (d *deployKillHarness) service() *deploy.Service {
	d.t.Helper()
	var s deploy.Service
	if err := json.Unmarshal(d.api("GET", "/api/v1/clusters/"+d.cluster+"/services/"+d.name, nil, http.StatusOK), &s); err != nil {
		d.t.Fatal(err)
	}
	return &s
}

func (d *deployKillHarness) tasks(status string) []*deploy.Task {
	d.t.Helper()
	var out struct{ Tasks []*deploy.Task }
	if err := json.Unmarshal(d.api("GET", fmt.Sprintf("/api/v1/tasks?cluster=%s&service=%s&status=%s", d.cluster, d.name, status), nil, http.StatusOK), &out); err != nil {
		d.t.Fatal(err)
	}
	return out.Tasks
}

// taskStatuses are the statuses of the tasks of revision ref in the
// database, as "STATUS/HEALTH".
func (d *deployKillHarness) taskStatuses(ref string) []string {
	d.t.Helper()
	family, rev, _ := strings.Cut(ref, ":")
	rows, err := d.db.Query(`SELECT last_status, health FROM tasks WHERE family = $1 AND revision = $2 ORDER BY created_at`, family, rev)
	if err != nil {
		d.t.Fatal(err)
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var status, health string
		if err := rows.Scan(&status, &health); err != nil {
			d.t.Fatal(err)
		}
		out = append(out, status+"/"+health)
	}
	if err := rows.Err(); err != nil {
		d.t.Fatal(err)
	}
	return out
}

// waitTask waits until a task of revision ref is in one of statuses
// ("RUNNING/UNKNOWN" names a health too), and says whether one was.
func (d *deployKillHarness) waitTask(ctx context.Context, ref string, statuses ...string) []string {
	d.t.Helper()
	var seen []string
	waitFor(d.t, ctx, fmt.Sprintf("a task of %s %v", ref, statuses), func() (bool, error) {
		seen = d.taskStatuses(ref)
		for _, s := range seen {
			status, _, _ := strings.Cut(s, "/")
			if slices.Contains(statuses, s) || slices.Contains(statuses, status) {
				return true, nil
			}
		}
		return false, nil
	})
	return seen
}

// container is a task container on the engine.
type container struct {
	id, task, name, revision, state, startedAt string
	restarts                                   int
}

// containers lists the cluster's containers on the engine.
func (d *deployKillHarness) containers() []container {
	d.t.Helper()
	ids := strings.Fields(docker(d.t, "ps", "-aq", "--no-trunc", "--filter", "label=io.scangate.cluster="+d.cluster))
	if len(ids) == 0 {
		return nil
	}
	// A container removed since the listing is an error of inspect's,
	// and missing from its output.
	out, _ := exec.Command("docker", append([]string{"inspect", "--format", `{{.Id}} {{index .Config.Labels "io.scangate.task"}} ` +
		`{{index .Config.Labels "io.scangate.container"}} {{index .Config.Labels "io.scangate.revision"}} {{.State.Status}} {{.State.StartedAt}} {{.RestartCount}}`}, ids...)...).Output()
	var list []container
	for _, line := range strings.Split(string(out), "\n") {
		f := strings.Fields(line)
		if len(f) != 7 {
			continue // removed meanwhile
		}
		c := container{id: f[0], task: f[1], name: f[2], revision: f[3], state: f[4], startedAt: f[5]}
		fmt.Sscan(f[6], &c.restarts)
		list = append(list, c)
	}
	return list
}

// healthyContainers are the containers of the tasks the database says
// are running and healthy, by id.
func (d *deployKillHarness) healthyContainers() map[string]container {
	d.t.Helper()
	rows, err := d.db.Query(`SELECT id FROM tasks WHERE cluster = $1 AND last_status = 'RUNNING' AND health = 'HEALTHY' AND desired_status = 'RUNNING'`, d.cluster)
	if err != nil {
		d.t.Fatal(err)
	}
	var healthy []string
	for rows.Next() {
		var id string
		if err := rows.Scan(&id); err != nil {
			d.t.Fatal(err)
		}
		healthy = append(healthy, id)
	}
	rows.Close()
	out := map[string]container{}
	for _, c := range d.containers() {
		if slices.Contains(healthy, c.task) && c.state == "running" {
			out[c.id] = c
		}
	}
	return out
}

// converge waits for the service to run want, and checks what the engine
// and the database hold then.
func (d *deployKillHarness) converge(ctx context.Context, want, message string) {
	t := d.t
	t.Helper()
	var s *deploy.Service
	var live []*deploy.Task
	waitFor(t, ctx, "the service to converge on "+want, func() (bool, error) {
		time.Sleep(200 * time.Millisecond)
		s = d.service()
		if len(s.Deployments) != 1 || s.Deployments[0].RolloutState != deploy.RolloutCompleted || s.TaskDefinition != want ||
			s.RunningCount != deployKillTasks || s.PendingCount != 0 {
			return false, nil
		}
		live = d.tasks("RUNNING")
		if len(live) != deployKillTasks {
			return false, nil
		}
		for _, tk := range live {
			if tk.TaskDefinition != want || tk.LastStatus != deploy.TaskRunning || tk.Health != deploy.HealthHealthy {
				return false, nil
			}
		}
		return true, nil
	})
	dep := s.Deployments[0]
	if dep.FailedTasks != 0 {
		t.Errorf("deployment %s of %s counted %d failed tasks", dep.ID, want, dep.FailedTasks)
	}
	// No orphan, no duplicate: the cluster's containers are one per live
	// task (one container each), running.
	ids := map[string]bool{}
	for _, tk := range live {
		ids[tk.ID] = true
	}
	containers := d.containers()
	perTask := map[string]int{}
	for _, c := range containers {
		perTask[c.task+"/"+c.name]++
		if !ids[c.task] {
			t.Errorf("container %s of task %s (revision %s, %s) on the engine: no live task has it", c.id[:12], c.task, c.revision, c.state)
		}
		if c.state != "running" {
			t.Errorf("container %s of live task %s is %s", c.id[:12], c.task, c.state)
		}
	}
	for k, n := range perTask {
		if n != 1 {
			t.Errorf("%d containers for %s", n, k)
		}
	}
	if len(containers) != deployKillTasks {
		t.Errorf("%d containers of the cluster on the engine, want %d", len(containers), deployKillTasks)
	}
	// Every other task is recorded STOPPED, with a time; none of the new
	// deployment's stopped (nothing was started twice or replaced), and
	// every old one was replaced, not failed.
	rows, err := d.db.Query(`SELECT id, deployment_id, last_status, desired_status, stop_code, stopped_reason, failed, stopped_at IS NOT NULL
		FROM tasks WHERE cluster = $1`, d.cluster)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	ofNew := 0
	for rows.Next() {
		var id, depID, status, desired, code, reason string
		var failed, hasStopped bool
		if err := rows.Scan(&id, &depID, &status, &desired, &code, &reason, &failed, &hasStopped); err != nil {
			t.Fatal(err)
		}
		switch {
		case depID == dep.ID:
			ofNew++
			if !ids[id] || status != deploy.TaskRunning {
				t.Errorf("task %s of the new deployment: %s (%s %q): a task made twice or lost", id, status, code, reason)
			}
		case ids[id]:
			t.Errorf("live task %s belongs to deployment %s, not %s", id, depID, dep.ID)
		case status != deploy.TaskStopped || desired != deploy.TaskStopped || !hasStopped:
			t.Errorf("old task %s is %s (desired %s), want STOPPED", id, status, desired)
		case failed || code != deploy.StopServiceSchedulerInitiated || !strings.Contains(reason, "replaced by deployment"):
			t.Errorf("old task %s stopped with %s %q (failed %v), want replaced", id, code, reason, failed)
		}
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	if ofNew != deployKillTasks {
		t.Errorf("the new deployment made %d tasks, want %d", ofNew, deployKillTasks)
	}
	// The load balancer of the new server answers with the new revision.
	waitFor(t, ctx, "the load balancer to answer "+message, func() (bool, error) {
		time.Sleep(100 * time.Millisecond)
		body, err := getBody(d.lbURL)
		return err == nil && strings.TrimSpace(body) == message, nil
	})
}

// checkAdopted checks that the containers in before still run, as they
// were: the same container, started once, at the same time. A container
// whose task the restarted server has since replaced on purpose (the
// rollout went on: the new tasks became healthy, and it stopped an old
// one as "replaced by deployment") is not one it failed to adopt.
func (d *deployKillHarness) checkAdopted(before map[string]container, what string) {
	d.t.Helper()
	now := map[string]container{}
	for _, c := range d.containers() {
		now[c.id] = c
	}
	for id, b := range before {
		c, ok := now[id]
		if (!ok || c.state != "running") && d.replaced(b.task) {
			continue
		}
		switch {
		case !ok:
			d.t.Errorf("%s: container %s of task %s is gone", what, id[:12], b.task)
		case c.state != "running" || c.startedAt != b.startedAt || c.restarts != 0:
			d.t.Errorf("%s: container %s of task %s was %s since %s, is %s since %s (%d restarts): not adopted as it ran",
				what, id[:12], b.task, b.state, b.startedAt, c.state, c.startedAt, c.restarts)
		}
	}
}

// TestDeployKilledMidRollout kills the server at several points of four
// rolling deployments of a three-task service, and once when it is
// steady: right after an update is accepted; as new tasks start
// (PROVISIONING); while they run but are not yet healthy; while old tasks
// are DEPROVISIONING; as an old task's container has exited but is not
// yet removed (the server frozen the moment the engine reported it). Each time the next
// server converges, and the healthy tasks the killed one started are
// adopted.
func TestDeployKilledMidRollout(t *testing.T) {
	t.Parallel()
	d, srv := newDeployKillHarness(t)
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Minute)
	defer cancel()
	d.converge(ctx, d.revisions[0], "v1")

	// 1. Right after the update is accepted.
	v2 := d.revision("v2")
	before := d.healthyContainers()
	d.patch(map[string]any{"taskDefinition": v2})
	srv.kill(t)
	t.Logf("killed right after the update to %s: its tasks %v", v2, d.taskStatuses(v2))
	srv = d.start(t)
	// The old tasks are adopted: a new deployment does not restart them.
	d.checkAdopted(before, "after the kill at the update")
	d.converge(ctx, v2, "v2")

	// 2. As a new task starts: the server is frozen (SIGSTOP) the moment
	// the database shows a task PROVISIONING, so that what it asked of the
	// engine is done and nothing more (a container made but not started,
	// say), and then killed. Then while the new tasks run before their
	// health check has passed.
	v3 := d.revision("v3")
	d.patch(map[string]any{"taskDefinition": v3})
	seen := d.waitTask(ctx, v3, deploy.TaskProvisioning)
	before = d.healthyContainers()
	srv.freeze(t)
	time.Sleep(time.Second) // for the engine to finish what it was asked
	srv.kill(t)
	t.Logf("killed as tasks of %s started: %v; their containers %v", v3, seen, d.containerStates(v3))
	srv = d.start(t)
	d.checkAdopted(before, "after the kill at a start")
	seen = d.waitTask(ctx, v3, "RUNNING/UNKNOWN", "RUNNING/HEALTHY")
	before = d.healthyContainers()
	srv.kill(t)
	t.Logf("killed while tasks of %s were running: %v", v3, seen)
	srv = d.start(t)
	d.checkAdopted(before, "after the kill while running")
	d.converge(ctx, v3, "v3")

	// 3. While old tasks are DEPROVISIONING: the new ones that are
	// healthy by then are the ones the service keeps.
	v4 := d.revision("v4")
	d.patch(map[string]any{"taskDefinition": v4})
	seen = d.waitTask(ctx, v3, deploy.TaskDeprovisioning)
	before = d.healthyContainers()
	srv.kill(t)
	t.Logf("killed while tasks of %s were stopping: %v; %s: %v", v3, seen, v4, d.taskStatuses(v4))
	srv = d.start(t)
	d.converge(ctx, v4, "v4")
	newHealthy := map[string]container{}
	_, rev4, _ := strings.Cut(v4, ":")
	for id, c := range before {
		if c.revision == rev4 {
			newHealthy[id] = c
		}
	}
	if len(newHealthy) == 0 {
		t.Errorf("no task of %s was healthy while the old ones stopped", v4)
	}
	d.checkAdopted(newHealthy, "after the kill while old tasks stopped")

	// 4. As an old task's container exits: the server is frozen (SIGSTOP)
	// when the engine reports the exit, before it has read the
	// container's output and removed it, and then killed. (The engine's
	// events are followed from the update on: the old tasks stop seconds
	// later, once new ones are healthy.)
	v5 := d.revision("v5")
	died := d.engineEvent(ctx, "die", v4)
	d.patch(map[string]any{"taskDefinition": v5})
	select {
	case <-died:
	case <-time.After(3 * time.Minute):
		t.Fatalf("no container of %s exited within 3 minutes of the update", v4)
	}
	srv.freeze(t)
	t.Logf("froze as a container of %s exited: tasks %v, containers %v", v4, d.taskStatuses(v4), d.containerStates(v4))
	srv.kill(t)
	srv = d.start(t)
	d.converge(ctx, v5, "v5")

	// 5. Steady: the next server changes nothing.
	before = d.healthyContainers()
	tasksBefore := d.taskCount()
	srv.kill(t)
	srv = d.start(t)
	// A few reconciles' time (the busy interval is 500 ms).
	time.Sleep(5 * time.Second)
	d.converge(ctx, v5, "v5")
	d.checkAdopted(before, "after the kill when steady")
	if n := d.taskCount(); n != tasksBefore {
		t.Errorf("%d tasks recorded after a kill at steady state, %d before", n, tasksBefore)
	}
	srv.stop(t)
}

// engineEvent follows the engine's events from now on, and closes the
// channel at the first action (die, say) of a container of revision ref
// in the cluster.
func (d *deployKillHarness) engineEvent(ctx context.Context, action, ref string) <-chan struct{} {
	d.t.Helper()
	_, rev, _ := strings.Cut(ref, ":")
	ctx, cancel := context.WithCancel(ctx)
	d.t.Cleanup(cancel)
	cmd := exec.CommandContext(ctx, "docker", "events", "--since", strconv.FormatInt(time.Now().Unix(), 10),
		"--filter", "type=container", "--filter", "event="+action,
		"--filter", "label=io.scangate.cluster="+d.cluster, "--filter", "label=io.scangate.revision="+rev, "--format", "{{.Action}}")
	out, err := cmd.StdoutPipe()
	if err != nil {
		d.t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		d.t.Fatal(err)
	}
	seen := make(chan struct{})
	go func() {
		defer func() { cancel(); _ = cmd.Wait() }()
		line, err := bufio.NewReader(out).ReadString('\n')
		if err == nil && strings.TrimSpace(line) == action {
			close(seen)
		}
	}()
	return seen
}

// containerStates are the states of revision ref's containers.
func (d *deployKillHarness) containerStates(ref string) []string {
	_, rev, _ := strings.Cut(ref, ":")
	var out []string
	for _, c := range d.containers() {
		if c.revision == rev {
			out = append(out, c.state)
		}
	}
	return out
}

// freeze stops the server (SIGSTOP) where it is, for a kill to follow.
func (s *server) freeze(t *testing.T) {
	t.Helper()
	if err := s.cmd.Process.Signal(syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
}

func (d *deployKillHarness) taskCount() int {
	d.t.Helper()
	var n int
	if err := d.db.QueryRow(`SELECT count(*) FROM tasks WHERE cluster = $1`, d.cluster).Scan(&n); err != nil {
		d.t.Fatal(err)
	}
	return n
}

// removeCluster removes a cluster's containers and network from the
// engine.
func removeCluster(cluster string) {
	out, _ := exec.Command("docker", "ps", "-aq", "--filter", "label=io.scangate.cluster="+cluster).Output()
	if ids := strings.Fields(string(out)); len(ids) > 0 {
		_ = exec.Command("docker", append([]string{"rm", "-f"}, ids...)...).Run()
	}
	_ = exec.Command("docker", "network", "rm", "scangate-"+cluster).Run()
}

func getBody(url string) (string, error) {
	c := http.Client{Timeout: 5 * time.Second}
	resp, err := c.Get(url)
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

// replaced tells whether the task was stopped on purpose by a rollout:
// desired STOPPED, by the scheduler, as replaced by a deployment.
func (d *deployKillHarness) replaced(task string) bool {
	var desired, code, reason string
	err := d.db.QueryRow(`SELECT desired_status, stop_code, stopped_reason FROM tasks WHERE id = $1`, task).Scan(&desired, &code, &reason)
	return err == nil && desired == deploy.TaskStopped && code == deploy.StopServiceSchedulerInitiated && strings.Contains(reason, "replaced by deployment")
}
