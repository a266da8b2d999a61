package server_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
	gcrname "github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/scangate/scangate/internal/imagetest"
	"github.com/scangate/scangate/internal/pipeline"
	"github.com/scangate/scangate/internal/servertest"
)

// These tests kill `scangate server` with SIGKILL while a pipeline
// execution is in the middle of something, start it again on the same data
// folder, and check on the real Docker Engine that the execution ends, with
// a reason, and that its approval is decided exactly once: in the event log
// (one final Approval stage state, one final execution state) and in the
// API. They need Docker and fail without it.

// TestPipelineKilledMidBuild kills the server twice while a build's RUN
// step runs (once in each of the build job's two attempts); the third
// server builds again, and the execution goes on to its approval.
func TestPipelineKilledMidBuild(t *testing.T) {
	t.Parallel()
	p := newPipelineHarness(t, "debian", "ghsa")
	srv := p.start(t)
	db := p.db(t)
	base := p.baseImage("clean", "")
	name := "slow-build-" + p.id
	p.setUp(name, pipelineDefinition(name, ""))
	commit := p.commit("slow build", map[string]string{
		// fakesh runs the RUN step: five seconds in a build container.
		"Dockerfile": "FROM " + base + "\nRUN echo building && sleep 5\nCOPY app.txt /app/app.txt\n",
		"app.txt":    "hello\n",
	})
	ctx, cancel := context.WithTimeout(context.Background(), 80*time.Second)
	defer cancel()
	id := p.executionID(ctx, name, commit)

	seen := map[string]bool{} // RUN containers of earlier attempts
	for attempt := 1; attempt <= 2; attempt++ {
		var containers []string
		waitFor(t, ctx, fmt.Sprintf("attempt %d's RUN step", attempt), func() (bool, error) {
			time.Sleep(50 * time.Millisecond)
			containers = p.runContainers(base)
			for _, c := range containers {
				if !seen[c] {
					return true, nil
				}
			}
			return false, nil
		})
		state, got := buildJob(t, db, id)
		if state != "running" || got != attempt {
			t.Fatalf("with a RUN container up, the build job is %s at attempt %d, want running at %d", state, got, attempt)
		}
		srv.kill(t)
		for _, c := range containers {
			seen[c] = true
		}
		var status, build string
		if err := db.QueryRow(`SELECT e.status, s.status FROM executions e JOIN stages s ON s.execution_id = e.id AND s.name = 'Build'
			WHERE e.id = $1`, id).Scan(&status, &build); err != nil {
			t.Fatal(err)
		}
		if status != pipeline.StateInProgress || build != pipeline.StateInProgress {
			t.Fatalf("after the kill: execution %s, build %s; want both InProgress", status, build)
		}
		t.Logf("killed the server during attempt %d of the build", attempt)
		srv = p.start(t)
	}

	ex := p.waitEnd(ctx, id)
	if ex.Status != pipeline.StateSucceeded || ex.Approval == nil || ex.Approval.Status != pipeline.StateApproved || ex.Approval.DecidedBy != pipeline.Evaluator {
		t.Fatalf("after two kills mid-build: %s (%s), approval %+v; want Succeeded, approved by the evaluator", ex.Status, ex.Reason, ex.Approval)
	}
	if log := p.api("GET", "/api/v1/executions/"+id+"/log", nil, http.StatusOK); !bytes.Contains(log, []byte("building")) {
		t.Errorf("build log without the RUN step's output:\n%s", log)
	}
	checkDecidedOnce(t, db, id, "Succeeded")
	waitFor(t, ctx, "the pipeline's jobs to finish", func() (bool, error) { return noPipelineJobsWaiting(db) })
	if state, attempt := buildJob(t, db, id); state != "completed" || attempt != 3 {
		t.Errorf("build job %s at attempt %d, want completed at 3", state, attempt)
	}
	checkDecidedOnce(t, db, id, "Succeeded")
	checkNothingInProgress(t, db)
	// The Docker Engine ends the builds of the dead servers: their RUN
	// containers go away.
	waitFor(t, ctx, "the killed builds' RUN containers to go", func() (bool, error) {
		time.Sleep(50 * time.Millisecond)
		return len(p.runContainers(base)) == 0, nil
	})
	p.logRecovery(t)
	srv.stop(t)
}

// TestPipelineKilledAwaitingApproval kills the server while an execution
// waits at its approval stage for the scan of its image. The server has no
// vulnerability database until then, so the scan cannot have finished: its
// first attempt has failed and waits for a retry. The feeds are imported
// while the server is down; the next server scans, and the evaluator
// decides once.
func TestPipelineKilledAwaitingApproval(t *testing.T) {
	t.Parallel()
	p := newPipelineHarness(t)
	srv := p.start(t)
	db := p.db(t)
	base := p.baseImage("vulnerable", imagetest.ReadFixture(t, "debian", "dpkg-status"))
	name := "waiting-" + p.id
	p.setUp(name, pipelineDefinition(name, ""))
	commit := p.commit("vulnerable", map[string]string{
		"Dockerfile": "FROM " + base + "\nCOPY app.txt /app/app.txt\n",
		"app.txt":    "hello\n",
	})
	ctx, cancel := context.WithTimeout(context.Background(), 80*time.Second)
	defer cancel()
	id := p.executionID(ctx, name, commit)
	digest := p.waitAwaitingApproval(ctx, db, id)
	srv.kill(t)
	p.checkAwaiting(db, id, digest)

	p.run(t, append([]string{"db", "import"}, feedPaths("debian", "ghsa", "nvd")...)...)
	restarted := time.Now()
	srv = p.start(t)
	ex := p.waitEnd(ctx, id)
	t.Logf("decided %s after the restart", time.Since(restarted).Round(time.Millisecond))
	a := ex.Approval
	if ex.Status != pipeline.StateFailed || a == nil || a.Status != pipeline.StateRejected || a.DecidedBy != pipeline.Evaluator {
		t.Fatalf("after the kill: %s (%s), approval %+v; want Failed, rejected by the evaluator", ex.Status, ex.Reason, a)
	}
	if !strings.HasPrefix(a.Summary, "Rejected: CRITICAL") || !strings.Contains(strings.Join(a.Reasons, "\n"), "zlib1g CVE-2023-45853") || ex.Reason != a.Summary {
		t.Errorf("rejection %q (execution: %q)\n%s", a.Summary, ex.Reason, strings.Join(a.Reasons, "\n"))
	}
	if a.ImageDigest != digest || ex.ImageDigest != digest {
		t.Errorf("the approval answers %s, the build pushed %s, want %s", a.ImageDigest, ex.ImageDigest, digest)
	}
	waitFor(t, ctx, "the scan and pipeline jobs to finish", func() (bool, error) {
		ok, err := noJobsWaiting(db)
		if !ok || err != nil {
			return ok, err
		}
		return noPipelineJobsWaiting(db)
	})
	checkDecidedOnce(t, db, id, "Failed")
	if n := scanEvents(t, db, digest); n != 1 {
		t.Errorf("%d Scan events for %s, want 1", n, digest)
	}
	checkNothingInProgress(t, db)
	p.logRecovery(t)
	srv.stop(t)
}

// TestPipelineKilledApprovalExpires kills the server while an execution
// waits for its approval, with a timeout of three seconds, and starts it
// again only after the expiry: the approval expires and the execution
// fails. The scan cannot finish in between (no vulnerability database); it
// fails for good about 16 s later (its third attempt), and that late Scan
// event changes nothing.
func TestPipelineKilledApprovalExpires(t *testing.T) {
	t.Parallel()
	p := newPipelineHarness(t)
	srv := p.start(t)
	db := p.db(t)
	base := p.baseImage("expiring", "")
	name := "expiring-" + p.id
	p.setUp(name, pipelineDefinition(name, "3s"))
	commit := p.commit("expiring", map[string]string{
		"Dockerfile": "FROM " + base + "\nCOPY app.txt /app/app.txt\n",
		"app.txt":    "hello\n",
	})
	ctx, cancel := context.WithTimeout(context.Background(), 85*time.Second)
	defer cancel()
	id := p.executionID(ctx, name, commit)
	digest := p.waitAwaitingApproval(ctx, db, id)
	srv.kill(t)
	p.checkAwaiting(db, id, digest)

	var expires string
	if err := db.QueryRow(`SELECT expires_at FROM approvals WHERE execution_id = $1`, id).Scan(&expires); err != nil {
		t.Fatal(err)
	}
	at, err := time.Parse(time.RFC3339Nano, expires)
	if err != nil {
		t.Fatal(err)
	}
	waitFor(t, ctx, "the approval's expiry, with no server", func() (bool, error) { return time.Now().After(at.Add(500 * time.Millisecond)), nil })
	// River's scheduled jobs (the expiry, the scan's retries) are run by
	// its leader, and the dead server's lease keeps the next server from
	// leading for up to 15 s. Once it has lapsed the next server leads at
	// once and runs the overdue expiry at once, about 16 s before the
	// scan's third attempt can be due: this order is the test's, not luck.
	waitFor(t, ctx, "the dead server's River leadership to lapse", func() (bool, error) {
		var leaders int
		err := db.QueryRow(`SELECT count(*) FROM river_leader WHERE julianday(expires_at) > julianday('now')`).Scan(&leaders)
		if err == nil && leaders > 0 {
			time.Sleep(100 * time.Millisecond)
		}
		return leaders == 0, err
	})
	restarted := time.Now()
	srv = p.start(t)
	ex := p.waitEnd(ctx, id)
	t.Logf("expired %s after the restart", time.Since(restarted).Round(time.Millisecond))
	a := ex.Approval
	if ex.Status != pipeline.StateFailed || a == nil || a.Status != pipeline.StateExpired || !strings.HasPrefix(ex.Reason, "approval expired: no decision by ") {
		t.Fatalf("after the expiry: %s (%s), approval %+v; want Failed, Expired", ex.Status, ex.Reason, a)
	}
	if a.DecidedBy != "" || stageOf(ex, pipeline.StageApproval) != pipeline.StateFailed || stageOf(ex, pipeline.StageDeploy) != pipeline.StateSkipped {
		t.Errorf("expired approval decided by %q; stages %+v", a.DecidedBy, ex.Stages)
	}

	// The scan gives up (SCAN_ERROR) after its third attempt; the
	// evaluator hears of it and must not decide again.
	waitFor(t, ctx, "the scan's final failure", func() (bool, error) {
		var status string
		err := db.QueryRow(`SELECT status FROM scans WHERE digest = $1`, digest).Scan(&status)
		if errors.Is(err, sql.ErrNoRows) {
			return false, nil
		}
		return status == "FAILED", err // its Scan event says SCAN_ERROR
	})
	waitFor(t, ctx, "the Scan event's routing to finish", func() (bool, error) {
		ok, err := noJobsWaiting(db)
		if !ok || err != nil {
			return ok, err
		}
		return noPipelineJobsWaiting(db)
	})
	if n := scanEvents(t, db, digest); n != 1 {
		t.Errorf("%d Scan events for %s, want 1", n, digest)
	}
	after := p.execution(id)
	if after.Status != ex.Status || after.Reason != ex.Reason || after.Approval == nil || after.Approval.Status != pipeline.StateExpired {
		t.Errorf("the late scan changed the execution: %s (%s), approval %+v", after.Status, after.Reason, after.Approval)
	}
	checkDecidedOnce(t, db, id, "Failed")
	checkNothingInProgress(t, db)
	p.logRecovery(t)
	srv.stop(t)
}

// pipelineHarness is a harness whose servers run pipelines: an admin token
// for the API and git, a clone of a hosted repository, and base images in
// the Docker Engine.
type pipelineHarness struct {
	*harness
	t    *testing.T
	id   string   // unique per test, for names in the Docker Engine
	env  []string // git's environment
	work string   // the clone
	// baseIDs are the image IDs of the bases pushed: the engine holds a
	// base by digest, not by the tag a Dockerfile names.
	baseIDs map[string]string
}

// newPipelineHarness makes a data folder with feeds (none: an empty
// vulnerability database) and an admin token.
func newPipelineHarness(t *testing.T, feeds ...string) *pipelineHarness {
	t.Helper()
	if _, err := exec.LookPath("docker"); err != nil {
		t.Fatal("these tests need a Docker Engine and its CLI (docker): ", err)
	}
	if out, err := exec.Command("docker", "version", "--format", "{{.Server.APIVersion}}").CombinedOutput(); err != nil {
		t.Fatalf("these tests need a Docker Engine: docker version: %v\n%s", err, out)
	}
	for _, tool := range []string{"git"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Fatalf("these tests need %s: %v", tool, err)
		}
	}
	h := &harness{bin: scangateBinary(t), dir: t.TempDir()}
	if len(feeds) > 0 {
		h.run(t, append([]string{"db", "import"}, feedPaths(feeds...)...)...)
	}
	h.token = strings.TrimSpace(h.run(t, "token", "create", "--name", "admin", "--role", "admin"))
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	h.addr = ln.Addr().String()
	ln.Close()

	var b [4]byte
	_, _ = rand.Read(b[:])
	home := t.TempDir()
	return &pipelineHarness{harness: h, t: t, id: hex.EncodeToString(b[:]), env: append(os.Environ(),
		"HOME="+home, "GIT_CONFIG_NOSYSTEM=1", "GIT_TERMINAL_PROMPT=0",
		"GIT_AUTHOR_NAME=Dev", "GIT_AUTHOR_EMAIL=dev@example.com",
		"GIT_COMMITTER_NAME=Dev", "GIT_COMMITTER_EMAIL=dev@example.com")}
}

func feedPaths(feeds ...string) []string {
	paths := make([]string, len(feeds))
	for i, f := range feeds {
		paths[i] = filepath.Join(servertest.Fixtures, f)
	}
	return paths
}

// pipelineDefinition is a pipeline over the hosted repository of its name
// whose policy allows no CRITICAL or HIGH finding, without a deploy stage;
// timeout "" is the default.
func pipelineDefinition(name, timeout string) string {
	approval := "approval:\n  policy:\n    thresholds: {CRITICAL: 0, HIGH: 0}\n"
	if timeout != "" {
		approval += "  timeout: " + timeout + "\n"
	}
	return fmt.Sprintf("name: %s\nsource: {repository: %s, branch: main}\nbuild: {repository: kill/%s}\n%s",
		name, name, name, approval)
}

// api calls the server's API with the admin token.
func (p *pipelineHarness) api(method, path string, body []byte, want int) []byte {
	p.t.Helper()
	req, err := http.NewRequest(method, "http://"+p.addr+path, bytes.NewReader(body))
	if err != nil {
		p.t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+p.token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		p.t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	if err != nil {
		p.t.Fatal(err)
	}
	if resp.StatusCode != want {
		p.t.Fatalf("%s %s: %d %s, want %d", method, path, resp.StatusCode, data, want)
	}
	return data
}

func (p *pipelineHarness) git(args ...string) string {
	p.t.Helper()
	cmd := exec.Command("git", args...)
	cmd.Dir, cmd.Env = p.work, p.env
	out, err := cmd.CombinedOutput()
	if err != nil {
		p.t.Fatalf("git %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return strings.TrimSpace(string(out))
}

func docker(t *testing.T, args ...string) string {
	t.Helper()
	out, err := exec.Command("docker", args...).CombinedOutput()
	if err != nil {
		t.Fatalf("docker %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return strings.TrimSpace(string(out))
}

// setUp creates the repository and the pipeline, and clones the repository.
func (p *pipelineHarness) setUp(name, definition string) {
	p.t.Helper()
	body, _ := json.Marshal(map[string]string{"name": name})
	p.api("POST", "/api/v1/repositories", body, http.StatusCreated)
	p.api("PUT", "/api/v1/pipelines/"+name, []byte(definition), http.StatusOK)
	p.work = filepath.Join(p.t.TempDir(), "clone")
	cmd := exec.Command("git", "clone", "--quiet", fmt.Sprintf("http://dev:%s@%s/git/%s.git", p.token, p.addr, name), p.work)
	cmd.Env = p.env
	if out, err := cmd.CombinedOutput(); err != nil {
		p.t.Fatalf("git clone: %v\n%s", err, out)
	}
}

// commit writes files, commits and pushes them, and returns the commit.
func (p *pipelineHarness) commit(msg string, files map[string]string) string {
	p.t.Helper()
	for name, body := range files {
		if err := os.WriteFile(filepath.Join(p.work, name), []byte(body), 0o644); err != nil {
			p.t.Fatal(err)
		}
	}
	p.git("add", "-A")
	p.git("commit", "--quiet", "-m", msg)
	p.git("push", "--quiet", "origin", "HEAD:main")
	return p.git("rev-parse", "HEAD")
}

// baseImage pushes a base image to the running server's registry: fakesh as
// /bin/sh, Debian bookworm's os-release and dpkgStatus as its package
// database. It and every image built on it are removed from the Docker
// Engine when the test ends.
func (p *pipelineHarness) baseImage(name, dpkgStatus string) string {
	p.t.Helper()
	img := imagetest.Build(p.t, imagetest.Layer(p.t,
		imagetest.Entry{Name: "bin/sh", Body: string(imagetest.FakeShell(p.t)), Mode: 0o755},
		imagetest.Entry{Name: "etc/os-release", Body: imagetest.ReadFixture(p.t, "debian", "os-release")},
		imagetest.Entry{Name: "var/lib/dpkg/status", Body: dpkgStatus},
		imagetest.Entry{Name: "etc/scangate-test-id", Body: p.id + "\n"}, // no other test's image
	))
	ref := fmt.Sprintf("%s/base/%s:%s", p.addr, name, p.id)
	r, err := gcrname.ParseReference(ref)
	if err != nil {
		p.t.Fatal(err)
	}
	if err := remote.Write(r, img, remote.WithAuth(&authn.Basic{Username: "test", Password: p.token})); err != nil {
		p.t.Fatalf("push %s: %v", ref, err)
	}
	id, err := img.ConfigName()
	if err != nil {
		p.t.Fatal(err)
	}
	p.t.Cleanup(func() { servertest.RemoveImageFamily(p.t, id.String()) })
	if p.baseIDs == nil {
		p.baseIDs = map[string]string{}
	}
	p.baseIDs[ref] = id.String()
	return ref
}

// runContainers lists the containers running on the base image: the
// legacy builder's RUN steps.
func (p *pipelineHarness) runContainers(base string) []string {
	p.t.Helper()
	if id, ok := p.baseIDs[base]; ok {
		base = id
	}
	return strings.Fields(docker(p.t, "ps", "--quiet", "--no-trunc", "--filter", "ancestor="+base))
}

// execution reads an execution from the API.
func (p *pipelineHarness) execution(id string) *pipeline.Execution {
	p.t.Helper()
	var ex pipeline.Execution
	if err := json.Unmarshal(p.api("GET", "/api/v1/executions/"+id, nil, http.StatusOK), &ex); err != nil {
		p.t.Fatal(err)
	}
	return &ex
}

// executionID waits for the push of commit to start an execution.
func (p *pipelineHarness) executionID(ctx context.Context, name, commit string) string {
	p.t.Helper()
	var id string
	waitFor(p.t, ctx, "the push's execution", func() (bool, error) {
		var list struct{ Executions []*pipeline.Execution }
		if err := json.Unmarshal(p.api("GET", "/api/v1/executions?pipeline="+name, nil, http.StatusOK), &list); err != nil {
			return false, err
		}
		for _, ex := range list.Executions {
			if ex.Commit == commit {
				id = ex.ID
			}
		}
		return id != "", nil
	})
	return id
}

// waitEnd waits for an execution to end, through the API.
func (p *pipelineHarness) waitEnd(ctx context.Context, id string) *pipeline.Execution {
	p.t.Helper()
	var ex *pipeline.Execution
	waitFor(p.t, ctx, "execution "+id+" to end", func() (bool, error) {
		ex = p.execution(id)
		if ex.Status == pipeline.StateInProgress {
			time.Sleep(50 * time.Millisecond)
			return false, nil
		}
		return true, nil
	})
	return ex
}

// waitAwaitingApproval waits for an execution's Approval Requested event
// and for an attempt of its image's scan to have failed (there is no
// vulnerability database) with another one left, and returns the image's
// digest.
func (p *pipelineHarness) waitAwaitingApproval(ctx context.Context, db *sql.DB, id string) string {
	p.t.Helper()
	var digest string
	waitFor(p.t, ctx, "Approval Requested", func() (bool, error) {
		err := db.QueryRow(`SELECT json_extract(doc, '$.detail.image-digest') FROM events
			WHERE detail_type = 'Approval Requested' AND json_extract(doc, '$.detail.execution-id') = $1`, id).Scan(&digest)
		if errors.Is(err, sql.ErrNoRows) {
			return false, nil
		}
		return err == nil, err
	})
	waitFor(p.t, ctx, "a failed attempt of the scan, with another left", func() (bool, error) {
		var state string
		var attempt int
		var failed bool
		err := db.QueryRow(`SELECT state, attempt, errors IS NOT NULL FROM river_job WHERE kind = 'scan_image' AND args->>'digest' = $1`, digest).
			Scan(&state, &attempt, &failed)
		if errors.Is(err, sql.ErrNoRows) {
			return false, nil
		}
		// River sets a retry due within seconds available at once, with
		// its time to run. The first retry comes a second after the first
		// attempt: on a loaded machine this test may see the job only
		// after the second attempt failed too, which changes nothing
		// below (a third attempt is left).
		return attempt >= 1 && failed && (state == "available" || state == "retryable"), err
	})
	return digest
}

// checkAwaiting checks, with the server killed, that the execution waits
// at its approval stage and that its image has no scan result.
func (p *pipelineHarness) checkAwaiting(db *sql.DB, id, digest string) {
	p.t.Helper()
	var ex, stage, approval string
	if err := db.QueryRow(`SELECT e.status, s.status, a.status FROM executions e JOIN stages s ON s.execution_id = e.id AND s.name = 'Approval'
		JOIN approvals a ON a.execution_id = e.id WHERE e.id = $1`, id).Scan(&ex, &stage, &approval); err != nil {
		p.t.Fatal(err)
	}
	var scans int
	if err := db.QueryRow(`SELECT count(*) FROM scans WHERE digest = $1`, digest).Scan(&scans); err != nil {
		p.t.Fatal(err)
	}
	if ex != pipeline.StateInProgress || stage != pipeline.StateInProgress || approval != pipeline.StatePending || scans != 0 || scanEvents(p.t, db, digest) != 0 {
		p.t.Fatalf("at the kill: execution %s, approval stage %s, request %s, %d scans; want it waiting for a scan", ex, stage, approval, scans)
	}
}

func stageOf(ex *pipeline.Execution, name string) string {
	for _, s := range ex.Stages {
		if s.Name == name {
			return s.Status
		}
	}
	return ""
}

// buildJob is the state and attempt of an execution's build job.
func buildJob(t *testing.T, db *sql.DB, executionID string) (string, int) {
	t.Helper()
	var state string
	var attempt int
	if err := db.QueryRow(`SELECT state, attempt FROM river_job WHERE kind = 'pipeline_build' AND args->>'execution_id' = $1`, executionID).Scan(&state, &attempt); err != nil {
		t.Fatal(err)
	}
	return state, attempt
}

func scanEvents(t *testing.T, db *sql.DB, digest string) int {
	t.Helper()
	var n int
	if err := db.QueryRow(`SELECT count(*) FROM events WHERE detail_type = 'Scan' AND json_extract(doc, '$.detail.image-digest') = $1`, digest).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

// checkDecidedOnce checks an execution's record in the event log and in
// the database: one Approval Requested, one final state of the Approval
// stage, one final state of the execution (final), one approval request,
// decided.
func checkDecidedOnce(t *testing.T, db *sql.DB, id, final string) {
	t.Helper()
	rows, err := db.Query(`SELECT detail_type, coalesce(json_extract(doc, '$.detail.stage'), ''), coalesce(json_extract(doc, '$.detail.state'), '')
		FROM events WHERE json_extract(doc, '$.detail.execution-id') = $1 ORDER BY seq`, id)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var requested int
	var approvalFinal, execFinal, log []string
	for rows.Next() {
		var typ, stage, state string
		if err := rows.Scan(&typ, &stage, &state); err != nil {
			t.Fatal(err)
		}
		log = append(log, strings.TrimSpace(typ+" "+stage+" "+state))
		switch {
		case typ == "Approval Requested":
			requested++
		case typ == "Stage State Change" && stage == pipeline.StageApproval && state != pipeline.StateInProgress:
			approvalFinal = append(approvalFinal, state)
		case typ == "Pipeline Execution State Change" && state != "STARTED":
			execFinal = append(execFinal, state)
		}
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	if requested != 1 || len(approvalFinal) != 1 || len(execFinal) != 1 || !strings.EqualFold(execFinal[0], final) {
		t.Errorf("execution %s: %d Approval Requested, final Approval stage states %v, final execution states %v; want 1, 1 and [%s]\nevents:\n%s",
			id, requested, approvalFinal, execFinal, strings.ToUpper(final), strings.Join(log, "\n"))
	}
	var requests, pending int
	if err := db.QueryRow(`SELECT count(*), count(*) FILTER (WHERE status = 'Pending') FROM approvals WHERE execution_id = $1`, id).Scan(&requests, &pending); err != nil {
		t.Fatal(err)
	}
	if requests != 1 || pending != 0 {
		t.Errorf("execution %s: %d approval requests, %d pending; want 1 decided", id, requests, pending)
	}
}

// checkNothingInProgress checks that no execution, stage or approval is
// left waiting.
func checkNothingInProgress(t *testing.T, db *sql.DB) {
	t.Helper()
	var executions, stages, approvals int
	if err := db.QueryRow(`SELECT (SELECT count(*) FROM executions WHERE status = 'InProgress'),
		(SELECT count(*) FROM stages WHERE status IN ('InProgress', 'Pending')),
		(SELECT count(*) FROM approvals WHERE status = 'Pending')`).Scan(&executions, &stages, &approvals); err != nil {
		t.Fatal(err)
	}
	if executions+stages+approvals != 0 {
		t.Errorf("left in progress: %d executions, %d stages, %d approvals", executions, stages, approvals)
	}
}

// noPipelineJobsWaiting reports whether no build or evaluation job and no
// event routing job waits or runs. (An approval's expiry job stays
// scheduled after its decision, and does nothing when it runs.)
func noPipelineJobsWaiting(db *sql.DB) (bool, error) {
	var n int
	err := db.QueryRow(`SELECT count(*) FROM river_job WHERE kind NOT IN ('pipeline_expire_approval', 'scan_image', 'reevaluate_images')
		AND state IN ('available', 'pending', 'retryable', 'running', 'scheduled')`).Scan(&n)
	return n == 0, err
}
