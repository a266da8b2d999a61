package e2e

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/scangate/scangate/internal/deploy"
	"github.com/scangate/scangate/internal/nettest"
	"github.com/scangate/scangate/internal/servertest"
)

// A rolling update of five tasks behind the load balancer, from revision 1
// (MESSAGE=v1) to revision 2 (MESSAGE=v2), under a keep-alive client that
// asks every 50 ms for the whole update: no request fails, the healthy
// tasks never drop below the minimum healthy count, the answers move from
// v1 to v2 and are all v2 once the deployment has completed, and no
// container of revision 1 is left on the engine. Two deployment
// configurations: 100/200 (five new tasks beside the old ones) and 50/150
// (old tasks stopped before their replacements are healthy).
func TestRollingUpdateBehindLoadBalancer(t *testing.T) {
	t.Parallel()
	h := newHarness(t, servertest.Options{Feeds: []string{}})
	cluster := h.cluster("roll")
	image := h.pushApp("shop/roll-" + h.id)
	for _, c := range []struct{ min, max int }{{100, 200}, {50, 150}} {
		h.rollingUpdate(cluster, image, c.min, c.max)
	}
}

// healthCheck is the app's own health check at ECS's shortest interval.
const healthCheck = `, "healthCheck": {"command": ["CMD", "/app", "probe", "http://127.0.0.1:8080/health"], "interval": 5, "timeout": 2, "retries": 2}`

// probe is what the client saw at one tick, and what the API said of the
// service's tasks then.
type probe struct {
	at      time.Time
	body    string
	err     error
	healthy int // tasks RUNNING, desired RUNNING and HEALTHY
	running int // tasks desired RUNNING, started or not
	apiErr  error
}

func (h *harness) rollingUpdate(cluster, image string, minPct, maxPct int) {
	t := h.t
	const desired = 5
	name := fmt.Sprintf("roll-%d-%d-%s", minPct, maxPct, h.id)
	what := fmt.Sprintf("%d/%d", minPct, maxPct)
	port := nettest.FreePort(t)
	v1 := h.taskDef(name, image, map[string]string{"MESSAGE": "v1"}, healthCheck)
	h.api("POST", "/api/v1/services", map[string]any{"clusterName": cluster, "serviceName": name, "taskDefinition": v1, "desiredCount": 0,
		"config": map[string]any{
			"deploymentConfiguration": map[string]any{"minimumHealthyPercent": minPct, "maximumPercent": maxPct},
			"loadBalancer":            map[string]any{"listenerPort": port, "containerName": "app", "containerPort": 8080},
		}}, http.StatusCreated)
	h.override(cluster, name, image)
	h.api("PATCH", "/api/v1/clusters/"+cluster+"/services/"+name, map[string]any{"desiredCount": desired}, http.StatusOK)
	h.waitService(cluster, name, what+": steady on v1", 3*time.Minute, func(s *deploy.Service) bool {
		return steady(s) && healthyCount(h.tasks(cluster, name, "RUNNING")) == desired
	})
	lbURL := fmt.Sprintf("http://127.0.0.1:%d/", port)
	if body, err := get(lbURL); err != nil || strings.TrimSpace(body) != "v1" {
		t.Fatalf("%s: the load balancer answers %q, %v before the update; want v1", what, body, err)
	}
	v2 := h.taskDef(name, image, map[string]string{"MESSAGE": "v2"}, healthCheck)

	// The balancer's count is read before the client starts: read after,
	// it could already hold the client's first request (it did once on a
	// loaded CI machine, and the count then came out one short).
	lbBefore := h.lbCounters(cluster, name)

	// The client: one keep-alive connection to the listener, a GET every
	// 50 ms, and at each tick the API's view of the service's tasks.
	client := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: 1}}
	defer client.CloseIdleConnections()
	var (
		mu      sync.Mutex
		samples []probe
		stop    = make(chan struct{})
		done    = make(chan struct{})
	)
	go func() {
		defer close(done)
		tick := time.NewTicker(50 * time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-stop:
				return
			case <-tick.C:
			}
			p := probe{at: time.Now()}
			p.body, p.err = getWith(client, lbURL)
			p.healthy, p.running, p.apiErr = h.countTasks(cluster, name)
			mu.Lock()
			samples = append(samples, p)
			mu.Unlock()
		}
	}()
	started := time.Now()
	h.api("PATCH", "/api/v1/clusters/"+cluster+"/services/"+name, map[string]any{"taskDefinition": v2}, http.StatusOK)
	s := h.waitService(cluster, name, what+": steady on v2", 5*time.Minute, func(s *deploy.Service) bool {
		return steady(s) && s.TaskDefinition == v2
	})
	completed := time.Now()
	// A second more of requests after the deployment completed.
	time.Sleep(time.Second)
	close(stop)
	<-done
	t.Logf("%s: the update took %s; %d requests", what, completed.Sub(started).Round(100*time.Millisecond), len(samples))

	// The balancer's own count: no request it answered with an error,
	// and none it had to send on to another task because the one it
	// picked did not take the connection (a task stopped before it was
	// drained, or a target that was not listening yet).
	// The balancer counts a request once its answer is written, which
	// can be just after the client has read it.
	lbAfter := h.lbCounters(cluster, name)
	for wait := time.Now().Add(5 * time.Second); lbAfter["requests"]-lbBefore["requests"] < int64(len(samples)) && time.Now().Before(wait); {
		time.Sleep(100 * time.Millisecond)
		lbAfter = h.lbCounters(cluster, name)
	}
	if lbAfter["requests"]-lbBefore["requests"] < int64(len(samples)) || lbAfter["failures"] != lbBefore["failures"] || lbAfter["retries"] != lbBefore["retries"] {
		t.Errorf("%s: the load balancer counted %v before the update and %v after, for %d requests: want no failure and no retry",
			what, lbBefore, lbAfter, len(samples))
	}

	floor, ceiling := (desired*minPct+99)/100, desired*maxPct/100
	failed, v1s, v2s, lastV1, firstV2 := 0, 0, 0, -1, -1
	minHealthy, maxRunning := desired, 0
	for i, p := range samples {
		body := strings.TrimSpace(p.body)
		switch {
		case p.err != nil:
			failed++
			if failed <= 5 {
				t.Errorf("%s: request %d at +%s failed: %v", what, i, p.at.Sub(started).Round(time.Millisecond), p.err)
			}
		case body == "v1":
			v1s++
			lastV1 = i
			if p.at.After(completed) {
				t.Errorf("%s: request %d answered v1 after the deployment completed", what, i)
			}
		case body == "v2":
			v2s++
			if firstV2 < 0 {
				firstV2 = i
			}
		default:
			t.Errorf("%s: request %d answered %q", what, i, body)
		}
		if p.apiErr != nil {
			t.Fatalf("%s: the API at tick %d: %v", what, i, p.apiErr)
		}
		minHealthy, maxRunning = min(minHealthy, p.healthy), max(maxRunning, p.running)
		if p.running > ceiling {
			t.Errorf("%s: %d tasks desired RUNNING at +%s, above the maximum %d", what, p.running, p.at.Sub(started).Round(time.Millisecond), ceiling)
		}
		if p.healthy < floor {
			t.Errorf("%s: %d healthy tasks at +%s, below the minimum healthy count %d", what, p.healthy, p.at.Sub(started).Round(time.Millisecond), floor)
		}
	}
	t.Logf("%s: %d failed, %d v1 then %d v2 (last v1 at request %d, first v2 at %d); fewest healthy tasks %d (floor %d), most tasks desired RUNNING %d (ceiling %d)",
		what, failed, v1s, v2s, lastV1, firstV2, minHealthy, floor, maxRunning, ceiling)
	if failed > 0 {
		t.Errorf("%s: %d of %d requests failed during the update", what, failed, len(samples))
	}
	if len(samples) < 20 || strings.TrimSpace(samples[0].body) != "v1" || strings.TrimSpace(samples[len(samples)-1].body) != "v2" || v1s == 0 || v2s == 0 {
		t.Errorf("%s: the answers do not move from v1 to v2 (%d requests, %d v1, %d v2)", what, len(samples), v1s, v2s)
	}

	// The engine: the service's containers are the five tasks of revision
	// 2, and revision 1's are gone, not just stopped.
	tasks := h.tasks(cluster, name, "RUNNING")
	live := map[string]bool{}
	for _, tk := range tasks {
		live[tk.ID] = true
		if tk.TaskDefinition != v2 || tk.LastStatus != deploy.TaskRunning || tk.Health != deploy.HealthHealthy {
			t.Errorf("%s: task %s after the update: %s %s %s", what, tk.ID, tk.TaskDefinition, tk.LastStatus, tk.Health)
		}
	}
	if len(tasks) != desired {
		t.Errorf("%s: %d live tasks after the update, want %d", what, len(tasks), desired)
	}
	out, err := exec.Command("docker", "ps", "-a", "--filter", "label=io.scangate.service="+name, "--filter", "label=io.scangate.cluster="+cluster,
		"--format", `{{.Label "io.scangate.task"}} {{.Label "io.scangate.revision"}} {{.State}}`).Output()
	if err != nil {
		t.Fatalf("docker ps: %v", err)
	}
	lines := strings.Split(strings.TrimSpace(string(out)), "\n")
	if len(lines) != desired {
		t.Errorf("%s: %d containers on the engine, want %d:\n%s", what, len(lines), desired, out)
	}
	_, rev2, _ := strings.Cut(v2, ":")
	for _, l := range lines {
		f := strings.Fields(l)
		if len(f) != 3 || !live[f[0]] || f[1] != rev2 || f[2] != "running" {
			t.Errorf("%s: container %q on the engine; want running containers of revision %s's live tasks", what, l, rev2)
		}
	}
	// A new task got requests only once healthy: in its output, the
	// first GET / comes after the first health check that passed.
	for _, tk := range tasks {
		if len(tk.Containers) == 0 {
			continue
		}
		logs, err := exec.Command("docker", "logs", "--timestamps", tk.Containers[0].RuntimeID).Output()
		if err != nil {
			t.Fatalf("docker logs: %v", err)
		}
		var healthy, served string
		for _, l := range strings.Split(string(logs), "\n") {
			ts, msg, _ := strings.Cut(l, " ")
			switch {
			case healthy == "" && msg == "app: GET /health 200":
				healthy = ts
			case served == "" && msg == "app: GET / 200":
				served = ts
			}
		}
		if served == "" || healthy == "" || parseDockerTime(t, served).Before(parseDockerTime(t, healthy)) {
			t.Errorf("%s: task %s served its first request at %q, its first health check passed at %q: a target before it was healthy",
				what, tk.ID, served, healthy)
		}
	}
	stopped := 0
	for _, tk := range h.tasks(cluster, name, "STOPPED") {
		if tk.TaskDefinition == v1 {
			stopped++
			if tk.StopCode != deploy.StopServiceSchedulerInitiated || !strings.Contains(tk.StoppedReason, "replaced by deployment") {
				t.Errorf("%s: old task %s stopped with %s %q", what, tk.ID, tk.StopCode, tk.StoppedReason)
			}
			// Drained before it was stopped: no request after SIGTERM.
			if _, after, ok := strings.Cut(tk.LogTail, "finishing requests in flight"); !ok || strings.Contains(after, "GET / ") {
				t.Errorf("%s: old task %s served after its SIGTERM, or was not stopped gracefully:\n%s", what, tk.ID, tk.LogTail)
			}
		}
	}
	if stopped != desired {
		t.Errorf("%s: %d tasks of %s recorded STOPPED, want %d: %s", what, stopped, v1, desired, describeService(s))
	}
}

// countTasks counts the service's serving tasks, and those it wants
// running, as the API shows them, without failing the test (it runs in
// the probe's goroutine).
func (h *harness) countTasks(cluster, service string) (healthy, running int, err error) {
	req, err := http.NewRequest("GET", fmt.Sprintf("http://%s/api/v1/tasks?cluster=%s&service=%s", h.s.Addr, cluster, service), nil)
	if err != nil {
		return 0, 0, err
	}
	req.Header.Set("Authorization", "Bearer "+h.s.Token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, 0, err
	}
	defer resp.Body.Close()
	var out struct{ Tasks []*deploy.Task }
	if err := json.NewDecoder(resp.Body).Decode(&out); err != nil {
		return 0, 0, err
	}
	for _, tk := range out.Tasks {
		if tk.DesiredStatus == deploy.TaskRunning {
			running++
		}
	}
	return healthyCount(out.Tasks), running, nil
}

func healthyCount(tasks []*deploy.Task) int {
	n := 0
	for _, tk := range tasks {
		if tk.LastStatus == deploy.TaskRunning && tk.DesiredStatus == deploy.TaskRunning && tk.Health == deploy.HealthHealthy {
			n++
		}
	}
	return n
}

func getWith(c *http.Client, url string) (string, error) {
	resp, err := c.Get(url)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return "", err
	}
	if resp.StatusCode != http.StatusOK {
		return string(body), fmt.Errorf("%s: %s", resp.Status, strings.TrimSpace(string(body)))
	}
	return string(body), nil
}

func parseDockerTime(t *testing.T, s string) time.Time {
	t.Helper()
	at, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		t.Fatalf("docker logs --timestamps: %v", err)
	}
	return at
}

// lbCounters are the service's load balancer counters in /metrics.
func (h *harness) lbCounters(cluster, service string) map[string]int64 {
	h.t.Helper()
	body, err := getAs("http://"+h.s.Addr+"/metrics", h.s.Token)
	if err != nil {
		h.t.Fatal(err)
	}
	out := map[string]int64{}
	for _, name := range []string{"requests", "failures", "retries"} {
		prefix := fmt.Sprintf("scangate_lb_%s_total{cluster=%q,service=%q} ", name, cluster, service)
		for _, l := range strings.Split(body, "\n") {
			if v, ok := strings.CutPrefix(l, prefix); ok {
				var f float64
				fmt.Sscan(v, &f)
				out[name] = int64(f)
			}
		}
	}
	return out
}
