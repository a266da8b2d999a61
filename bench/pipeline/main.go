// Command pipeline measures scangate's pipelines (issue 5's figures) on the
// local Docker Engine:
//
//  1. commit pushed to approval decided: one hosted repository and its
//     pipeline; -n commits, one after the other, each changing a file that
//     a small image (FROM a base image made here and `docker load`ed, plus
//     COPY) copies in. Each is timed from the start of `git push` to the
//     moment the event log (GET /api/v1/events, polled every 10 ms) shows
//     the Approval stage's final state for its execution; p50 and p95. One
//     untimed commit first puts the base layers in the registry.
//  2. a burst: -burst repositories, each with its pipeline and a commit
//     ready, are pushed at once (one `git push` each, concurrently) to a
//     server whose build concurrency is -build-concurrency. It checks that
//     every push gave one execution, that each ended, and that the event log
//     holds one Approval Requested, one final Approval stage state and one
//     final execution state for each; it reports the time from the first
//     push to the last decision, and each execution's.
//
// It starts the scangate binary -bin on 127.0.0.1 and a free port, over a
// new data folder under -work with the fixture feeds imported (debian,
// ghsa, nvd), and stops it at the end.
//
//	make build && go run ./bench/pipeline [-n 10] [-burst 20] [-build-concurrency 2]
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
	"sort"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/tarball"

	"github.com/scangate/scangate/bench/stats"
)

type options struct {
	bin, work, feeds string
	n, burst, conc   int
	timeout          time.Duration
}

func main() {
	var o options
	flag.StringVar(&o.bin, "bin", "bin/scangate", "the scangate binary (make build)")
	flag.StringVar(&o.work, "work", "bench/.work/pipeline", "folder for the data folder, the clones and the logs")
	flag.StringVar(&o.feeds, "feeds", "testdata/vulndata", "the fixture feeds")
	flag.IntVar(&o.n, "n", 10, "timed commits, one after the other; 0 skips them")
	flag.IntVar(&o.burst, "burst", 20, "pipelines pushed at once; 0 skips the burst")
	flag.IntVar(&o.conc, "build-concurrency", 2, "the server's --build-concurrency")
	flag.DurationVar(&o.timeout, "timeout", 10*time.Minute, "give up on a commit or the burst after this long")
	flag.Parse()
	if err := run(o); err != nil {
		fmt.Fprintln(os.Stderr, "bench/pipeline:", err)
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
	feeds := []string{filepath.Join(o.feeds, "debian"), filepath.Join(o.feeds, "ghsa"), filepath.Join(o.feeds, "nvd")}
	if _, err := scangate(o.bin, data, append([]string{"db", "import"}, feeds...)...); err != nil {
		return err
	}
	token, err := scangate(o.bin, data, "token", "create", "--name", "bench", "--role", "admin")
	if err != nil {
		return err
	}
	var idb [4]byte
	_, _ = rand.Read(idb[:])
	runID := hex.EncodeToString(idb[:])

	b := &bench{o: o, work: work, token: strings.TrimSpace(token), runID: runID}
	if b.base, err = b.loadBase(filepath.Join(o.feeds, "debian")); err != nil {
		return err
	}
	defer b.removeBuilt()
	if err := b.gitEnv(); err != nil {
		return err
	}
	if err := b.startServer(data); err != nil {
		return err
	}
	defer b.stopServer()
	go b.watch()

	if o.n > 0 {
		if err := b.sequential(); err != nil {
			return err
		}
	}
	if o.burst > 0 {
		if err := b.burstRun(); err != nil {
			return err
		}
	}
	load, _ := os.ReadFile("/proc/loadavg")
	fmt.Printf("\nload average at the end: %s", load)
	return nil
}

// bench is the run's state: the server, the base image, the event watcher.
type bench struct {
	o                  options
	work, token, runID string
	base               string // the base image's tag
	baseID             string
	env                []string // git's
	cmd                *exec.Cmd
	addr               string

	mu    sync.Mutex
	execs map[string]*execution // by execution id
	byKey map[string]string     // "pipeline commit" → execution id
	scans map[string]time.Time  // image digest → Scan event seen
	err   error                 // the watcher's
}

// execution is what the event log said of one execution, and when the
// watcher saw it.
type execution struct {
	id, pipeline, commit, digest, final, approval string
	started, built, requested, decided, ended     time.Time
	requests, approvalFinals, execFinals          int
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
	b.cmd = exec.Command(b.o.bin, "--data-dir", data, "server", "--addr", b.addr, "--build-concurrency", fmt.Sprint(b.o.conc))
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
			b.stopServer()
			return fmt.Errorf("the server was not ready in 30 s; see %s", logPath)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func (b *bench) stopServer() {
	_ = b.cmd.Process.Signal(syscall.SIGTERM)
	_ = b.cmd.Wait()
}

func (b *bench) api(method, path string, body []byte, want int) ([]byte, error) {
	req, err := http.NewRequest(method, "http://"+b.addr+path, bytes.NewReader(body))
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

// watch follows the event log, noting when each pipeline event is seen.
func (b *bench) watch() {
	var after int64
	for {
		data, err := b.api("GET", fmt.Sprintf("/api/v1/events?after=%d&limit=1000", after), nil, http.StatusOK)
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
				Pipeline string `json:"pipeline"`
				ID       string `json:"execution-id"`
				Commit   string `json:"commit"`
				State    string `json:"state"`
				Stage    string `json:"stage"`
				Digest   string `json:"image-digest"`
			}
			_ = json.Unmarshal(e.Event.Detail, &d)
			if e.Event.DetailType == "Scan" {
				b.scans[d.Digest] = now
				continue
			}
			if d.ID == "" {
				continue
			}
			x := b.execs[d.ID]
			if x == nil {
				x = &execution{id: d.ID, pipeline: d.Pipeline}
				b.execs[d.ID] = x
			}
			switch e.Event.DetailType {
			case "Pipeline Execution State Change":
				if d.State == "STARTED" {
					x.commit, x.started = d.Commit, now
					b.byKey[d.Pipeline+" "+d.Commit] = d.ID
				} else {
					x.final, x.ended = d.State, now
					x.execFinals++
				}
			case "Stage State Change":
				switch {
				case d.Stage == "Build" && d.State == "Succeeded":
					x.built = now
				case d.Stage == "Approval" && d.State != "InProgress":
					x.approval, x.decided = d.State, now
					x.approvalFinals++
				}
			case "Approval Requested":
				x.digest, x.requested = d.Digest, now
				x.requests++
			}
		}
		b.mu.Unlock()
		if len(page.Events) < 1000 {
			time.Sleep(10 * time.Millisecond)
		}
	}
}

// waitDecided waits for the execution of pipeline's commit to end, and
// returns what was seen of it.
func (b *bench) waitDecided(pipeline, commit string, deadline time.Time) (execution, error) {
	for {
		b.mu.Lock()
		err := b.err
		var x execution
		ok := false
		if id := b.byKey[pipeline+" "+commit]; id != "" && !b.execs[id].ended.IsZero() {
			x, ok = *b.execs[id], true
		}
		b.mu.Unlock()
		if err != nil {
			return x, fmt.Errorf("event log: %w", err)
		}
		if ok {
			return x, nil
		}
		if time.Now().After(deadline) {
			return x, fmt.Errorf("%s: the execution of %.12s did not end in time (stuck or lost)", pipeline, commit)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// repo is a hosted repository with its pipeline and a clone.
type repo struct{ name, clone string }

func (b *bench) newRepo(name string) (*repo, error) {
	body, _ := json.Marshal(map[string]string{"name": name})
	if _, err := b.api("POST", "/api/v1/repositories", body, http.StatusCreated); err != nil {
		return nil, err
	}
	def := fmt.Sprintf(`name: %s
source: {repository: %s, branch: main}
build: {repository: bench/%s}
approval:
  policy:
    thresholds: {CRITICAL: 0, HIGH: 0}
deploy: {cluster: default, service: %s, container: app}
`, name, name, name, name)
	if _, err := b.api("PUT", "/api/v1/pipelines/"+name, []byte(def), http.StatusOK); err != nil {
		return nil, err
	}
	r := &repo{name: name, clone: filepath.Join(b.work, "clones", name)}
	if err := os.RemoveAll(r.clone); err != nil {
		return nil, err
	}
	if _, err := b.git("", "clone", "--quiet", fmt.Sprintf("http://bench:%s@%s/git/%s.git", b.token, b.addr, name), r.clone); err != nil {
		return nil, err
	}
	return r, nil
}

// commit writes the Dockerfile and app.txt (body) and commits them; it
// does not push.
func (b *bench) commit(r *repo, body string) (string, error) {
	files := map[string]string{
		"Dockerfile": "FROM " + b.base + "\nCOPY app.txt /app/app.txt\n",
		"app.txt":    body,
	}
	for f, text := range files {
		if err := os.WriteFile(filepath.Join(r.clone, f), []byte(text), 0o644); err != nil {
			return "", err
		}
	}
	if _, err := b.git(r.clone, "add", "-A"); err != nil {
		return "", err
	}
	if _, err := b.git(r.clone, "commit", "--quiet", "-m", body); err != nil {
		return "", err
	}
	return b.git(r.clone, "rev-parse", "HEAD")
}

func (b *bench) push(r *repo) error {
	_, err := b.git(r.clone, "push", "--quiet", "origin", "HEAD:main")
	return err
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

func (b *bench) gitEnv() error {
	home := filepath.Join(b.work, "home")
	if err := os.MkdirAll(home, 0o750); err != nil {
		return err
	}
	b.env = append(os.Environ(), "HOME="+home, "GIT_CONFIG_NOSYSTEM=1", "GIT_TERMINAL_PROMPT=0",
		"GIT_AUTHOR_NAME=Bench", "GIT_AUTHOR_EMAIL=bench@example.com",
		"GIT_COMMITTER_NAME=Bench", "GIT_COMMITTER_EMAIL=bench@example.com")
	b.execs, b.byKey, b.scans = map[string]*execution{}, map[string]string{}, map[string]time.Time{}
	return nil
}

// sequential times -n commits of one pipeline, one after the other.
func (b *bench) sequential() error {
	r, err := b.newRepo("seq-" + b.runID)
	if err != nil {
		return err
	}
	fmt.Printf("\n== commit pushed → approval decided: %d commits of one pipeline, one after the other\n", b.o.n)
	var total, pushes, queued, scanWaits, builds, gates []time.Duration
	decisions := map[string]int{}
	for i := 0; i <= b.o.n; i++ {
		commit, err := b.commit(r, fmt.Sprintf("commit %d of run %s\n", i, b.runID))
		if err != nil {
			return err
		}
		t0 := time.Now()
		if err := b.push(r); err != nil {
			return err
		}
		pushed := time.Now()
		x, err := b.waitDecided(r.name, commit, time.Now().Add(b.o.timeout))
		if err != nil {
			return err
		}
		if i == 0 {
			fmt.Printf("warm-up (untimed; the base layers' first push): %s\n", stats.MS(x.decided.Sub(t0)))
			continue
		}
		b.mu.Lock()
		scanned := b.scans[x.digest]
		b.mu.Unlock()
		answer, err := b.answer(x.id)
		if err != nil {
			return err
		}
		total = append(total, x.decided.Sub(t0))
		pushes = append(pushes, pushed.Sub(t0))
		queued = append(queued, x.started.Sub(t0))
		scanWaits = append(scanWaits, scanned.Sub(t0))
		builds = append(builds, x.built.Sub(t0))
		gates = append(gates, x.decided.Sub(x.requested))
		decisions[answer]++
		fmt.Printf("commit %2d %.12s: %s (git push returned %s, started %s, Scan event %s, Build Succeeded %s; decided %s after the request) %s\n",
			i, commit, stats.MS(total[len(total)-1]), stats.MS(pushes[len(pushes)-1]), stats.MS(queued[len(queued)-1]),
			stats.MS(scanWaits[len(scanWaits)-1]), stats.MS(builds[len(builds)-1]), stats.MS(gates[len(gates)-1]), answer)
	}
	fmt.Printf("push → decided: p50 %s, p95 %s (min %s, max %s); decisions %v\n",
		stats.MS(stats.Percentile(total, 50)), stats.MS(stats.Percentile(total, 95)), stats.MS(slices.Min(total)), stats.MS(slices.Max(total)), decisions)
	fmt.Printf("  medians from the push's start: git push returned %s, execution started %s, image's Scan event %s, Build Succeeded %s; Approval Requested → decided %s\n",
		stats.MS(stats.Median(pushes)), stats.MS(stats.Median(queued)), stats.MS(stats.Median(scanWaits)), stats.MS(stats.Median(builds)), stats.MS(stats.Median(gates)))
	return nil
}

// answer is an execution's approval status and summary, from the API.
func (b *bench) answer(id string) (string, error) {
	data, err := b.api("GET", "/api/v1/executions/"+id, nil, http.StatusOK)
	if err != nil {
		return "", err
	}
	var ex struct {
		Approval *struct{ Status, Summary, DecidedBy string }
	}
	if err := json.Unmarshal(data, &ex); err != nil {
		return "", err
	}
	if ex.Approval == nil {
		return "no approval", nil
	}
	return ex.Approval.Status + " by " + ex.Approval.DecidedBy, nil
}

// burstRun pushes -burst pipelines at once and checks each was decided
// exactly once.
func (b *bench) burstRun() error {
	fmt.Printf("\n== burst: %d pipelines pushed at once, build concurrency %d\n", b.o.burst, b.o.conc)
	repos := make([]*repo, b.o.burst)
	commits := make([]string, b.o.burst)
	for i := range repos {
		r, err := b.newRepo(fmt.Sprintf("burst%02d-%s", i, b.runID))
		if err != nil {
			return err
		}
		if commits[i], err = b.commit(r, fmt.Sprintf("burst %d of run %s\n", i, b.runID)); err != nil {
			return err
		}
		repos[i] = r
	}
	start := time.Now()
	errs := make([]error, len(repos))
	pushed := make([]time.Time, len(repos))
	var wg sync.WaitGroup
	for i, r := range repos {
		wg.Go(func() {
			errs[i] = b.push(r)
			pushed[i] = time.Now()
		})
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return err
	}
	fmt.Printf("all %d pushes returned after %s\n", len(repos), stats.MS(time.Since(start)))
	deadline := time.Now().Add(b.o.timeout)
	xs := make([]execution, len(repos))
	for i, r := range repos {
		x, err := b.waitDecided(r.name, commits[i], deadline)
		if err != nil {
			return err
		}
		xs[i] = x
	}
	last := start
	for _, x := range xs {
		if x.decided.After(last) {
			last = x.decided
		}
	}
	// Let anything late (a second decision would be a bug) reach the log.
	time.Sleep(2 * time.Second)

	sort.Slice(xs, func(i, j int) bool { return xs[i].decided.Before(xs[j].decided) })
	var totals []time.Duration
	decisions := map[string]int{}
	var problems []string
	fmt.Println("execution                 pipeline          push→started  started→built  built→decided  push→decided  decision")
	for _, x := range xs {
		b.mu.Lock()
		now := *b.execs[x.id]
		b.mu.Unlock()
		if now.requests != 1 || now.approvalFinals != 1 || now.execFinals != 1 {
			problems = append(problems, fmt.Sprintf("%s (%s): %d Approval Requested, %d final Approval states, %d final execution states",
				x.id, x.pipeline, now.requests, now.approvalFinals, now.execFinals))
		}
		d := x.decided.Sub(start)
		totals = append(totals, d)
		answer, err := b.answer(x.id)
		if err != nil {
			return err
		}
		decisions[answer]++
		fmt.Printf("%s  %-16s  %12s  %13s  %13s  %12s  %s\n", x.id, strings.TrimSuffix(x.pipeline, "-"+b.runID),
			stats.MS(x.started.Sub(start)), stats.MS(x.built.Sub(x.started)), stats.MS(x.decided.Sub(x.built)), stats.MS(d), answer)
	}
	// None lost: each pipeline has exactly one execution, ended.
	for i, r := range repos {
		data, err := b.api("GET", "/api/v1/executions?pipeline="+r.name, nil, http.StatusOK)
		if err != nil {
			return err
		}
		var list struct {
			Executions []struct{ ID, Commit, Status string }
		}
		if err := json.Unmarshal(data, &list); err != nil {
			return err
		}
		if len(list.Executions) != 1 || list.Executions[0].Commit != commits[i] || list.Executions[0].Status == "InProgress" {
			problems = append(problems, fmt.Sprintf("%s: executions %+v, want one ended for %.12s", r.name, list.Executions, commits[i]))
		}
	}
	fmt.Printf("first push → last decision: %s; per execution p50 %s, p95 %s (min %s, max %s); decisions %v\n",
		stats.MS(last.Sub(start)), stats.MS(stats.Percentile(totals, 50)), stats.MS(stats.Percentile(totals, 95)), stats.MS(slices.Min(totals)), stats.MS(slices.Max(totals)), decisions)
	if len(problems) > 0 {
		return fmt.Errorf("burst: %d problems:\n%s", len(problems), strings.Join(problems, "\n"))
	}
	fmt.Printf("checked: %d executions, one per push, each ended; each has 1 Approval Requested, 1 final Approval state, 1 final execution state in the event log\n", len(xs))
	return nil
}

// loadBase makes a base image (Debian bookworm's os-release and dpkg
// status from the fixtures, and a file unique to the run) and loads it into
// the Docker Engine.
func (b *bench) loadBase(debian string) (string, error) {
	osRelease, err := os.ReadFile(filepath.Join(debian, "os-release"))
	if err != nil {
		return "", err
	}
	status, err := os.ReadFile(filepath.Join(debian, "dpkg-status"))
	if err != nil {
		return "", err
	}
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, f := range []struct {
		name string
		body []byte
	}{{"etc/os-release", osRelease}, {"var/lib/dpkg/status", status}, {"etc/bench-run", []byte(b.runID + "\n")}} {
		if err := tw.WriteHeader(&tar.Header{Name: f.name, Mode: 0o644, Size: int64(len(f.body)), Typeflag: tar.TypeReg}); err != nil {
			return "", err
		}
		if _, err := tw.Write(f.body); err != nil {
			return "", err
		}
	}
	if err := tw.Close(); err != nil {
		return "", err
	}
	data := buf.Bytes()
	layer, err := tarball.LayerFromOpener(func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(data)), nil })
	if err != nil {
		return "", err
	}
	img, err := mutate.AppendLayers(empty.Image, layer)
	if err != nil {
		return "", err
	}
	cf, err := img.ConfigFile()
	if err != nil {
		return "", err
	}
	cf = cf.DeepCopy()
	cf.OS, cf.Architecture = "linux", runtime.GOARCH
	if img, err = mutate.ConfigFile(img, cf); err != nil {
		return "", err
	}
	tag := "scangate-bench/pipeline-base:" + b.runID
	t, err := name.NewTag(tag)
	if err != nil {
		return "", err
	}
	archive := filepath.Join(b.work, "base.tar")
	if err := tarball.WriteToFile(archive, t, img); err != nil {
		return "", err
	}
	if out, err := exec.Command("docker", "load", "-q", "-i", archive).CombinedOutput(); err != nil {
		return "", fmt.Errorf("docker load: %v\n%s", err, out)
	}
	out, err := exec.Command("docker", "image", "inspect", "--format", "{{.Id}}", tag).Output()
	if err != nil {
		return "", fmt.Errorf("docker image inspect %s: %v", tag, err)
	}
	b.baseID = strings.TrimSpace(string(out))
	return tag, nil
}

// removeBuilt removes the base image and the images built on it (the
// legacy builder keeps each step's image as cache).
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
	df, _ := exec.Command("df", "-hT", work).Output()
	load, _ := os.ReadFile("/proc/loadavg")
	fmt.Printf("machine: %d CPUs (%s), %s, %s, Docker Engine %s", runtime.NumCPU(), model, mem, runtime.Version(), dockerV)
	fmt.Printf("disk of %s:\n%s", work, df)
	fmt.Printf("load average at the start: %s", load)
}
