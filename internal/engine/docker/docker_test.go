package docker_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/moby/moby/client"

	"github.com/scangate/scangate/internal/apptest"
	"github.com/scangate/scangate/internal/engine"
	"github.com/scangate/scangate/internal/engine/docker"
	"github.com/scangate/scangate/internal/logbuf"
	"github.com/scangate/scangate/internal/registry/registrytest"
)

// These tests need a Docker Engine (DOCKER_HOST, else the default socket)
// and fail without one. The tasks run apptest's app, pulled by digest from
// a scangate registry started for the test; every test has clusters of its
// own, removed with their tasks when it ends.

// fixture is a Docker Engine, a registry holding the app, and a Runtime.
type fixture struct {
	docker *client.Client
	reg    string // the registry's host:port
	token  string
	rt     *docker.Runtime
	image  string // the app by digest in the registry
	auth   map[string]engine.Credentials
}

// TestMain runs up to 8 tests at once unless -parallel says otherwise:
// they wait on the engine far more than they use a CPU.
func TestMain(m *testing.M) {
	flag.Parse()
	set := false
	flag.Visit(func(f *flag.Flag) { set = set || f.Name == "test.parallel" })
	if p := flag.Lookup("test.parallel"); !set && p != nil {
		if n, err := strconv.Atoi(p.Value.String()); err == nil && n < 8 {
			p.Value.Set("8")
		}
	}
	os.Exit(m.Run())
}

func newFixture(t *testing.T) *fixture {
	t.Helper()
	f := &fixture{docker: dockerClient(t)}
	_, base, token := registrytest.Start(t, nil)
	f.reg, f.token = strings.TrimPrefix(base, "http://"), token
	f.image = apptest.Push(t, f.reg, "enginetest/app", f.token)
	f.auth = map[string]engine.Credentials{f.reg: {Username: "engine", Password: f.token}}
	f.rt = newRuntime(t)
	t.Cleanup(func() {
		// Untag what the tests pulled; the image goes with its last tag.
		if _, err := f.docker.ImageRemove(context.Background(), f.image, client.ImageRemoveOptions{}); err != nil {
			t.Logf("removing %s: %v", f.image, err)
		}
	})
	return f
}

func dockerClient(t *testing.T) *client.Client {
	t.Helper()
	c, err := client.New(client.FromEnv)
	if err != nil {
		t.Fatalf("docker client: %v", err)
	}
	t.Cleanup(func() { c.Close() })
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := c.Ping(ctx, client.PingOptions{NegotiateAPIVersion: true}); err != nil {
		t.Fatalf("these tests need a Docker Engine: %v", err)
	}
	return c
}

func newRuntime(t *testing.T) *docker.Runtime {
	t.Helper()
	rt, err := docker.New(docker.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { rt.Close() })
	return rt
}

func unique() string {
	b := make([]byte, 5)
	rand.Read(b)
	return hex.EncodeToString(b)
}

// cluster makes a cluster of the test's own, and removes its tasks and
// itself when the test ends.
func (f *fixture) cluster(t *testing.T) string {
	t.Helper()
	name := "t" + unique()
	if err := f.rt.EnsureCluster(context.Background(), name); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { removeCluster(t, f.rt, name) })
	return name
}

func removeCluster(t *testing.T, rt *docker.Runtime, cluster string) {
	ctx := context.Background()
	tasks, err := rt.Tasks(ctx, cluster)
	if err != nil {
		t.Errorf("cleanup: %v", err)
	}
	for _, task := range tasks {
		if err := rt.RemoveTask(ctx, cluster, task.TaskID); err != nil {
			t.Errorf("cleanup: %v", err)
		}
	}
	if err := rt.RemoveCluster(ctx, cluster); err != nil {
		t.Errorf("cleanup: %v", err)
	}
}

// task is a task of the cluster: service web, family web, revision 1.
func (f *fixture) task(cluster, id string, containers ...engine.ContainerSpec) engine.TaskSpec {
	return engine.TaskSpec{
		Cluster: cluster, Service: "web", TaskID: id, Family: "web", Revision: 1,
		HostIP: "127.0.0.1", Containers: containers, Auth: f.auth,
	}
}

// app is a container of the app, with env as KEY=VALUE.
func (f *fixture) app(name string, env ...string) engine.ContainerSpec {
	c := engine.ContainerSpec{Name: name, Image: f.image, Essential: true, Env: map[string]string{}, StopTimeout: 5 * time.Second}
	for _, kv := range env {
		k, v, _ := strings.Cut(kv, "=")
		c.Env[k] = v
	}
	return c
}

// published is app with its port published on a free host port.
func (f *fixture) published(name string, env ...string) engine.ContainerSpec {
	c := f.app(name, env...)
	c.Ports = []engine.PortMapping{{ContainerPort: apptest.Port}}
	return c
}

// probed is app with a health check of url every 500 ms.
func (f *fixture) probed(name, url string, env ...string) engine.ContainerSpec {
	c := f.app(name, env...)
	// The tests check what the probe answers, not how long the engine's
	// exec of it takes: on CI's loaded engine that took over 3 s once, and
	// the check failed by its timeout instead of by the probe's answer.
	c.Health = &engine.HealthCheck{Command: apptest.Probe(url), Interval: 500 * time.Millisecond, Timeout: 15 * time.Second, Retries: 2}
	return c
}

func (f *fixture) start(t *testing.T, spec engine.TaskSpec) engine.TaskState {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	state, err := f.rt.StartTask(ctx, spec)
	if err != nil {
		t.Fatalf("StartTask %s: %v", spec.TaskID, err)
	}
	return state
}

// waitFor polls the container's state until ok says so, and returns it.
func (f *fixture) waitFor(t *testing.T, cluster, task, container, what string, ok func(engine.ContainerState) bool) engine.ContainerState {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	var last engine.ContainerState
	for time.Now().Before(deadline) {
		state, err := f.rt.Task(context.Background(), cluster, task)
		if err != nil {
			t.Fatal(err)
		}
		for _, c := range state.Containers {
			if c.Name == container {
				last = c
				if ok(c) {
					return c
				}
			}
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatalf("container %s of task %s not %s in 30 s: %+v", container, task, what, last)
	return last
}

func exited(c engine.ContainerState) bool { return c.State == engine.StateExited }

// get GETs url until the app answers (it may not listen yet).
func get(t *testing.T, url string) string {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for {
		resp, err := http.Get(url)
		if err == nil {
			body, rerr := io.ReadAll(resp.Body)
			resp.Body.Close()
			if rerr == nil && resp.StatusCode == http.StatusOK {
				return string(body)
			}
			err = fmt.Errorf("%s %q %v", resp.Status, body, rerr)
		}
		if time.Now().After(deadline) {
			t.Fatalf("GET %s: %v", url, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func hostPort(t *testing.T, c engine.ContainerState) string {
	t.Helper()
	if len(c.Ports) != 1 || c.Ports[0].ContainerPort != apptest.Port || c.Ports[0].Protocol != "tcp" || c.Ports[0].HostIP != "127.0.0.1" || c.Ports[0].HostPort == 0 {
		t.Fatalf("published ports %+v, want 8080/tcp on 127.0.0.1", c.Ports)
	}
	return fmt.Sprintf("127.0.0.1:%d", c.Ports[0].HostPort)
}

func logs(t *testing.T, rt *docker.Runtime, cluster, task, container string, opts engine.LogOptions) string {
	t.Helper()
	var buf bytes.Buffer
	if err := rt.Logs(context.Background(), cluster, task, container, opts, &buf); err != nil {
		t.Fatal(err)
	}
	return buf.String()
}

func TestRuntime(t *testing.T) {
	f := newFixture(t)
	if v, err := f.rt.Ping(context.Background()); err != nil {
		t.Fatal(err)
	} else {
		t.Logf("Docker Engine API %s", v)
	}
	t.Run("lifecycle", f.testLifecycle)
	t.Run("concurrent starts", f.testConcurrentStarts)
	t.Run("loaded image", f.testLoadedImage)
	t.Run("exit code", f.testExitCode)
	t.Run("failed start", f.testFailedStart)
	t.Run("privileged", f.testPrivileged)
	t.Run("OOM", f.testOOM)
	t.Run("health", f.testHealth)
	t.Run("depends on", f.testDependsOn)
	t.Run("watch", f.testWatch)
	t.Run("logs", f.testLogs)
	t.Run("pull errors", f.testPullErrors)
	t.Run("aliases", f.testAliases)
	t.Run("clusters", f.testClusters)
	t.Run("invalid specs", f.testInvalid)
}

// testLifecycle starts a task and reaches it, checks what the engine was
// told, starts it again, adopts it from a second Runtime, stops it and
// removes it.
func (f *fixture) testLifecycle(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	cluster := f.cluster(t)
	web := f.published("web", "MESSAGE=hello from "+cluster)
	web.CPU, web.MemoryMiB, web.MemoryReservationMiB = 512, 64, 32
	spec := f.task(cluster, "life1", web)
	spec.Aliases = []string{"shop-api"}
	state := f.start(t, spec)

	if state.Cluster != cluster || state.Service != "web" || state.TaskID != "life1" || state.Family != "web" || state.Revision != 1 || len(state.Containers) != 1 {
		t.Fatalf("state %+v", state)
	}
	c := state.Containers[0]
	if c.Name != "web" || c.ID == "" || c.Image != f.image || c.State != engine.StateRunning || c.StartedAt.IsZero() || c.Health != engine.HealthNone {
		t.Errorf("container state %+v", c)
	}
	if body := get(t, "http://"+hostPort(t, c)+"/"); body != "hello from "+cluster+"\n" {
		t.Errorf("GET / = %q", body)
	}

	// What the engine was told.
	in, err := f.docker.ContainerInspect(ctx, c.ID, client.ContainerInspectOptions{})
	if err != nil {
		t.Fatal(err)
	}
	ci := in.Container
	if want := "/scangate-" + cluster + "-life1-web"; ci.Name != want {
		t.Errorf("container name %q, want %q", ci.Name, want)
	}
	wantLabels := map[string]string{
		engine.LabelCluster: cluster, engine.LabelService: "web", engine.LabelTask: "life1",
		engine.LabelFamily: "web", engine.LabelRevision: "1", engine.LabelContainer: "web",
	}
	for k, v := range wantLabels {
		if got, ok := ci.Config.Labels[k]; !ok || got != v {
			t.Errorf("label %s = %q, want %q", k, got, v)
		}
	}
	h := ci.HostConfig
	if !h.RestartPolicy.IsNone() || h.Privileged || h.NanoCPUs != 500_000_000 || h.Memory != 64<<20 || h.MemorySwap != 64<<20 || h.MemoryReservation != 32<<20 {
		t.Errorf("host config: restart %q, privileged %v, NanoCPUs %d, memory %d, swap %d, reservation %d",
			h.RestartPolicy.Name, h.Privileged, h.NanoCPUs, h.Memory, h.MemorySwap, h.MemoryReservation)
	}
	if ci.Config.StopTimeout == nil || *ci.Config.StopTimeout != 5 || !slices.Contains(ci.Config.Env, "MESSAGE=hello from "+cluster) {
		t.Errorf("config: stop timeout %v, env %q", ci.Config.StopTimeout, ci.Config.Env)
	}
	ep := ci.NetworkSettings.Networks["scangate-"+cluster]
	if ep == nil || !slices.Contains(ep.Aliases, "shop-api") || len(ci.NetworkSettings.Networks) != 1 {
		t.Errorf("networks %+v, want scangate-%s with the alias shop-api", ci.NetworkSettings.Networks, cluster)
	}

	// Started again: the same container, no second one.
	again := f.start(t, spec)
	if len(again.Containers) != 1 || again.Containers[0].ID != c.ID {
		t.Errorf("a second start made %+v, want the container %s again", again.Containers, c.ID)
	}
	list, err := f.docker.ContainerList(ctx, client.ContainerListOptions{All: true, Filters: make(client.Filters).Add("label", engine.LabelTask+"=life1").Add("label", engine.LabelCluster+"="+cluster)})
	if err != nil || len(list.Items) != 1 {
		t.Errorf("the task has %d containers (%v), want 1", len(list.Items), err)
	}

	// Adopted by a Runtime that never saw it start.
	rt2 := newRuntime(t)
	tasks, err := rt2.Tasks(ctx, cluster)
	if err != nil {
		t.Fatal(err)
	}
	if len(tasks) != 1 || !reflect.DeepEqual(tasks[0], again) {
		t.Errorf("Tasks from a new Runtime:\n%+v\nwant\n%+v", tasks, again)
	}
	if one, err := rt2.Task(ctx, cluster, "life1"); err != nil || !reflect.DeepEqual(one, again) {
		t.Errorf("Task: %+v, %v", one, err)
	}

	// Stopped: SIGTERM, a graceful exit 0, the container kept.
	start := time.Now()
	if err := f.rt.StopTask(ctx, cluster, "life1", 10*time.Second); err != nil {
		t.Fatal(err)
	}
	if took := time.Since(start); took > 5*time.Second {
		t.Errorf("a graceful stop took %s", took)
	}
	stopped, err := f.rt.Task(ctx, cluster, "life1")
	if err != nil {
		t.Fatal(err)
	}
	if s := stopped.Containers[0]; s.State != engine.StateExited || s.ExitCode != 0 || s.OOMKilled || s.FinishedAt.Before(s.StartedAt) {
		t.Errorf("stopped container %+v, want exited with code 0", s)
	}
	if out := logs(t, f.rt, cluster, "life1", "web", engine.LogOptions{}); !strings.Contains(out, "app: terminated: finishing requests in flight\n") || !strings.Contains(out, "app: stopped gracefully\n") {
		t.Errorf("logs after StopTask:\n%s", out)
	}
	if err := f.rt.StopTask(ctx, cluster, "life1", time.Second); err != nil {
		t.Errorf("stopping a stopped task: %v", err)
	}

	for _, err := range []error{
		f.rt.StopTask(ctx, cluster, "nosuchtask", time.Second),
		func() error { _, err := f.rt.Task(ctx, cluster, "nosuchtask"); return err }(),
		f.rt.Logs(ctx, cluster, "life1", "nosuchcontainer", engine.LogOptions{}, io.Discard),
	} {
		if !errors.Is(err, engine.ErrNotFound) {
			t.Errorf("err = %v, want ErrNotFound", err)
		}
	}
	if err := f.rt.RemoveTask(ctx, cluster, "life1"); err != nil {
		t.Fatal(err)
	}
	if _, err := f.rt.Task(ctx, cluster, "life1"); !errors.Is(err, engine.ErrNotFound) {
		t.Errorf("Task after RemoveTask: %v", err)
	}
	if err := f.rt.RemoveTask(ctx, cluster, "life1"); err != nil {
		t.Errorf("removing a removed task: %v", err)
	}
}

// testConcurrentStarts starts one task from four goroutines at once:
// each gets the task, and it has one container of each name.
func (f *fixture) testConcurrentStarts(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	cluster := f.cluster(t)
	web := f.app("web")
	web.DependsOn = []engine.Dependency{{Container: "init", Condition: engine.ConditionSuccess}}
	spec := f.task(cluster, "racer", web, f.app("init", "EXIT_AFTER=0s"))
	states := make([]engine.TaskState, 4)
	errs := make([]error, 4)
	var wg sync.WaitGroup
	for i := range states {
		wg.Go(func() { states[i], errs[i] = f.rt.StartTask(ctx, spec) })
	}
	wg.Wait()
	for i, state := range states {
		if errs[i] != nil {
			t.Fatalf("start %d: %v", i, errs[i])
		}
		if len(state.Containers) != 2 || state.Containers[0].ID != states[0].Containers[0].ID || state.Containers[1].ID != states[0].Containers[1].ID {
			t.Errorf("start %d: %+v, want the containers of start 0, %+v", i, state.Containers, states[0].Containers)
		}
	}
	list, err := f.docker.ContainerList(ctx, client.ContainerListOptions{All: true, Filters: make(client.Filters).Add("label", engine.LabelCluster+"="+cluster)})
	if err != nil || len(list.Items) != 2 {
		t.Errorf("%d containers (%v), want 2", len(list.Items), err)
	}
	f.waitFor(t, cluster, "racer", "web", "running", func(c engine.ContainerState) bool { return c.State == engine.StateRunning })
}

// testLoadedImage runs the app loaded into the engine under a tag that no
// registry has: the engine has the image, so nothing is pulled.
func (f *fixture) testLoadedImage(t *testing.T) {
	t.Parallel()
	tag := "scangate-enginetest/app-" + unique() + ":1"
	apptest.Load(t, f.docker, tag)
	cluster := f.cluster(t)
	c := f.published("web", "MESSAGE=loaded")
	c.Image = tag
	state := f.start(t, f.task(cluster, "loaded", c))
	if body := get(t, "http://"+hostPort(t, state.Containers[0])+"/"); body != "loaded\n" || state.Containers[0].Image != tag {
		t.Errorf("GET / = %q from %s", body, state.Containers[0].Image)
	}
}

// testExitCode runs an app that exits 3 at once and reads its logs.
func (f *fixture) testExitCode(t *testing.T) {
	t.Parallel()
	cluster := f.cluster(t)
	f.start(t, f.task(cluster, "exit3", f.app("job", "EXIT_AFTER=0s", "EXIT_CODE=3")))
	s := f.waitFor(t, cluster, "exit3", "job", "exited", exited)
	if s.ExitCode != 3 || s.OOMKilled || s.FinishedAt.IsZero() {
		t.Errorf("state %+v, want exit code 3", s)
	}
	// One line on stdout, one on stderr, written at once: the engine
	// reads the two pipes apart, so they may come in either order.
	lines := []string{"app: started, exiting at once with code 3\n", "app: exiting with code 3 (EXIT_AFTER=0s)\n"}
	out := logs(t, f.rt, cluster, "exit3", "job", engine.LogOptions{})
	if out != lines[0]+lines[1] && out != lines[1]+lines[0] {
		t.Errorf("logs %q, want %q", out, lines)
	}
	if last := logs(t, f.rt, cluster, "exit3", "job", engine.LogOptions{Tail: 1}); !strings.HasSuffix(out, last) || !slices.Contains(lines, last) {
		t.Errorf("the last line: %q of %q", last, out)
	}
	// Follow on an exited container writes what there is and returns.
	if followed := logs(t, f.rt, cluster, "exit3", "job", engine.LogOptions{Follow: true}); followed != out {
		t.Errorf("followed logs %q, want %q", followed, out)
	}
}

// testFailedStart starts a task whose second container cannot start: the
// error says why, and the state holds both containers, the second created
// with the engine's error. A second attempt reuses both.
func (f *fixture) testFailedStart(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	cluster := f.cluster(t)
	broken := f.app("broken")
	broken.Entrypoint = []string{"/no-such-program"}
	broken.DependsOn = []engine.Dependency{{Container: "web", Condition: engine.ConditionStart}}
	spec := f.task(cluster, "broken1", broken, f.app("web"))
	for attempt := range 2 {
		state, err := f.rt.StartTask(ctx, spec)
		if err == nil || !strings.Contains(err.Error(), "starting container broken") || !strings.Contains(err.Error(), "no-such-program") {
			t.Fatalf("attempt %d: err = %v, want the failed start", attempt, err)
		}
		if len(state.Containers) != 2 || state.Containers[0].State != engine.StateRunning ||
			state.Containers[1].State != engine.StateCreated || !strings.Contains(state.Containers[1].Error, "no-such-program") {
			t.Errorf("attempt %d: state %+v", attempt, state.Containers)
		}
	}
	list, err := f.docker.ContainerList(ctx, client.ContainerListOptions{All: true, Filters: make(client.Filters).Add("label", engine.LabelCluster+"="+cluster)})
	if err != nil || len(list.Items) != 2 {
		t.Errorf("%d containers after two attempts (%v), want 2", len(list.Items), err)
	}
}

// testPrivileged asks for a privileged container. Whether the engine can
// run one depends on its host (this one may not: a daemon without all
// capabilities cannot apply them), so only the request is checked.
func (f *fixture) testPrivileged(t *testing.T) {
	t.Parallel()
	cluster := f.cluster(t)
	c := f.app("web")
	c.Privileged = true
	state, err := f.rt.StartTask(context.Background(), f.task(cluster, "priv", c))
	if err != nil {
		t.Logf("the engine cannot start a privileged container here: %v", err)
	}
	if len(state.Containers) != 1 {
		t.Fatalf("state %+v: no container", state)
	}
	in, err := f.docker.ContainerInspect(context.Background(), state.Containers[0].ID, client.ContainerInspectOptions{})
	if err != nil || !in.Container.HostConfig.Privileged {
		t.Errorf("privileged not set (%v)", err)
	}
}

// testOOM allocates past the memory limit: the kernel kills the app, the
// task's state says so as soon as it says the container exited, and Watch
// says so.
func (f *fixture) testOOM(t *testing.T) {
	t.Parallel()
	cluster := f.cluster(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	events, err := f.rt.Watch(ctx, cluster)
	if err != nil {
		t.Fatal(err)
	}
	c := f.app("hog", "ALLOC_MIB=128")
	c.MemoryMiB = 24
	f.start(t, f.task(cluster, "oom1", c))
	s := f.waitFor(t, cluster, "oom1", "hog", "exited", exited)
	if !s.OOMKilled || s.ExitCode != 137 {
		t.Errorf("state %+v, want OOMKilled with exit code 137", s)
	}
	// The engine sends the two events in either order: it hears of the
	// OOM kill apart from the exit.
	seen := map[string]engine.Event{}
	for len(seen) < 2 {
		ev := nextEvent(t, events, "")
		if ev.Kind == engine.EventOOM || ev.Kind == engine.EventDie {
			seen[ev.Kind] = ev
		}
	}
	oom, die := seen[engine.EventOOM], seen[engine.EventDie]
	if oom.TaskID != "oom1" || oom.Container != "hog" || die.ExitCode != 137 {
		t.Errorf("events %+v, %+v", oom, die)
	}
}

// testHealth checks the app's own health URL: passing, then failing with
// UNHEALTHY=1, whose probe output is kept.
func (f *fixture) testHealth(t *testing.T) {
	t.Parallel()
	cluster := f.cluster(t)
	f.start(t, f.task(cluster, "well", f.probed("web", apptest.HealthURL)))
	f.start(t, f.task(cluster, "sick", f.probed("web", apptest.HealthURL, "UNHEALTHY=1")))
	well := f.waitFor(t, cluster, "well", "web", "healthy", func(c engine.ContainerState) bool { return c.Health != engine.HealthStarting })
	sick := f.waitFor(t, cluster, "sick", "web", "unhealthy", func(c engine.ContainerState) bool { return c.Health != engine.HealthStarting })
	if well.Health != engine.HealthHealthy || !strings.Contains(well.HealthOutput, "200 OK ok") {
		t.Errorf("healthy app: %q %q", well.Health, well.HealthOutput)
	}
	if sick.Health != engine.HealthUnhealthy || !strings.Contains(sick.HealthOutput, "500 Internal Server Error unhealthy (UNHEALTHY=1)") {
		t.Errorf("unhealthy app: %q %q", sick.Health, sick.HealthOutput)
	}
}

func (f *fixture) testDependsOn(t *testing.T) {
	t.Parallel()
	cluster := f.cluster(t)

	t.Run("healthy", func(t *testing.T) {
		t.Parallel()
		web := f.published("web")
		web.DependsOn = []engine.Dependency{{Container: "db", Condition: engine.ConditionHealthy}}
		db := f.probed("db", apptest.HealthURL)
		state := f.start(t, f.task(cluster, "dephealthy", web, db))
		if len(state.Containers) != 2 || state.Containers[0].Name != "db" || state.Containers[1].Name != "web" {
			t.Fatalf("containers %+v, want db then web", state.Containers)
		}
		d, w := state.Containers[0], state.Containers[1]
		if d.Health != engine.HealthHealthy || w.State != engine.StateRunning {
			t.Errorf("db %+v, web %+v", d, w)
		}
		// The first check runs an interval after the start.
		if gap := w.StartedAt.Sub(d.StartedAt); gap < 400*time.Millisecond {
			t.Errorf("web started %s after db: before db could be healthy", gap)
		}
	})

	t.Run("success and complete", func(t *testing.T) {
		t.Parallel()
		web := f.app("web")
		web.DependsOn = []engine.Dependency{{Container: "init", Condition: engine.ConditionSuccess}, {Container: "migrate", Condition: engine.ConditionComplete}}
		state := f.start(t, f.task(cluster, "depdone", web, f.app("init", "EXIT_AFTER=0s"), f.app("migrate", "EXIT_AFTER=0s", "EXIT_CODE=3")))
		got := map[string]engine.ContainerState{}
		for _, c := range state.Containers {
			got[c.Name] = c
		}
		if got["init"].State != engine.StateExited || got["init"].ExitCode != 0 || got["migrate"].ExitCode != 3 || got["web"].State != engine.StateRunning {
			t.Errorf("containers %+v", state.Containers)
		}
	})

	t.Run("success fails", func(t *testing.T) {
		t.Parallel()
		web := f.app("web")
		web.DependsOn = []engine.Dependency{{Container: "job", Condition: engine.ConditionSuccess}}
		state, err := f.rt.StartTask(context.Background(), f.task(cluster, "depfail", web, f.app("job", "EXIT_AFTER=0s", "EXIT_CODE=3")))
		if err == nil || !strings.Contains(err.Error(), "exited with code 3") {
			t.Fatalf("err = %v, want the job's exit code", err)
		}
		if len(state.Containers) != 1 || state.Containers[0].Name != "job" || state.Containers[0].ExitCode != 3 {
			t.Errorf("state %+v, want the job alone", state.Containers)
		}
	})

	t.Run("unhealthy fails", func(t *testing.T) {
		t.Parallel()
		web := f.app("web")
		web.DependsOn = []engine.Dependency{{Container: "db", Condition: engine.ConditionHealthy}}
		_, err := f.rt.StartTask(context.Background(), f.task(cluster, "depsick", web, f.probed("db", apptest.HealthURL, "UNHEALTHY=1")))
		if err == nil || !strings.Contains(err.Error(), "it is unhealthy: probe") {
			t.Fatalf("err = %v, want db unhealthy", err)
		}
	})

	t.Run("bounded by ctx", func(t *testing.T) {
		t.Parallel()
		web := f.app("web")
		web.DependsOn = []engine.Dependency{{Container: "db", Condition: engine.ConditionHealthy}}
		db := f.probed("db", apptest.HealthURL)
		db.Health.Interval = time.Minute
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		start := time.Now()
		state, err := f.rt.StartTask(ctx, f.task(cluster, "depslow", web, db))
		// Bounded by ctx, not by db's first health check a minute away (the
		// state of the failed start is read after the deadline, which on a
		// loaded engine took 10 s in CI).
		if !errors.Is(err, context.DeadlineExceeded) || time.Since(start) >= db.Health.Interval {
			t.Fatalf("err = %v after %s, want the deadline", err, time.Since(start))
		}
		if len(state.Containers) != 1 || state.Containers[0].Health != engine.HealthStarting {
			t.Errorf("state %+v, want db starting", state.Containers)
		}
	})
}

// nextEvent reads events until one of kind (any kind when kind is ""),
// and fails after 30 s or when the channel closes.
func nextEvent(t *testing.T, events <-chan engine.Event, kind string) engine.Event {
	t.Helper()
	timeout := time.After(30 * time.Second)
	for {
		select {
		case ev, ok := <-events:
			if !ok {
				t.Fatalf("the events channel closed before a %s event", kind)
			}
			if ev.Kind == kind || kind == "" {
				return ev
			}
			t.Logf("event %+v", ev)
		case <-timeout:
			t.Fatalf("no %s event in 30 s", kind)
		}
	}
}

// testWatch watches two clusters while a task of one of them starts,
// turns healthy, stops and is removed.
func (f *fixture) testWatch(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	a, b := f.cluster(t), f.cluster(t)
	wctx, cancel := context.WithCancel(ctx)
	defer cancel()
	evA, err := f.rt.Watch(wctx, a)
	if err != nil {
		t.Fatal(err)
	}
	evB, err := f.rt.Watch(wctx, b)
	if err != nil {
		t.Fatal(err)
	}
	before := time.Now().Add(-time.Second)
	f.start(t, f.task(a, "watched", f.probed("web", apptest.HealthURL)))

	start := nextEvent(t, evA, engine.EventStart)
	if start.Cluster != a || start.Service != "web" || start.TaskID != "watched" || start.Container != "web" || start.Time.Before(before) {
		t.Errorf("start event %+v", start)
	}
	if health := nextEvent(t, evA, engine.EventHealth); health.Health != engine.HealthHealthy || health.TaskID != "watched" {
		t.Errorf("health event %+v", health)
	}
	if err := f.rt.StopTask(ctx, a, "watched", 5*time.Second); err != nil {
		t.Fatal(err)
	}
	if die := nextEvent(t, evA, engine.EventDie); die.ExitCode != 0 || die.Container != "web" {
		t.Errorf("die event %+v", die)
	}
	if err := f.rt.RemoveTask(ctx, a, "watched"); err != nil {
		t.Fatal(err)
	}
	nextEvent(t, evA, engine.EventDestroy)

	select {
	case ev := <-evB:
		t.Errorf("cluster %s got an event of %s: %+v", b, a, ev)
	case <-time.After(300 * time.Millisecond):
	}
	cancel()
	for _, ch := range []<-chan engine.Event{evA, evB} {
		select {
		case _, ok := <-ch:
			for ok {
				_, ok = <-ch
			}
		case <-time.After(5 * time.Second):
			t.Error("the events channel is open 5 s after ctx ended")
		}
	}
}

// testLogs reads a running app's last lines, follows it, and follows an
// app until it exits.
func (f *fixture) testLogs(t *testing.T) {
	t.Parallel()
	cluster := f.cluster(t)
	state := f.start(t, f.task(cluster, "talker", f.published("web")))
	addr := hostPort(t, state.Containers[0])
	for i := 1; i <= 3; i++ {
		get(t, fmt.Sprintf("http://%s/?n=%d", addr, i))
	}
	waitLogs(t, f.rt, cluster, "talker", "app: GET /?n=3 200\n")
	if out := logs(t, f.rt, cluster, "talker", "web", engine.LogOptions{Tail: 2}); out != "app: GET /?n=2 200\napp: GET /?n=3 200\n" {
		t.Errorf("the last 2 lines: %q", out)
	}

	// Follow until ctx ends.
	ctx, cancel := context.WithCancel(context.Background())
	var buf logbuf.Buffer
	done := make(chan error, 1)
	go func() {
		done <- f.rt.Logs(ctx, cluster, "talker", "web", engine.LogOptions{Tail: 1, Follow: true}, &buf)
	}()
	waitFor(t, &buf, "app: GET /?n=3 200\n")
	get(t, "http://"+addr+"/?n=4")
	waitFor(t, &buf, "app: GET /?n=4 200\n")
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("Logs followed until ctx ended: %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Logs did not return 5 s after its ctx ended")
	}
	if got := buf.String(); got != "app: GET /?n=3 200\napp: GET /?n=4 200\n" {
		t.Errorf("followed %q", got)
	}

	// Follow until the app exits.
	f.start(t, f.task(cluster, "quitter", f.app("web", "EXIT_AFTER=1500ms", "EXIT_CODE=0")))
	var out logbuf.Buffer
	start := time.Now()
	if err := f.rt.Logs(context.Background(), cluster, "quitter", "web", engine.LogOptions{Follow: true}, &out); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out.String(), "app: listening on") || !strings.HasSuffix(out.String(), "app: exiting with code 0 (EXIT_AFTER=1500ms)\n") || time.Since(start) > 20*time.Second {
		t.Errorf("followed until the exit (%s): %q", time.Since(start), out.String())
	}
}

func waitLogs(t *testing.T, rt *docker.Runtime, cluster, task, want string) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		out := logs(t, rt, cluster, task, "web", engine.LogOptions{})
		if strings.Contains(out, want) {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("the logs lack %q:\n%s", want, out)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func waitFor(t *testing.T, buf *logbuf.Buffer, want string) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !strings.Contains(buf.String(), want) {
		if time.Now().After(deadline) {
			t.Fatalf("no %q in 10 s:\n%s", want, buf.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// testPullErrors starts tasks whose image is not in the registry, or not
// for the credentials given.
func (f *fixture) testPullErrors(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	cluster := f.cluster(t)

	c := f.app("web")
	c.Image = f.reg + "/enginetest/app@sha256:" + strings.Repeat("0", 64)
	state, err := f.rt.StartTask(ctx, f.task(cluster, "nopull", c))
	if !errors.Is(err, engine.ErrImagePull) || !strings.Contains(err.Error(), "manifest unknown") {
		t.Errorf("err = %v, want ErrImagePull with the engine's message", err)
	}
	t.Log(err)
	if len(state.Containers) != 0 {
		t.Errorf("state %+v, want no container", state)
	}
	if _, err := f.rt.Task(ctx, cluster, "nopull"); !errors.Is(err, engine.ErrNotFound) {
		t.Errorf("Task: %v, want ErrNotFound", err)
	}

	// The same image in another repository, which the engine has not
	// pulled, with a wrong token.
	c.Image = apptest.Push(t, f.reg, "enginetest/private", f.token)
	spec := f.task(cluster, "denied", c)
	spec.Auth = map[string]engine.Credentials{f.reg: {Username: "engine", Password: "not-a-token"}}
	_, err = f.rt.StartTask(ctx, spec)
	if !errors.Is(err, engine.ErrImagePull) || !strings.Contains(err.Error(), "unauthorized") {
		t.Errorf("err = %v, want ErrImagePull saying unauthorized", err)
	}
	t.Log(err)
}

// testAliases probes a task by its alias from a task of the cluster, and
// from a task of another cluster, whose network has no such name.
func (f *fixture) testAliases(t *testing.T) {
	t.Parallel()
	cluster, other := f.cluster(t), f.cluster(t)
	api := f.task(cluster, "api1", f.app("web"))
	api.Aliases = []string{"shop-api"}
	f.start(t, api)
	url := fmt.Sprintf("http://shop-api:%d/health", apptest.Port)
	f.start(t, f.task(cluster, "friend", f.probed("web", url)))
	f.start(t, f.task(other, "stranger", f.probed("web", url)))
	// A one-off container of the cluster, with the probe as its command.
	oneoff := f.app("probe")
	oneoff.Command = []string{"probe", url}
	f.start(t, f.task(cluster, "oneoff", oneoff))
	if s := f.waitFor(t, cluster, "oneoff", "probe", "exited", exited); s.ExitCode != 0 {
		t.Errorf("the probe of %s exited with %d: %s", url, s.ExitCode, logs(t, f.rt, cluster, "oneoff", "probe", engine.LogOptions{}))
	}
	friend := f.waitFor(t, cluster, "friend", "web", "checked", func(c engine.ContainerState) bool { return c.Health != engine.HealthStarting })
	stranger := f.waitFor(t, other, "stranger", "web", "checked", func(c engine.ContainerState) bool { return c.Health != engine.HealthStarting })
	if friend.Health != engine.HealthHealthy || !strings.Contains(friend.HealthOutput, "200 OK") {
		t.Errorf("a task of the cluster probing %s: %s %q", url, friend.Health, friend.HealthOutput)
	}
	if stranger.Health != engine.HealthUnhealthy || !strings.Contains(stranger.HealthOutput, "shop-api") {
		t.Errorf("a task of another cluster probing %s: %s %q", url, stranger.Health, stranger.HealthOutput)
	}
}

// testClusters makes one cluster from many concurrent calls of two
// Runtimes, and removes it only once it is empty.
func (f *fixture) testClusters(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	name := "t" + unique()
	rts := []*docker.Runtime{f.rt, newRuntime(t)}
	t.Cleanup(func() { removeCluster(t, f.rt, name) })

	if _, err := f.rt.StartTask(ctx, f.task(name, "early", f.app("web"))); !errors.Is(err, engine.ErrNotFound) {
		t.Errorf("StartTask before EnsureCluster: %v, want ErrNotFound", err)
	}
	var wg sync.WaitGroup
	errs := make([]error, 8)
	for i := range errs {
		wg.Go(func() { errs[i] = rts[i%2].EnsureCluster(ctx, name) })
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		t.Fatal(err)
	}
	nets := networks(t, f.docker, "scangate-"+name)
	if len(nets) != 1 || nets[0].Labels[engine.LabelCluster] != name || nets[0].Driver != "bridge" {
		t.Fatalf("networks named scangate-%s: %+v, want one bridge labelled with the cluster", name, nets)
	}

	f.start(t, f.task(name, "left", f.app("web")))
	if err := f.rt.RemoveCluster(ctx, name); err == nil || !strings.Contains(err.Error(), "still has 1 containers") {
		t.Errorf("RemoveCluster with a task left: %v", err)
	}
	if err := f.rt.StopTask(ctx, name, "left", time.Second); err != nil {
		t.Fatal(err)
	}
	if err := f.rt.RemoveCluster(ctx, name); err == nil {
		t.Error("RemoveCluster with a stopped task left: no error")
	}
	if err := f.rt.RemoveTask(ctx, name, "left"); err != nil {
		t.Fatal(err)
	}
	for range 2 {
		if err := f.rt.RemoveCluster(ctx, name); err != nil {
			t.Errorf("RemoveCluster: %v", err)
		}
	}
	if nets := networks(t, f.docker, "scangate-"+name); len(nets) != 0 {
		t.Errorf("networks left: %+v", nets)
	}
	if tasks, err := f.rt.Tasks(ctx, name); err != nil || len(tasks) != 0 {
		t.Errorf("Tasks of a removed cluster: %+v, %v", tasks, err)
	}

	// A network of the name that is not scangate's is not taken over.
	foreign := "t" + unique()
	if _, err := f.docker.NetworkCreate(ctx, "scangate-"+foreign, client.NetworkCreateOptions{Driver: "bridge"}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		f.docker.NetworkRemove(context.Background(), "scangate-"+foreign, client.NetworkRemoveOptions{})
	})
	if err := f.rt.EnsureCluster(ctx, foreign); err == nil || !strings.Contains(err.Error(), "not scangate's") {
		t.Errorf("EnsureCluster over a foreign network: %v", err)
	}
}

func networks(t *testing.T, docker *client.Client, name string) []struct {
	ID, Driver string
	Labels     map[string]string
} {
	t.Helper()
	res, err := docker.NetworkList(context.Background(), client.NetworkListOptions{Filters: make(client.Filters).Add("name", name)})
	if err != nil {
		t.Fatal(err)
	}
	var out []struct {
		ID, Driver string
		Labels     map[string]string
	}
	for _, n := range res.Items {
		if n.Name == name {
			out = append(out, struct {
				ID, Driver string
				Labels     map[string]string
			}{n.ID, n.Driver, n.Labels})
		}
	}
	return out
}

// testInvalid gives specs that StartTask refuses before it asks the engine
// for anything.
func (f *fixture) testInvalid(t *testing.T) {
	t.Parallel()
	cluster := f.cluster(t)
	dep := func(c engine.ContainerSpec, on, cond string) engine.ContainerSpec {
		c.DependsOn = append(c.DependsOn, engine.Dependency{Container: on, Condition: cond})
		return c
	}
	withPort := func(c engine.ContainerSpec, p int) engine.ContainerSpec {
		c.Ports = []engine.PortMapping{{ContainerPort: p}}
		return c
	}
	for _, c := range []struct {
		name string
		spec engine.TaskSpec
		want string
	}{
		{"no containers", f.task(cluster, "x"), "has no containers"},
		{"long task id", f.task(cluster, strings.Repeat("a", 33), f.app("web")), "task id"},
		{"bad cluster", f.task("a/b", "x", f.app("web")), "cluster name"},
		{"bad container name", f.task(cluster, "x", f.app("we b")), "container name"},
		{"twice", f.task(cluster, "x", f.app("web"), f.app("web")), "two containers named web"},
		{"unknown dependency", f.task(cluster, "x", dep(f.app("web"), "db", engine.ConditionStart)), `depends on "db"`},
		{"unknown condition", f.task(cluster, "x", dep(f.app("web"), "db", "READY"), f.app("db")), `unknown dependency condition "READY"`},
		{"healthy without a check", f.task(cluster, "x", dep(f.app("web"), "db", engine.ConditionHealthy), f.app("db")), "has no health check"},
		{"cycle", f.task(cluster, "x", dep(f.app("a"), "b", engine.ConditionStart), dep(f.app("b"), "c", engine.ConditionStart), dep(f.app("c"), "a", engine.ConditionStart)), "cycle: a → b → c → a"},
		{"port", f.task(cluster, "x", withPort(f.app("web"), 70000)), "ports are 1 to 65535"},
	} {
		if _, err := f.rt.StartTask(context.Background(), c.spec); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: err = %v, want %q", c.name, err, c.want)
		}
	}
	if tasks, err := f.rt.Tasks(context.Background(), cluster); err != nil || len(tasks) != 0 {
		t.Errorf("invalid specs left tasks: %+v %v", tasks, err)
	}
}

func TestEngineUnavailable(t *testing.T) {
	t.Setenv("DOCKER_HOST", "unix://"+filepath.Join(t.TempDir(), "no-docker.sock"))
	rt := newRuntime(t)
	ctx := context.Background()
	_, pingErr := rt.Ping(ctx)
	_, startErr := rt.StartTask(ctx, engine.TaskSpec{Cluster: "c", TaskID: "t", Containers: []engine.ContainerSpec{{Name: "web", Image: "127.0.0.1:5000/app@sha256:" + strings.Repeat("0", 64)}}})
	_, tasksErr := rt.Tasks(ctx, "c")
	_, watchErr := rt.Watch(ctx, "c")
	for name, err := range map[string]error{
		"Ping":          pingErr,
		"EnsureCluster": rt.EnsureCluster(ctx, "c"),
		"StartTask":     startErr,
		"StopTask":      rt.StopTask(ctx, "c", "t", time.Second),
		"Tasks":         tasksErr,
		"Watch":         watchErr,
		"Logs":          rt.Logs(ctx, "c", "t", "web", engine.LogOptions{}, io.Discard),
	} {
		if !errors.Is(err, engine.ErrUnavailable) {
			t.Errorf("%s: %v, want ErrUnavailable", name, err)
		}
	}
	t.Log(pingErr)
}
