package server_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"database/sql"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	_ "modernc.org/sqlite" // the test reads the server's database

	"github.com/scangate/scangate/internal/imagetest"
	"github.com/scangate/scangate/internal/servertest"
)

// These tests run the scangate binary as a child process and kill it with
// SIGKILL, as the kernel's OOM killer or a power cut would: nothing of the
// server's own shutdown runs. Every wait polls against a deadline.

// TestKilledDuringPushBurst kills the server while several clients push
// distinct images, restarts it on the same data folder, lets the clients
// retry what failed, and checks that every pushed manifest ends with
// exactly one completed scan and one INITIAL_SCAN_COMPLETE event; pushing
// some manifests again then changes nothing.
func TestKilledDuringPushBurst(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and kills the scangate binary")
	}
	const images, pushers = 20, 4
	h := newHarness(t)
	srv := h.start(t)

	imgs := make([]v1.Image, images)
	digests := make([]string, images)
	base := imagetest.BookwormBase(t)
	for i := range imgs {
		imgs[i] = imagetest.Build(t, base, imagetest.Layer(t,
			imagetest.Entry{Name: "app/node_modules/lodash/package.json", Body: `{"name": "lodash", "version": "4.17.15"}`},
			imagetest.Entry{Name: "app/build-id", Body: fmt.Sprintf("build %d\n", i)},
		))
		d, err := imgs[i].Digest()
		if err != nil {
			t.Fatal(err)
		}
		digests[i] = d.String()
	}

	ctx, cancel := context.WithTimeout(context.Background(), 45*time.Second)
	defer cancel()
	var pushed, failed atomic.Int64
	work := make(chan int, images)
	for i := range images {
		work <- i
	}
	close(work)
	var wg sync.WaitGroup
	errs := make(chan error, images)
	for range pushers {
		wg.Go(func() {
			for i := range work {
				n, err := h.pushRetrying(ctx, fmt.Sprintf("burst/app%d:1", i%3), imgs[i])
				failed.Add(int64(n))
				if err != nil {
					errs <- err
					return
				}
				pushed.Add(1)
			}
		})
	}

	// Kill the server once a quarter of the pushes are through and the
	// others are on the wire, start it again at once on the same folder,
	// and do it again at half.
	for _, at := range []int64{images / 4, images / 2} {
		waitFor(t, ctx, "more pushes", func() (bool, error) { return pushed.Load() >= at, nil })
		srv.kill(t)
		t.Logf("killed the server after %d of %d pushes", pushed.Load(), images)
		srv = h.start(t)
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	t.Logf("%d push attempts failed and were retried", failed.Load())
	h.logRecovery(t)

	db := h.db(t)
	waitFor(t, ctx, "a scan result for every pushed image", func() (bool, error) {
		var n int
		err := db.QueryRow(`SELECT count(*) FROM scans`).Scan(&n)
		return n >= images, err
	})
	waitFor(t, ctx, "the scan jobs to finish", func() (bool, error) { return noJobsWaiting(db) })
	before := snapshot(t, db)
	checkOneScanEach(t, before, digests)

	// Duplicate notifications: the same manifests again, two of them twice
	// at once. The registry reports each push, and nothing else changes.
	// Each is a manifest PUT, as docker push sends whether or not the tag
	// already names the digest: ggcr's remote.Write would skip the PUT when
	// its HEAD finds the tag there, which the twin push may have just done.
	pushes0 := before.pushes
	var again sync.WaitGroup
	for _, i := range []int{0, 1, 2, 3, 3, 7, 7} {
		again.Go(func() {
			if err := h.putManifest(ctx, fmt.Sprintf("burst/app%d:1", i%3), imgs[i]); err != nil {
				t.Error(err)
			}
		})
	}
	again.Wait()
	waitFor(t, ctx, "the duplicate scan jobs to finish", func() (bool, error) { return noJobsWaiting(db) })
	after := snapshot(t, db)
	if got, want := after.pushes-pushes0, 7; got != want {
		t.Errorf("%d Image Push events for the 7 pushes again, want %d: the duplicates must reach the scanner", got, want)
	}
	if after.scans != before.scans {
		t.Errorf("scan results changed after duplicate pushes:\nbefore %s\nafter  %s", before.scans, after.scans)
	}
	if fmt.Sprint(after.scanEvents) != fmt.Sprint(before.scanEvents) {
		t.Errorf("Scan events changed after duplicate pushes:\nbefore %v\nafter  %v", before.scanEvents, after.scanEvents)
	}
	checkOneScanEach(t, after, digests)
	srv.stop(t)
}

// TestKilledScanResumes kills the server while a scan job runs: the job is
// left "running" in the database, and the next server runs it again at
// once instead of leaving it to River's stuck-job rescuer (an hour).
func TestKilledScanResumes(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and kills the scangate binary")
	}
	h := newHarness(t)
	h.serverArgs = []string{"--scan-concurrency", "1"}
	srv := h.start(t)
	db := h.db(t)
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Second)
	defer cancel()

	// An image whose scan takes a while: thousands of npm packages. If a
	// fast machine finishes it before the test sees it running, try a
	// bigger one.
	var digest string
	var jobID int64
	for files := 20000; ; files *= 2 {
		if files > 80000 {
			t.Fatal("every scan finished before the test saw it running")
		}
		img := manyPackages(t, files)
		d, err := img.Digest()
		if err != nil {
			t.Fatal(err)
		}
		if _, err := h.pushRetrying(ctx, fmt.Sprintf("slow/app:%d", files), img); err != nil {
			t.Fatal(err)
		}
		state := ""
		waitFor(t, ctx, "the scan job to start", func() (bool, error) {
			err := db.QueryRow(`SELECT id, state FROM river_job WHERE kind = 'scan_image' AND args->>'digest' = $1`, d.String()).Scan(&jobID, &state)
			if errors.Is(err, sql.ErrNoRows) {
				return false, nil
			}
			return state != "available", err
		})
		if state == "running" {
			digest = d.String()
			break
		}
		t.Logf("the scan of %d packages was %s before the test saw it run", files, state)
	}
	srv.kill(t)

	var state string
	var attempt int
	if err := db.QueryRow(`SELECT state, attempt FROM river_job WHERE id = $1`, jobID).Scan(&state, &attempt); err != nil {
		t.Fatal(err)
	}
	var results int
	if err := db.QueryRow(`SELECT count(*) FROM scans WHERE digest = $1`, digest).Scan(&results); err != nil {
		t.Fatal(err)
	}
	if state != "running" || attempt != 1 || results != 0 {
		t.Fatalf("after the kill: job %s, attempt %d, %d results; want a running first attempt and no result", state, attempt, results)
	}

	h.start(t)
	waitFor(t, ctx, "the killed scan to run again and finish", func() (bool, error) {
		err := db.QueryRow(`SELECT state, attempt FROM river_job WHERE id = $1`, jobID).Scan(&state, &attempt)
		return state == "completed", err
	})
	if attempt != 2 {
		t.Errorf("the scan job finished at attempt %d, want 2", attempt)
	}
	s := snapshot(t, db)
	checkOneScanEach(t, s, []string{digest})
	// Nothing stays running: the event routing jobs finish too.
	waitFor(t, ctx, "no job left running", func() (bool, error) {
		var running int
		err := db.QueryRow(`SELECT count(*) FROM river_job WHERE state = 'running'`).Scan(&running)
		return running == 0, err
	})
}

// manyPackages is Debian's base layer with files npm packages on top.
func manyPackages(t *testing.T, files int) v1.Image {
	entries := make([]imagetest.Entry, files)
	for i := range entries {
		entries[i] = imagetest.Entry{
			Name: fmt.Sprintf("app/node_modules/pkg-%d/package.json", i),
			Body: fmt.Sprintf(`{"name": "pkg-%d", "version": "1.0.%d"}`, i, i%7),
		}
	}
	return imagetest.Build(t, imagetest.BookwormBase(t), imagetest.Layer(t, entries...))
}

// harness is a data folder with fixture feeds and a pusher token, and the
// address the servers started on it listen on.
type harness struct {
	bin, dir, addr, token string
	serverArgs            []string
	starts                int
}

func newHarness(t *testing.T) *harness {
	h := &harness{bin: scangateBinary(t), dir: t.TempDir()}
	feeds := servertest.Fixtures
	h.run(t, "db", "import", filepath.Join(feeds, "debian"), filepath.Join(feeds, "ghsa"))
	h.token = strings.TrimSpace(h.run(t, "token", "create", "--name", "ci", "--role", "pusher"))
	// One port for every server of the test, as a CI job's registry
	// address stays the same across restarts.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	h.addr = ln.Addr().String()
	ln.Close()
	return h
}

// run runs a scangate command on the harness's data folder.
func (h *harness) run(t *testing.T, args ...string) string {
	t.Helper()
	cmd := exec.Command(h.bin, append([]string{"--data-dir", h.dir}, args...)...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("scangate %s: %v\n%s", strings.Join(args, " "), err, stderr.String())
	}
	return stdout.String()
}

// logRecovery logs what the servers' logs say they recovered at start.
func (h *harness) logRecovery(t *testing.T) {
	t.Helper()
	for i := 2; i <= h.starts; i++ {
		data, err := os.ReadFile(filepath.Join(h.dir, fmt.Sprintf("server-%d.log", i)))
		if err != nil {
			t.Fatal(err)
		}
		for _, line := range strings.Split(string(data), "\n") {
			if strings.Contains(line, "queued again") || strings.Contains(line, "without a scan") {
				t.Logf("server %d: %s", i, line)
			}
		}
	}
}

// db opens the server's database to read, as a second process may.
func (h *harness) db(t *testing.T) *sql.DB {
	t.Helper()
	db, err := sql.Open("sqlite", "file:"+filepath.Join(h.dir, "scangate.db")+"?_pragma=busy_timeout(10000)&_pragma=query_only(ON)")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

// server is a running scangate server process.
type server struct {
	cmd  *exec.Cmd
	log  string
	done chan struct{}
	err  error
}

// start starts a server on the harness's folder and address, and waits
// until it is ready.
func (h *harness) start(t *testing.T) *server {
	t.Helper()
	h.starts++
	s := &server{log: filepath.Join(h.dir, fmt.Sprintf("server-%d.log", h.starts)), done: make(chan struct{})}
	logf, err := os.Create(s.log)
	if err != nil {
		t.Fatal(err)
	}
	defer logf.Close()
	args := append([]string{"--data-dir", h.dir, "server", "--addr", h.addr, "--shutdown-timeout", "5s"}, h.serverArgs...)
	s.cmd = exec.Command(h.bin, args...)
	s.cmd.Stdout, s.cmd.Stderr = logf, logf
	if err := s.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { s.err = s.cmd.Wait(); close(s.done) }()
	t.Cleanup(func() {
		s.kill(t)
		if t.Failed() {
			data, _ := os.ReadFile(s.log)
			t.Logf("server %s log:\n%s", filepath.Base(s.log), data)
		}
	})
	deadline := time.Now().Add(30 * time.Second)
	for {
		select {
		case <-s.done:
			data, _ := os.ReadFile(s.log)
			t.Fatalf("the server exited at start (%v):\n%s", s.err, data)
		default:
		}
		resp, err := http.Get("http://" + h.addr + "/readyz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return s
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("the server was not ready within 30 s (last: %v)", err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// kill sends SIGKILL and waits for the process to be gone.
func (s *server) kill(t *testing.T) {
	t.Helper()
	select {
	case <-s.done:
		return
	default:
	}
	if err := s.cmd.Process.Signal(syscall.SIGKILL); err != nil && !errors.Is(err, os.ErrProcessDone) {
		t.Fatal(err)
	}
	<-s.done
}

// stop sends SIGTERM and expects a clean exit.
func (s *server) stop(t *testing.T) {
	t.Helper()
	if err := s.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case <-s.done:
		if s.err != nil {
			t.Errorf("the server exited with %v after SIGTERM", s.err)
		}
	case <-time.After(20 * time.Second):
		t.Error("the server did not stop within 20 s of SIGTERM")
	}
}

// pushRetrying pushes img as ref until it succeeds, as a CI job retrying a
// failed push would, and returns how many attempts failed.
func (h *harness) pushRetrying(ctx context.Context, ref string, img v1.Image) (int, error) {
	r, err := name.ParseReference(h.addr+"/"+ref, name.Insecure)
	if err != nil {
		return 0, err
	}
	failures := 0
	for {
		err := remote.Write(r, img,
			remote.WithContext(ctx),
			remote.WithAuth(&authn.Basic{Username: "ci", Password: h.token}),
			// The test retries whole pushes itself; ggcr's own retries
			// would wait seconds for a server that is starting again.
			remote.WithRetryBackoff(remote.Backoff{Duration: 10 * time.Millisecond, Factor: 1, Steps: 1}),
			remote.WithTransport(&http.Transport{DisableKeepAlives: false, MaxIdleConnsPerHost: 8}))
		if err == nil {
			return failures, nil
		}
		failures++
		select {
		case <-ctx.Done():
			return failures, fmt.Errorf("push %s: gave up after %d attempts: %w", ref, failures, err)
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// putManifest sends img's manifest as ref, whose blobs the registry has.
func (h *harness) putManifest(ctx context.Context, ref string, img v1.Image) error {
	r, err := name.ParseReference(h.addr+"/"+ref, name.Insecure)
	if err != nil {
		return err
	}
	return remote.Put(r, img, remote.WithContext(ctx), remote.WithAuth(&authn.Basic{Username: "ci", Password: h.token}))
}

// state is what the tests check of the server's database.
type state struct {
	scans      string         // every scan row, as text
	scanEvents map[string]int // Scan events by "digest status"
	pushes     int            // Image Push events
	rows       map[string]string
}

func snapshot(t *testing.T, db *sql.DB) state {
	t.Helper()
	s := state{scanEvents: map[string]int{}, rows: map[string]string{}}
	rows, err := db.Query(`SELECT repository, digest, status, error, scanned_at, first_scanned_at, vulndb_digest, report
		FROM scans ORDER BY repository, digest`)
	if err != nil {
		t.Fatal(err)
	}
	var b strings.Builder
	for rows.Next() {
		var repo, digest, status, errText, scanned, first, vdb, report string
		if err := rows.Scan(&repo, &digest, &status, &errText, &scanned, &first, &vdb, &report); err != nil {
			t.Fatal(err)
		}
		line := fmt.Sprintf("%s@%s %s %q scanned %s first %s db %s report %x", repo, digest, status, errText, scanned, first, vdb, sha256.Sum256([]byte(report)))
		if _, dup := s.rows[digest]; dup {
			s.rows[digest] += " AND " + line
		} else {
			s.rows[digest] = line
		}
		b.WriteString(line + "\n")
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	rows.Close()
	s.scans = b.String()

	rows, err = db.Query(`SELECT detail_type, coalesce(json_extract(doc, '$.detail.image-digest'), ''),
		coalesce(json_extract(doc, '$.detail.scan-status'), '') FROM events`)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	for rows.Next() {
		var typ, digest, status string
		if err := rows.Scan(&typ, &digest, &status); err != nil {
			t.Fatal(err)
		}
		switch typ {
		case "Image Push":
			s.pushes++
		case "Scan":
			s.scanEvents[digest+" "+status]++
		}
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return s
}

// checkOneScanEach checks that each digest has one completed scan and one
// INITIAL_SCAN_COMPLETE event, and that there is nothing else.
func checkOneScanEach(t *testing.T, s state, digests []string) {
	t.Helper()
	for _, d := range digests {
		row := s.rows[d]
		if !strings.Contains(row, " COMPLETE ") || strings.Contains(row, " AND ") {
			t.Errorf("%s: scan rows %q, want exactly one COMPLETE", d, row)
		}
		if n := s.scanEvents[d+" INITIAL_SCAN_COMPLETE"]; n != 1 {
			t.Errorf("%s: %d INITIAL_SCAN_COMPLETE events, want 1", d, n)
		}
	}
	if len(s.rows) != len(digests) {
		t.Errorf("%d images have scan results, want %d", len(s.rows), len(digests))
	}
	total := 0
	for _, n := range s.scanEvents {
		total += n
	}
	if total != len(digests) {
		t.Errorf("%d Scan events, want %d: %v", total, len(digests), s.scanEvents)
	}
}

// noJobsWaiting reports whether no scan or re-evaluation job waits or runs.
func noJobsWaiting(db *sql.DB) (bool, error) {
	var n int
	err := db.QueryRow(`SELECT count(*) FROM river_job WHERE kind IN ('scan_image', 'reevaluate_images')
		AND state IN ('available', 'pending', 'retryable', 'running', 'scheduled')`).Scan(&n)
	return n == 0, err
}

// waitFor polls cond until it holds, failing the test at ctx's deadline.
func waitFor(t *testing.T, ctx context.Context, what string, cond func() (bool, error)) {
	t.Helper()
	for {
		ok, err := cond()
		if err != nil {
			t.Fatalf("waiting for %s: %v", what, err)
		}
		if ok {
			return
		}
		select {
		case <-ctx.Done():
			t.Fatalf("gave up waiting for %s", what)
		case <-time.After(5 * time.Millisecond):
		}
	}
}

var (
	buildOnce sync.Once
	binary    string
	buildErr  error
)

// scangateBinary builds cmd/scangate once for the package's tests, into a
// folder TestMain removes.
func scangateBinary(t *testing.T) string {
	t.Helper()
	buildOnce.Do(func() {
		goCmd, err := exec.LookPath("go")
		if err != nil {
			goCmd = filepath.Join(runtime.GOROOT(), "bin", "go")
		}
		binary = filepath.Join(binDir, "scangate")
		out, err := exec.Command(goCmd, "build", "-o", binary, "github.com/scangate/scangate/cmd/scangate").CombinedOutput()
		if err != nil {
			buildErr = fmt.Errorf("go build: %v\n%s", err, out)
		}
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return binary
}

var binDir string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "scangate-server-test-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	binDir = dir
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}
