// Command deploy measures scangate's deployments on the local Docker
// Engine:
//
//  1. approval decided → the new task RUNNING, for a service of one task:
//     a hosted repository whose pipeline deploys to the service; -n commits,
//     one after the other, each built (FROM a base image that holds the
//     test app, made here and `docker load`ed), scanned, approved by the
//     policy and deployed. The clock starts when the event log (polled every
//     10 ms) shows the Approval stage decided, and stops when it shows the
//     new revision's task RUNNING (and HEALTHY, for the service with a
//     health check) and the deployment COMPLETED. The image is in the engine
//     already (it built it): nothing is pulled. Two services: one without a
//     health check, one with the app's health check at ECS's shortest
//     interval (5 s).
//  2. rolling update of five tasks behind the load balancer: -updates
//     updates, one after the other, each a new revision (MESSAGE=uN) of a
//     service with a health check, minimum healthy 100 %, maximum 200 %,
//     under a keep-alive client that GETs the listener every 50 ms for the
//     whole phase. Wall time from the update (PATCH) to the deployment's
//     COMPLETED event; failed requests, and answers of an old revision
//     after the deployment completed.
//  3. the reconciler's cost at rest: the server's CPU time (utime + stime
//     from /proc/PID/stat) over -idle (60 s), as a percentage of one core,
//     with no service, with -services services of desired count 0, then
//     with the same services at desired count 1 (a task each, no health
//     check); the Docker Engine's (dockerd's) CPU over the same windows.
//
// It starts the scangate binary -bin on 127.0.0.1 and a free port, over a
// new data folder under -work with the fixture feeds imported (debian,
// ghsa: the scans need a database), and stops it at the end, removing the
// services, their containers and the images it made.
//
//	make build && go run ./bench/deploy [-n 20] [-updates 20] [-services 50] [-idle 60s]
package main

import (
	"archive/tar"
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/tarball"

	"github.com/scangate/scangate/bench/stats"
)

type options struct {
	bin, work, feeds             string
	n, updates, services, repeat int
	idle, timeout                time.Duration
	approval, rolling, atRest    bool
	perf                         bool
}

func main() {
	var o options
	flag.StringVar(&o.bin, "bin", "bin/scangate", "the scangate binary (make build)")
	flag.StringVar(&o.work, "work", "bench/.work/deploy", "folder for the data folder, the clones and the logs")
	flag.StringVar(&o.feeds, "feeds", "testdata/vulndata", "the fixture feeds")
	flag.IntVar(&o.n, "n", 20, "timed deploys per service in the approval phase")
	flag.IntVar(&o.updates, "updates", 20, "rolling updates of the five-task service")
	flag.IntVar(&o.services, "services", 50, "services at rest in the last phase")
	flag.DurationVar(&o.idle, "idle", time.Minute, "how long each at-rest measurement lasts")
	flag.IntVar(&o.repeat, "repeat", 3, "at-rest measurements of each state")
	flag.BoolVar(&o.perf, "perf", false, "profile the server with perf(1) during each at-rest measurement, and say how much of its CPU the service controller and River's polls took")
	flag.DurationVar(&o.timeout, "timeout", 5*time.Minute, "give up on one deploy or update after this long")
	flag.BoolVar(&o.approval, "approval", true, "run the approval → RUNNING phase")
	flag.BoolVar(&o.rolling, "rolling", true, "run the rolling update phase")
	flag.BoolVar(&o.atRest, "at-rest", true, "run the reconciler-at-rest phase")
	flag.Parse()
	if err := run(o); err != nil {
		fmt.Fprintln(os.Stderr, "bench/deploy:", err)
		os.Exit(1)
	}
}

func run(o options) error {
	if err := os.MkdirAll(o.work, 0o750); err != nil {
		return err
	}
	work, err := filepath.Abs(o.work)
	if err != nil {
		return err
	}
	facts(work)
	data := filepath.Join(work, "data")
	if err := os.RemoveAll(data); err != nil {
		return err
	}
	feeds := []string{filepath.Join(o.feeds, "debian"), filepath.Join(o.feeds, "ghsa")}
	if _, err := scangate(o.bin, data, append([]string{"db", "import"}, feeds...)...); err != nil {
		return err
	}
	token, err := scangate(o.bin, data, "token", "create", "--name", "bench", "--role", "admin")
	if err != nil {
		return err
	}
	var idb [4]byte
	_, _ = rand.Read(idb[:])
	b := &bench{o: o, work: work, token: strings.TrimSpace(token), runID: hex.EncodeToString(idb[:]),
		tasks: map[string]map[string]*taskSeen{}, deps: map[string]*depSeen{}, execs: map[string]*execSeen{}, byCommit: map[string]string{}}
	b.cluster = "bench-" + b.runID
	app, err := buildApp(work)
	if err != nil {
		return err
	}
	if err := b.startServer(data); err != nil {
		return err
	}
	defer b.cleanUp()
	go b.watch()
	if _, err := b.call("POST", "/api/v1/clusters", map[string]any{"clusterName": b.cluster}, http.StatusCreated); err != nil {
		return err
	}
	if b.image, err = b.pushApp(app); err != nil {
		return err
	}
	if o.approval {
		if err := b.approvalPhase(app); err != nil {
			return err
		}
	}
	if o.rolling {
		if err := b.rollingPhase(); err != nil {
			return err
		}
	}
	if o.atRest {
		if err := b.atRestPhase(); err != nil {
			return err
		}
	}
	load, _ := os.ReadFile("/proc/loadavg")
	fmt.Printf("\nload average at the end: %s", load)
	return nil
}

// bench is the run's state: the server, the images, the event watcher.
type bench struct {
	o                  options
	work, token, runID string
	cluster            string
	image              string // the app in the registry, by digest
	base, baseID       string // the pipelines' base image
	env                []string
	cmd                *exec.Cmd
	addr               string
	services           []string    // made, to delete at the end
	paused             atomic.Bool // the watcher does not poll (the at-rest phase)

	mu       sync.Mutex
	tasks    map[string]map[string]*taskSeen // task definition → task id →
	deps     map[string]*depSeen             // deployment id →
	execs    map[string]*execSeen            // execution id →
	byCommit map[string]string               // "pipeline commit" → execution id
	err      error                           // the watcher's
}

// What the event watcher saw, and when.
type taskSeen struct{ pending, running, healthy time.Time }

type depSeen struct {
	execution, taskDefinition  string
	started, completed, failed time.Time
}

type execSeen struct {
	decided, ended  time.Time
	decision, final string
	deployment      string
}

func scangate(bin, data string, args ...string) (string, error) {
	cmd := exec.Command(bin, append([]string{"--data-dir", data}, args...)...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		return "", fmt.Errorf("scangate %s: %v\n%s", strings.Join(args, " "), err, stderr.String())
	}
	return stdout.String(), nil
}

func (b *bench) startServer(data string) error {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	b.addr = ln.Addr().String()
	ln.Close()
	logPath := filepath.Join(b.work, "server.log")
	logf, err := os.Create(logPath)
	if err != nil {
		return err
	}
	b.cmd = exec.Command(b.o.bin, "--data-dir", data, "server", "--addr", b.addr)
	b.cmd.Stdout, b.cmd.Stderr = logf, logf
	if err := b.cmd.Start(); err != nil {
		return err
	}
	for deadline := time.Now().Add(30 * time.Second); ; {
		resp, err := http.Get("http://" + b.addr + "/readyz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
		}
		if time.Now().After(deadline) {
			_ = b.cmd.Process.Kill()
			return fmt.Errorf("the server was not ready in 30 s; see %s", logPath)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// cleanUp deletes the services, stops the server, and removes what is
// left on the engine: containers, the cluster's network, the images.
func (b *bench) cleanUp() {
	for _, s := range b.services {
		_, _ = b.call("DELETE", "/api/v1/clusters/"+b.cluster+"/services/"+s, nil, http.StatusAccepted)
	}
	_ = b.waitGone(b.services, 2*time.Minute)
	_ = b.cmd.Process.Signal(syscall.SIGTERM)
	_ = b.cmd.Wait()
	out, _ := exec.Command("docker", "ps", "-aq", "--filter", "label=io.scangate.cluster="+b.cluster).Output()
	if ids := strings.Fields(string(out)); len(ids) > 0 {
		_ = exec.Command("docker", append([]string{"rm", "-f"}, ids...)...).Run()
	}
	_ = exec.Command("docker", "network", "rm", "scangate-"+b.cluster).Run()
	if b.image != "" {
		_ = exec.Command("docker", "rmi", "-f", b.image).Run()
	}
	b.removeBuilt()
}

// call sends body (JSON, or raw bytes) to the API and checks the status.
func (b *bench) call(method, path string, body any, want int) ([]byte, error) {
	var rd io.Reader
	switch v := body.(type) {
	case nil:
	case []byte:
		rd = bytes.NewReader(v)
	default:
		data, err := json.Marshal(v)
		if err != nil {
			return nil, err
		}
		rd = bytes.NewReader(data)
	}
	req, err := http.NewRequest(method, "http://"+b.addr+path, rd)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Authorization", "Bearer "+b.token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, err
	}
	if resp.StatusCode != want {
		return nil, fmt.Errorf("%s %s: %d %s", method, path, resp.StatusCode, data)
	}
	return data, nil
}

// watch follows the event log, noting when each deploy and pipeline event
// is seen.
func (b *bench) watch() {
	var after int64
	for {
		if b.paused.Load() {
			time.Sleep(100 * time.Millisecond)
			continue
		}
		data, err := b.call("GET", fmt.Sprintf("/api/v1/events?after=%d&limit=1000", after), nil, http.StatusOK)
		if err != nil {
			b.mu.Lock()
			b.err = err
			b.mu.Unlock()
			return
		}
		var page struct {
			Events []struct {
				Seq   int64 `json:"seq"`
				Event struct {
					DetailType string          `json:"detail-type"`
					Detail     json.RawMessage `json:"detail"`
				} `json:"event"`
			} `json:"events"`
		}
		if err := json.Unmarshal(data, &page); err != nil {
			b.mu.Lock()
			b.err = err
			b.mu.Unlock()
			return
		}
		now := time.Now()
		b.mu.Lock()
		for _, e := range page.Events {
			after = e.Seq
			var d struct {
				Pipeline       string `json:"pipeline"`
				Execution      string `json:"execution-id"`
				Commit         string `json:"commit"`
				State          string `json:"state"`
				Stage          string `json:"stage"`
				ExecutionID    string `json:"executionId"`
				DeploymentID   string `json:"deploymentId"`
				EventName      string `json:"eventName"`
				TaskDefinition string `json:"taskDefinition"`
				TaskID         string `json:"taskId"`
				LastStatus     string `json:"lastStatus"`
				Health         string `json:"healthStatus"`
			}
			_ = json.Unmarshal(e.Event.Detail, &d)
			switch e.Event.DetailType {
			case "Task State Change":
				byID := b.tasks[d.TaskDefinition]
				if byID == nil {
					byID = map[string]*taskSeen{}
					b.tasks[d.TaskDefinition] = byID
				}
				t := byID[d.TaskID]
				if t == nil {
					t = &taskSeen{}
					byID[d.TaskID] = t
				}
				if d.LastStatus == "PENDING" && t.pending.IsZero() {
					t.pending = now
				}
				if d.LastStatus == "RUNNING" && t.running.IsZero() {
					t.running = now
				}
				if d.LastStatus == "RUNNING" && d.Health == "HEALTHY" && t.healthy.IsZero() {
					t.healthy = now
				}
			case "Deployment State Change":
				dep := b.deps[d.DeploymentID]
				if dep == nil {
					dep = &depSeen{execution: d.ExecutionID, taskDefinition: d.TaskDefinition}
					b.deps[d.DeploymentID] = dep
				}
				switch d.EventName {
				case "SERVICE_DEPLOYMENT_IN_PROGRESS":
					dep.started = now
				case "SERVICE_DEPLOYMENT_COMPLETED":
					dep.completed = now
				case "SERVICE_DEPLOYMENT_FAILED":
					dep.failed = now
				}
				if d.ExecutionID != "" {
					b.exec(d.ExecutionID).deployment = d.DeploymentID
				}
			case "Pipeline Execution State Change":
				x := b.exec(d.Execution)
				if d.State == "STARTED" {
					b.byCommit[d.Pipeline+" "+d.Commit] = d.Execution
				} else {
					x.final, x.ended = d.State, now
				}
			case "Stage State Change":
				if d.Stage == "Approval" && d.State != "InProgress" {
					x := b.exec(d.Execution)
					x.decision, x.decided = d.State, now
				}
			}
		}
		b.mu.Unlock()
		if len(page.Events) < 1000 {
			time.Sleep(10 * time.Millisecond)
		}
	}
}

// exec is the execution id's record; b.mu is held.
func (b *bench) exec(id string) *execSeen {
	x := b.execs[id]
	if x == nil {
		x = &execSeen{}
		b.execs[id] = x
	}
	return x
}

// until polls cond (under b.mu) every 5 ms until it holds, the watcher
// fails, or timeout passes.
func (b *bench) until(what string, timeout time.Duration, cond func() bool) error {
	deadline := time.Now().Add(timeout)
	for {
		b.mu.Lock()
		ok, err := cond(), b.err
		b.mu.Unlock()
		if err != nil {
			return fmt.Errorf("event log: %w", err)
		}
		if ok {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%s: not within %s", what, timeout)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// --- the app and its images

// buildApp builds the test app of internal/apptest (a static linux/amd64
// HTTP server set by its environment) into the work folder.
func buildApp(work string) ([]byte, error) {
	out := filepath.Join(work, "app")
	cmd := exec.Command("go", "build", "-trimpath", "-ldflags=-s -w", "-o", out, "github.com/scangate/scangate/internal/apptest/testdata/app")
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOOS=linux", "GOARCH=amd64")
	if msg, err := cmd.CombinedOutput(); err != nil {
		return nil, fmt.Errorf("building the test app: %v\n%s", err, msg)
	}
	return os.ReadFile(out)
}

type file struct {
	name string
	body []byte
	mode int64
}

// image is one layer of files on nothing, for linux/amd64.
func image(files ...file) (v1.Image, error) {
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, f := range files {
		if err := tw.WriteHeader(&tar.Header{Name: f.name, Mode: f.mode, Size: int64(len(f.body)), Typeflag: tar.TypeReg}); err != nil {
			return nil, err
		}
		if _, err := tw.Write(f.body); err != nil {
			return nil, err
		}
	}
	if err := tw.Close(); err != nil {
		return nil, err
	}
	data := buf.Bytes()
	layer, err := tarball.LayerFromOpener(func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(data)), nil })
	if err != nil {
		return nil, err
	}
	img, err := mutate.AppendLayers(empty.Image, layer)
	if err != nil {
		return nil, err
	}
	cf, err := img.ConfigFile()
	if err != nil {
		return nil, err
	}
	cf = cf.DeepCopy()
	cf.OS, cf.Architecture = "linux", "amd64"
	cf.Config.Entrypoint = []string{"/app"}
	return mutate.ConfigFile(img, cf)
}

// pushApp pushes the app's image to the registry and returns it by digest.
func (b *bench) pushApp(app []byte) (string, error) {
	img, err := image(file{"app", app, 0o755})
	if err != nil {
		return "", err
	}
	ref, err := name.ParseReference(b.addr+"/bench/app-"+b.runID+":latest", name.Insecure)
	if err != nil {
		return "", err
	}
	if err := remote.Write(ref, img, remote.WithAuth(&authn.Basic{Username: "bench", Password: b.token})); err != nil {
		return "", err
	}
	d, err := img.Digest()
	if err != nil {
		return "", err
	}
	return ref.Context().Name() + "@" + d.String(), nil
}

// loadBase loads the pipelines' base image into the engine: Debian's
// os-release, an empty package database (nothing to find: the policy
// approves) and the app.
func (b *bench) loadBase(app []byte) error {
	osRelease, err := os.ReadFile(filepath.Join(b.o.feeds, "debian", "os-release"))
	if err != nil {
		return err
	}
	img, err := image(file{"etc/os-release", osRelease, 0o644}, file{"var/lib/dpkg/status", nil, 0o644},
		file{"etc/bench-run", []byte(b.runID + "\n"), 0o644}, file{"app", app, 0o755})
	if err != nil {
		return err
	}
	tag := "scangate-bench/deploy-base:" + b.runID
	t, err := name.NewTag(tag)
	if err != nil {
		return err
	}
	archive := filepath.Join(b.work, "base.tar")
	if err := tarball.WriteToFile(archive, t, img); err != nil {
		return err
	}
	if out, err := exec.Command("docker", "load", "-q", "-i", archive).CombinedOutput(); err != nil {
		return fmt.Errorf("docker load: %v\n%s", err, out)
	}
	out, err := exec.Command("docker", "image", "inspect", "--format", "{{.Id}}", tag).Output()
	if err != nil {
		return fmt.Errorf("docker image inspect %s: %v", tag, err)
	}
	b.base, b.baseID = tag, strings.TrimSpace(string(out))
	return nil
}

// removeBuilt removes the base image and the images built on it.
func (b *bench) removeBuilt() {
	if b.baseID == "" {
		return
	}
	out, err := exec.Command("docker", "image", "ls", "--all", "--quiet", "--no-trunc").Output()
	if err != nil {
		return
	}
	parents := map[string]string{}
	if ids := strings.Fields(string(out)); len(ids) > 0 {
		out, err = exec.Command("docker", append([]string{"image", "inspect", "--format", "{{.Id}} {{.Parent}}"}, ids...)...).Output()
		if err != nil {
			return
		}
		for _, line := range strings.Split(string(out), "\n") {
			if f := strings.Fields(line); len(f) == 2 {
				parents[f[0]] = f[1]
			}
		}
	}
	family := []string{b.baseID}
	for grew := true; grew; {
		grew = false
		for child, parent := range parents {
			if slices.Contains(family, parent) && !slices.Contains(family, child) {
				family, grew = append(family, child), true
			}
		}
	}
	for _, id := range slices.Backward(family) {
		_ = exec.Command("docker", "rmi", "-f", id).Run()
	}
}

// --- services

const healthCheck = `, "healthCheck": {"command": ["CMD", "/app", "probe", "http://127.0.0.1:8080/health"], "interval": 5, "timeout": 2, "retries": 2}`

// taskDef registers a revision of family running the app with MESSAGE,
// with the health check if hc, and returns family:revision.
func (b *bench) taskDef(family, message string, hc bool) (string, error) {
	extra := ""
	if hc {
		extra = healthCheck
	}
	doc := fmt.Sprintf(`{"family": %q, "containerDefinitions": [{"name": "app", "image": %q, "entryPoint": ["/app"],
		"portMappings": [{"containerPort": 8080}], "environment": [{"name": "MESSAGE", "value": %q}], "memory": 64 %s}]}`,
		family, b.image, message, extra)
	data, err := b.call("POST", "/api/v1/task-definitions", []byte(doc), http.StatusCreated)
	if err != nil {
		return "", err
	}
	var out struct {
		TaskDefinition struct {
			Family   string `json:"family"`
			Revision int    `json:"revision"`
		} `json:"taskDefinition"`
	}
	if err := json.Unmarshal(data, &out); err != nil {
		return "", err
	}
	return fmt.Sprintf("%s:%d", out.TaskDefinition.Family, out.TaskDefinition.Revision), nil
}

// service is what the bench reads of a service.
type service struct {
	TaskDefinition string `json:"taskDefinition"`
	DesiredCount   int    `json:"desiredCount"`
	RunningCount   int    `json:"runningCount"`
	PendingCount   int    `json:"pendingCount"`
	Deployments    []struct {
		ID           string `json:"id"`
		Status       string `json:"status"`
		RolloutState string `json:"rolloutState"`
	} `json:"deployments"`
}

func (s *service) steady() bool {
	return len(s.Deployments) == 1 && s.Deployments[0].RolloutState == "COMPLETED" && s.RunningCount == s.DesiredCount && s.PendingCount == 0
}

// createService makes a service of taskDef at desired count 0, lets the
// app's image run in it (an admin's override: no pipeline approved it),
// and sets the desired count.
func (b *bench) createService(name, taskDef string, desired int, config map[string]any) error {
	if config == nil {
		config = map[string]any{}
	}
	if _, err := b.call("POST", "/api/v1/services", map[string]any{"clusterName": b.cluster, "serviceName": name, "taskDefinition": taskDef,
		"desiredCount": 0, "config": config}, http.StatusCreated); err != nil {
		return err
	}
	b.services = append(b.services, name)
	_, digest, _ := strings.Cut(b.image, "@")
	if _, err := b.call("POST", "/api/v1/clusters/"+b.cluster+"/services/"+name+"/overrides", map[string]any{"imageDigest": digest,
		"reason": "benchmark image, no pipeline", "expiresAt": time.Now().Add(24 * time.Hour).UTC().Format(time.RFC3339)}, http.StatusCreated); err != nil {
		return err
	}
	if desired == 0 {
		return nil
	}
	_, err := b.call("PATCH", "/api/v1/clusters/"+b.cluster+"/services/"+name, map[string]any{"desiredCount": desired}, http.StatusOK)
	return err
}

func (b *bench) service(name string) (*service, error) {
	data, err := b.call("GET", "/api/v1/clusters/"+b.cluster+"/services/"+name, nil, http.StatusOK)
	if err != nil {
		return nil, err
	}
	var s service
	return &s, json.Unmarshal(data, &s)
}

// waitSteady waits until every named service is steady.
func (b *bench) waitSteady(names []string, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for _, n := range names {
		for {
			s, err := b.service(n)
			if err != nil {
				return err
			}
			if s.steady() {
				break
			}
			if time.Now().After(deadline) {
				return fmt.Errorf("service %s not steady within %s: %+v", n, timeout, s)
			}
			time.Sleep(200 * time.Millisecond)
		}
	}
	return nil
}

// waitServing waits until the service is steady and each of its tasks
// serves: RUNNING, and HEALTHY if it has a health check. (A deployment
// completed when its tasks served; a later change of the desired count
// starts tasks under it, and the deployment stays COMPLETED meanwhile.)
func (b *bench) waitServing(name string, timeout time.Duration) error {
	if err := b.waitSteady([]string{name}, timeout); err != nil {
		return err
	}
	deadline := time.Now().Add(timeout)
	for {
		data, err := b.call("GET", "/api/v1/tasks?cluster="+b.cluster+"&service="+name, nil, http.StatusOK)
		if err != nil {
			return err
		}
		var out struct {
			Tasks []struct {
				LastStatus string `json:"lastStatus"`
				Health     string `json:"healthStatus"`
			} `json:"tasks"`
		}
		if err := json.Unmarshal(data, &out); err != nil {
			return err
		}
		serving := 0
		for _, t := range out.Tasks {
			if t.LastStatus == "RUNNING" && t.Health == "HEALTHY" {
				serving++
			}
		}
		if serving == len(out.Tasks) && serving > 0 {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("service %s: %d of %d tasks healthy after %s", name, serving, len(out.Tasks), timeout)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// waitGone waits until the named services are deleted (their tasks
// stopped and removed).
func (b *bench) waitGone(names []string, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for _, n := range names {
		for {
			_, err := b.call("GET", "/api/v1/clusters/"+b.cluster+"/services/"+n, nil, http.StatusNotFound)
			if err == nil {
				break
			}
			if time.Now().After(deadline) {
				return fmt.Errorf("service %s not deleted within %s", n, timeout)
			}
			time.Sleep(200 * time.Millisecond)
		}
	}
	return nil
}

func (b *bench) deleteServices(names []string) error {
	for _, n := range names {
		if _, err := b.call("DELETE", "/api/v1/clusters/"+b.cluster+"/services/"+n, nil, http.StatusAccepted); err != nil {
			return err
		}
	}
	if err := b.waitGone(names, 5*time.Minute); err != nil {
		return err
	}
	b.services = slices.DeleteFunc(b.services, func(s string) bool { return slices.Contains(names, s) })
	return nil
}

// --- 1. approval decided → RUNNING

func (b *bench) approvalPhase(app []byte) error {
	fmt.Printf("\n== approval decided → new task RUNNING, 1-task service, %d deploys per service\n", b.o.n)
	if err := b.loadBase(app); err != nil {
		return err
	}
	home := filepath.Join(b.work, "home")
	if err := os.MkdirAll(home, 0o750); err != nil {
		return err
	}
	b.env = append(os.Environ(), "HOME="+home, "GIT_CONFIG_NOSYSTEM=1", "GIT_TERMINAL_PROMPT=0",
		"GIT_AUTHOR_NAME=Bench", "GIT_AUTHOR_EMAIL=bench@example.com", "GIT_COMMITTER_NAME=Bench", "GIT_COMMITTER_EMAIL=bench@example.com")
	var names []string
	for _, hc := range []bool{false, true} {
		name := "plain-" + b.runID
		if hc {
			name = "checked-" + b.runID
		}
		if err := b.approvalRuns(name, hc); err != nil {
			return err
		}
		names = append(names, name)
	}
	return b.deleteServices(names)
}

func (b *bench) approvalRuns(name string, hc bool) error {
	td, err := b.taskDef(name, "placeholder", hc)
	if err != nil {
		return err
	}
	if err := b.createService(name, td, 1, nil); err != nil {
		return err
	}
	if err := b.waitSteady([]string{name}, b.o.timeout); err != nil {
		return err
	}
	if _, err := b.call("POST", "/api/v1/repositories", map[string]string{"name": name}, http.StatusCreated); err != nil {
		return err
	}
	def := fmt.Sprintf(`name: %s
source: {repository: %s, branch: main}
build: {repository: bench/%s}
approval:
  policy:
    thresholds: {CRITICAL: 0, HIGH: 0}
deploy: {cluster: %s, service: %s, container: app, timeout: 10m}
`, name, name, name, b.cluster, name)
	if _, err := b.call("PUT", "/api/v1/pipelines/"+name, []byte(def), http.StatusOK); err != nil {
		return err
	}
	clone := filepath.Join(b.work, "clones", name)
	if err := os.RemoveAll(clone); err != nil {
		return err
	}
	if _, err := b.git("", "clone", "--quiet", fmt.Sprintf("http://bench:%s@%s/git/%s.git", b.token, b.addr, name), clone); err != nil {
		return err
	}
	what := "without a health check"
	if hc {
		what = "with a health check (interval 5 s)"
	}
	fmt.Printf("\n%s (%s):\n", name, what)
	fmt.Printf("%-4s %12s %12s %12s %12s %12s %12s\n", "#", "→deploying", "→started", "→RUNNING", "→HEALTHY", "→COMPLETED", "push→decided")
	var deploying, started, running, healthy, completed []time.Duration
	for i := 0; i <= b.o.n; i++ { // 0 is the untimed warm-up: the base layers' first push
		r, err := b.deployCommit(name, clone, i)
		if err != nil {
			return err
		}
		line := fmt.Sprintf("%-4d %12s %12s %12s %12s %12s %12s", i, stats.MS(r.deploying), stats.MS(r.started), stats.MS(r.running),
			msOrDash(r.healthy, hc), stats.MS(r.completed), stats.MS(r.pushToDecided))
		if i == 0 {
			fmt.Println(line, " (warm-up, not counted)")
			continue
		}
		fmt.Println(line)
		deploying, started = append(deploying, r.deploying), append(started, r.started)
		running, completed = append(running, r.running), append(completed, r.completed)
		if hc {
			healthy = append(healthy, r.healthy)
		}
	}
	summary := func(label string, ds []time.Duration) {
		fmt.Printf("  approval decided → %-28s p50 %s  p95 %s  (min %s, max %s)\n", label, stats.MS(stats.Percentile(ds, 50)),
			stats.MS(stats.Percentile(ds, 95)), stats.MS(slices.Min(ds)), stats.MS(slices.Max(ds)))
	}
	summary("deployment IN_PROGRESS:", deploying)
	summary("new task started (PENDING):", started)
	summary("new task RUNNING:", running)
	if hc {
		summary("new task RUNNING and HEALTHY:", healthy)
	}
	summary("deployment COMPLETED:", completed)
	return nil
}

func msOrDash(d time.Duration, ok bool) string {
	if !ok {
		return "-"
	}
	return stats.MS(d)
}

type deployTimes struct {
	deploying, started, running, healthy, completed, pushToDecided time.Duration
}

// deployCommit commits a new build id, pushes it, and waits for its
// execution to end, with the new task running and the deployment
// completed.
func (b *bench) deployCommit(name, clone string, i int) (deployTimes, error) {
	var r deployTimes
	files := map[string]string{
		"Dockerfile": "FROM " + b.base + "\nCOPY build-id /build-id\n",
		"build-id":   fmt.Sprintf("%s %d %d\n", b.runID, i, time.Now().UnixNano()),
	}
	for f, text := range files {
		if err := os.WriteFile(filepath.Join(clone, f), []byte(text), 0o644); err != nil {
			return r, err
		}
	}
	if _, err := b.git(clone, "add", "-A"); err != nil {
		return r, err
	}
	if _, err := b.git(clone, "commit", "--quiet", "-m", fmt.Sprintf("build %d", i)); err != nil {
		return r, err
	}
	commit, err := b.git(clone, "rev-parse", "HEAD")
	if err != nil {
		return r, err
	}
	pushed := time.Now()
	if _, err := b.git(clone, "push", "--quiet", "origin", "HEAD:main"); err != nil {
		return r, err
	}
	var x execSeen
	var dep depSeen
	var task taskSeen
	err = b.until(fmt.Sprintf("%s: the deploy of %.12s", name, commit), b.o.timeout, func() bool {
		id := b.byCommit[name+" "+commit]
		if id == "" || b.execs[id] == nil || b.execs[id].ended.IsZero() {
			return false
		}
		x = *b.execs[id]
		d := b.deps[x.deployment]
		if d == nil {
			return true // ended without a deployment: reported below
		}
		dep = *d
		for _, t := range b.tasks[d.taskDefinition] {
			task = *t
		}
		return !dep.completed.IsZero() && !task.running.IsZero()
	})
	if err != nil {
		return r, err
	}
	if !strings.EqualFold(x.final, "Succeeded") || x.deployment == "" || dep.completed.IsZero() {
		return r, fmt.Errorf("%s: the execution of %.12s ended %s (approval %s, deployment %q); see %s", name, commit, x.final, x.decision,
			x.deployment, filepath.Join(b.work, "server.log"))
	}
	r.running, r.completed, r.pushToDecided = task.running.Sub(x.decided), dep.completed.Sub(x.decided), x.decided.Sub(pushed)
	r.deploying, r.started = dep.started.Sub(x.decided), task.pending.Sub(x.decided)
	if !task.healthy.IsZero() {
		r.healthy = task.healthy.Sub(x.decided)
	}
	return r, nil
}

func (b *bench) git(dir string, args ...string) (string, error) {
	cmd := exec.Command("git", args...)
	cmd.Dir, cmd.Env = dir, b.env
	out, err := cmd.CombinedOutput()
	if err != nil {
		return "", fmt.Errorf("git %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return strings.TrimSpace(string(out)), nil
}

// --- 2. rolling updates behind the load balancer

func (b *bench) rollingPhase() error {
	const tasks = 5
	fmt.Printf("\n== rolling update, %d tasks with a health check behind the load balancer (min 100 %%, max 200 %%), %d updates\n", tasks, b.o.updates)
	name := "roll-" + b.runID
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	port := ln.Addr().(*net.TCPAddr).Port
	ln.Close()
	td, err := b.taskDef(name, "u0", true)
	if err != nil {
		return err
	}
	if err := b.createService(name, td, tasks, map[string]any{
		"deploymentConfiguration": map[string]any{"minimumHealthyPercent": 100, "maximumPercent": 200},
		"loadBalancer":            map[string]any{"listenerPort": port, "containerName": "app", "containerPort": 8080},
	}); err != nil {
		return err
	}
	if err := b.waitServing(name, b.o.timeout); err != nil {
		return err
	}
	lbBefore, err := b.lbCounters(name)
	if err != nil {
		return err
	}

	// The client: one keep-alive connection, a GET every 50 ms.
	url := fmt.Sprintf("http://127.0.0.1:%d/", port)
	client := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: 1}}
	var (
		current  atomic.Int64 // the number of the last update that completed (its message is uN)
		requests atomic.Int64
		mu       sync.Mutex
		failures []string
		stale    int
		stop     = make(chan struct{})
		done     = make(chan struct{})
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
			last := current.Load()
			asked := time.Now()
			body, err := get(client, url)
			requests.Add(1)
			mu.Lock()
			switch {
			case err != nil:
				failures = append(failures, fmt.Sprintf("%s: %v", asked.Format("15:04:05.000"), err))
			case answered(body) < last:
				stale++ // an old revision answered after its replacement completed
			}
			mu.Unlock()
		}
	}()
	fmt.Printf("%-4s %10s %9s %9s\n", "#", "wall", "requests", "failed")
	var walls []time.Duration
	for i := 1; i <= b.o.updates; i++ {
		msg := fmt.Sprintf("u%d", i)
		td, err := b.taskDef(name, msg, true)
		if err != nil {
			return err
		}
		mu.Lock()
		failed0 := len(failures)
		mu.Unlock()
		req0 := requests.Load()
		start := time.Now()
		data, err := b.call("PATCH", "/api/v1/clusters/"+b.cluster+"/services/"+name, map[string]any{"taskDefinition": td}, http.StatusOK)
		if err != nil {
			return err
		}
		var s service
		if err := json.Unmarshal(data, &s); err != nil {
			return err
		}
		depID := ""
		for _, d := range s.Deployments {
			if d.Status == "PRIMARY" {
				depID = d.ID
			}
		}
		var dep depSeen
		if err := b.until("update "+msg, b.o.timeout, func() bool {
			if d := b.deps[depID]; d != nil {
				dep = *d
			}
			return !dep.completed.IsZero() || !dep.failed.IsZero()
		}); err != nil {
			return err
		}
		if !dep.failed.IsZero() {
			return fmt.Errorf("update %s: deployment %s FAILED; see %s", msg, depID, filepath.Join(b.work, "server.log"))
		}
		wall := dep.completed.Sub(start)
		current.Store(int64(i))
		walls = append(walls, wall)
		mu.Lock()
		failed := len(failures) - failed0
		mu.Unlock()
		fmt.Printf("%-4d %10s %9d %9d\n", i, stats.MS(wall), requests.Load()-req0, failed)
		// The next update starts once a few requests have seen this one.
		time.Sleep(500 * time.Millisecond)
	}
	close(stop)
	<-done
	lbAfter, err := b.lbCounters(name)
	if err != nil {
		return err
	}
	mu.Lock()
	defer mu.Unlock()
	fmt.Printf("  wall time, update → COMPLETED: p50 %s  p95 %s  (min %s, max %s)\n", stats.MS(stats.Percentile(walls, 50)),
		stats.MS(stats.Percentile(walls, 95)), stats.MS(slices.Min(walls)), stats.MS(slices.Max(walls)))
	fmt.Printf("  requests %d, failed %d, old revision answering after its replacement completed %d\n", requests.Load(), len(failures), stale)
	fmt.Printf("  load balancer's counters over the phase: %d requests, %d failures, %d retries\n",
		lbAfter["requests"]-lbBefore["requests"], lbAfter["failures"]-lbBefore["failures"], lbAfter["retries"]-lbBefore["retries"])
	for _, f := range failures[:min(len(failures), 10)] {
		fmt.Println("  failed:", f)
	}
	return b.deleteServices([]string{name})
}

// answered is the update number of an answer "uN" (-1 if it is not one).
func answered(body string) int64 {
	n, err := strconv.ParseInt(strings.TrimPrefix(strings.TrimSpace(body), "u"), 10, 64)
	if err != nil {
		return -1
	}
	return n
}

func get(c *http.Client, url string) (string, error) {
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
		return "", fmt.Errorf("%s: %s", resp.Status, strings.TrimSpace(string(body)))
	}
	return string(body), nil
}

// lbCounters are a service's load balancer counters in /metrics.
func (b *bench) lbCounters(service string) (map[string]int64, error) {
	data, err := b.call("GET", "/metrics", nil, http.StatusOK)
	if err != nil {
		return nil, err
	}
	out := map[string]int64{}
	for _, kind := range []string{"requests", "failures", "retries"} {
		prefix := fmt.Sprintf("scangate_lb_%s_total{cluster=%q,service=%q} ", kind, b.cluster, service)
		for _, l := range strings.Split(string(data), "\n") {
			if v, ok := strings.CutPrefix(l, prefix); ok {
				f, _ := strconv.ParseFloat(strings.TrimSpace(v), 64)
				out[kind] = int64(f)
			}
		}
	}
	return out, nil
}

// --- 3. the reconciler at rest

func (b *bench) atRestPhase() error {
	fmt.Printf("\n== the server at rest: CPU over %s, as %% of one core\n", b.o.idle)
	hz, err := clockTicks()
	if err != nil {
		return err
	}
	dockerd := pidOf("dockerd")
	measure := func(label string) error {
		for range b.o.repeat {
			fmt.Printf("  %-48s", label+":")
			var prof *exec.Cmd
			profile := filepath.Join(b.work, "perf.data")
			if b.o.perf {
				prof = exec.Command("perf", "record", "-q", "-F", "499", "-g", "-p", strconv.Itoa(b.cmd.Process.Pid), "-o", profile,
					"--", "sleep", strconv.Itoa(int(b.o.idle.Seconds())))
				if err := prof.Start(); err != nil {
					return fmt.Errorf("perf: %w", err)
				}
			}
			server, engine, err := cpu(b.cmd.Process.Pid, dockerd, b.o.idle, hz)
			if err != nil {
				return err
			}
			fmt.Printf(" scangate %6.3f %%", server)
			if dockerd != 0 {
				fmt.Printf("   dockerd %6.3f %%", engine)
			}
			if prof != nil {
				if err := prof.Wait(); err != nil {
					return fmt.Errorf("perf record: %w", err)
				}
				shares, err := perfShares(profile)
				if err != nil {
					return err
				}
				fmt.Printf("   of which the controller %.3f %%, River's polls %.3f %%", server*shares[0]/100, server*shares[1]/100)
			}
			fmt.Println()
		}
		return nil
	}
	// The bench's own event watcher polls the API every 10 ms: it rests
	// too while the server's CPU is measured.
	settle := func() {
		b.paused.Store(true)
		time.Sleep(10 * time.Second)
	}
	defer b.paused.Store(false)
	settle()
	if err := measure("no service"); err != nil {
		return err
	}
	family := "rest-" + b.runID
	td, err := b.taskDef(family, "at rest", false)
	if err != nil {
		return err
	}
	names := make([]string, b.o.services)
	for i := range names {
		names[i] = fmt.Sprintf("rest-%02d-%s", i, b.runID)
		if err := b.createService(names[i], td, 0, nil); err != nil {
			return err
		}
	}
	if err := b.waitSteady(names, b.o.timeout); err != nil {
		return err
	}
	settle()
	if err := measure(fmt.Sprintf("%d services, desired count 0", len(names))); err != nil {
		return err
	}
	started := time.Now()
	for _, n := range names {
		if _, err := b.call("PATCH", "/api/v1/clusters/"+b.cluster+"/services/"+n, map[string]any{"desiredCount": 1}, http.StatusOK); err != nil {
			return err
		}
	}
	if err := b.waitSteady(names, 2*b.o.timeout); err != nil {
		return err
	}
	fmt.Printf("  (%d tasks started and steady in %s)\n", len(names), time.Since(started).Round(100*time.Millisecond))
	settle()
	if err := measure(fmt.Sprintf("%d services, desired count 1 (%d tasks)", len(names), len(names))); err != nil {
		return err
	}
	return b.deleteServices(names)
}

// perfShares reads a perf profile of the server: the percentages of its
// samples spent in the service controller's loop (deploy.Controller.Run,
// with what it calls: the reconciles) and in River's polls of the
// database (the producers' fetches and the notifier's listener).
func perfShares(profile string) ([2]float64, error) {
	var out [2]float64
	rep, err := exec.Command("perf", "report", "-i", profile, "--children", "--sort", "symbol", "--stdio", "-g", "none").Output()
	if err != nil {
		return out, fmt.Errorf("perf report: %w", err)
	}
	for _, line := range strings.Split(string(rep), "\n") {
		f := strings.Fields(line)
		if len(f) < 4 || !strings.HasSuffix(f[0], "%") {
			continue
		}
		pct, err := strconv.ParseFloat(strings.TrimSuffix(f[0], "%"), 64)
		if err != nil {
			continue
		}
		sym := f[3]
		switch {
		case strings.HasSuffix(sym, "/internal/deploy.(*Controller).Run"):
			out[0] += pct
		case strings.HasSuffix(sym, "river.(*producer).dispatchWork"), strings.HasSuffix(sym, "notifier.(*Notifier).waitOnce.func3"):
			out[1] += pct
		}
	}
	return out, nil
}

// clockTicks is the kernel's clock ticks per second (USER_HZ), in which
// /proc/PID/stat counts CPU time.
func clockTicks() (float64, error) {
	out, err := exec.Command("getconf", "CLK_TCK").Output()
	if err != nil {
		return 0, fmt.Errorf("getconf CLK_TCK: %w", err)
	}
	return strconv.ParseFloat(strings.TrimSpace(string(out)), 64)
}

// cpu measures the CPU time of pid (and of other, when not 0) over d, as a
// percentage of one core.
func cpu(pid, other int, d time.Duration, hz float64) (float64, float64, error) {
	a0, err := cpuTicks(pid)
	if err != nil {
		return 0, 0, err
	}
	b0, _ := cpuTicks(other)
	start := time.Now()
	time.Sleep(d)
	a1, err := cpuTicks(pid)
	if err != nil {
		return 0, 0, err
	}
	b1, _ := cpuTicks(other)
	wall := time.Since(start).Seconds()
	return float64(a1-a0) / hz / wall * 100, float64(b1-b0) / hz / wall * 100, nil
}

// cpuTicks is utime + stime of pid, from /proc/PID/stat.
func cpuTicks(pid int) (int64, error) {
	if pid == 0 {
		return 0, errors.New("no process")
	}
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, err
	}
	// The fields after the command's ")" start at field 3 (state).
	i := bytes.LastIndexByte(data, ')')
	if i < 0 {
		return 0, fmt.Errorf("/proc/%d/stat: %q", pid, data)
	}
	f := strings.Fields(string(data[i+1:]))
	if len(f) < 13 {
		return 0, fmt.Errorf("/proc/%d/stat: %q", pid, data)
	}
	utime, err1 := strconv.ParseInt(f[11], 10, 64) // field 14
	stime, err2 := strconv.ParseInt(f[12], 10, 64) // field 15
	if err := errors.Join(err1, err2); err != nil {
		return 0, err
	}
	return utime + stime, nil
}

// pidOf is the pid of the first process named comm, or 0.
func pidOf(comm string) int {
	entries, _ := os.ReadDir("/proc")
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		if data, err := os.ReadFile(filepath.Join("/proc", e.Name(), "comm")); err == nil && strings.TrimSpace(string(data)) == comm {
			return pid
		}
	}
	return 0
}

// facts prints the machine's.
func facts(work string) {
	model := ""
	if data, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for _, line := range strings.Split(string(data), "\n") {
			if v, ok := strings.CutPrefix(line, "model name"); ok {
				model = strings.TrimSpace(strings.TrimPrefix(strings.TrimSpace(v), ":"))
				break
			}
		}
	}
	mem := ""
	if data, err := os.ReadFile("/proc/meminfo"); err == nil {
		mem = strings.TrimSpace(strings.SplitN(string(data), "\n", 2)[0])
	}
	dockerV, _ := exec.Command("docker", "version", "--format", "{{.Server.Version}} (API {{.Server.APIVersion}})").Output()
	load, _ := os.ReadFile("/proc/loadavg")
	fmt.Printf("machine: %d CPUs (%s), %s, %s, Docker Engine %s", runtime.NumCPU(), model, mem, runtime.Version(), dockerV)
	fmt.Printf("work folder: %s\n", work)
	fmt.Printf("load average at the start: %s", load)
}
