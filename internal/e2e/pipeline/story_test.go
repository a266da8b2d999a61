package pipeline_test

import (
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/scangate/scangate/internal/imagetest"
	"github.com/scangate/scangate/internal/pipeline"
	"github.com/scangate/scangate/internal/servertest"
)

// story is the seed's story on real parts: a hosted repository, a pipeline,
// builds on the Docker Engine, scans of what they push, and the gate.
type story struct {
	t    *testing.T
	s    *servertest.Server
	work string // the clone
	id   string // unique per run, for repositories and image names
	env  []string
}

func newStory(t *testing.T, feeds ...string) *story {
	t.Helper()
	return newStoryWith(t, servertest.Options{Feeds: feeds})
}

// newStoryWith starts the story's server with opts. The story's git
// commands run with an environment of their own rather than the process's,
// so that stories can run in parallel.
func newStoryWith(t *testing.T, opts servertest.Options) *story {
	t.Helper()
	if _, err := exec.LookPath("docker"); err != nil {
		t.Fatal("these tests need a Docker Engine and its CLI (docker): ", err)
	}
	var b [4]byte
	_, _ = rand.Read(b[:])
	st := &story{t: t, id: hex.EncodeToString(b[:])}
	st.s = servertest.Start(t, opts)
	st.env = append(os.Environ(), "HOME="+t.TempDir(), "GIT_CONFIG_NOSYSTEM=1",
		"GIT_AUTHOR_NAME=Dev", "GIT_AUTHOR_EMAIL=dev@example.com",
		"GIT_COMMITTER_NAME=Dev", "GIT_COMMITTER_EMAIL=dev@example.com", "GIT_TERMINAL_PROMPT=0")
	return st
}

// loadBase pushes an image made from layers to the server's registry as a
// base image, and returns its reference. A file of the test's id makes it
// the test's own: the engine's copy, removed when the test ends, is no
// other test's base.
func (st *story) loadBase(name string, layers ...imagetest.Entry) string {
	st.t.Helper()
	layers = append(layers, imagetest.Entry{Name: "etc/scangate-test-id", Body: st.id + "\n"})
	return st.s.PushBase(st.t, fmt.Sprintf("base/%s:%s", name, st.id), imagetest.Build(st.t, imagetest.Layer(st.t, layers...)))
}

func (st *story) docker(args ...string) string {
	st.t.Helper()
	out, err := exec.Command("docker", args...).CombinedOutput()
	if err != nil {
		st.t.Fatalf("docker %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return string(out)
}

func (st *story) git(args ...string) string {
	st.t.Helper()
	return st.gitIn(st.work, args...)
}

// gitIn runs git in dir.
func (st *story) gitIn(dir string, args ...string) string {
	st.t.Helper()
	cmd := exec.Command("git", args...)
	cmd.Dir = dir
	cmd.Env = st.env
	out, err := cmd.CombinedOutput()
	if err != nil {
		st.t.Fatalf("git %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return strings.TrimSpace(string(out))
}

func (st *story) api(method, path string, body any, want int) []byte {
	st.t.Helper()
	status, data := st.s.API(st.t, method, path, body)
	if status != want {
		st.t.Fatalf("%s %s: %d %s, want %d", method, path, status, data, want)
	}
	return data
}

// setUp creates the repository and the pipeline, and clones the repository.
func (st *story) setUp(repo, definition string) {
	st.t.Helper()
	st.api("POST", "/api/v1/repositories", map[string]string{"name": repo}, http.StatusCreated)
	st.api("PUT", "/api/v1/pipelines/"+repo, []byte(definition), http.StatusOK)
	st.work = st.clone(repo)
}

// clone clones a hosted repository into a new folder, and returns it.
func (st *story) clone(repo string) string {
	st.t.Helper()
	dir := filepath.Join(st.t.TempDir(), "clone")
	cmd := exec.Command("git", "clone", "--quiet", st.repoURL(repo), dir)
	cmd.Env = st.env
	if out, err := cmd.CombinedOutput(); err != nil {
		st.t.Fatalf("git clone: %v\n%s", err, out)
	}
	return dir
}

// repoURL is a hosted repository's URL with the admin token in it.
func (st *story) repoURL(repo string) string {
	return fmt.Sprintf("http://dev:%s@%s/git/%s.git", st.s.Token, st.s.Addr, repo)
}

// commit writes files, commits and pushes them, and returns the commit.
func (st *story) commit(msg string, files map[string]string) string {
	st.t.Helper()
	return st.commitIn(st.work, msg, files)
}

// commitIn writes files in the clone dir, commits and pushes them, and
// returns the commit.
func (st *story) commitIn(dir, msg string, files map[string]string) string {
	st.t.Helper()
	for name, body := range files {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(body), 0o644); err != nil {
			st.t.Fatal(err)
		}
	}
	st.gitIn(dir, "add", "-A")
	st.gitIn(dir, "commit", "--quiet", "--allow-empty", "-m", msg)
	st.gitIn(dir, "push", "--quiet", "origin", "HEAD:main")
	return st.gitIn(dir, "rev-parse", "HEAD")
}

// waitEnd waits for the pipeline's execution of commit to end.
func (st *story) waitEnd(pipelineName, commit string, timeout time.Duration) *pipeline.Execution {
	st.t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		var list struct{ Executions []*pipeline.Execution }
		if err := json.Unmarshal(st.api("GET", "/api/v1/executions?pipeline="+pipelineName, nil, http.StatusOK), &list); err != nil {
			st.t.Fatal(err)
		}
		for _, ex := range list.Executions {
			if ex.Commit == commit && ex.Status != pipeline.StateInProgress {
				var full pipeline.Execution
				if err := json.Unmarshal(st.api("GET", "/api/v1/executions/"+ex.ID, nil, http.StatusOK), &full); err != nil {
					st.t.Fatal(err)
				}
				return &full
			}
		}
		if time.Now().After(deadline) {
			st.t.Fatalf("no execution of %.12s ended within %s: %+v", commit, timeout, list.Executions)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func definition(name, repository string) string {
	return fmt.Sprintf(`name: %s
source: {repository: %s, branch: main}
build: {repository: %s}
approval:
  policy:
    thresholds: {CRITICAL: 0, HIGH: 0}
`, name, name, repository)
}

// The seed's story: an image with CRITICAL findings is rejected with its
// reasons; a second commit on a fixed base is approved, with its artifact.
func TestSeedStory(t *testing.T) {
	t.Parallel()
	st := newStory(t, "debian", "ghsa", "nvd")
	osRelease := imagetest.ReadFixture(t, "debian", "os-release")
	vulnerable := st.loadBase("bookworm",
		imagetest.Entry{Name: "etc/os-release", Body: osRelease},
		imagetest.Entry{Name: "var/lib/dpkg/status", Body: imagetest.ReadFixture(t, "debian", "dpkg-status")})
	fixed := st.loadBase("bookworm-slim",
		imagetest.Entry{Name: "etc/os-release", Body: osRelease},
		imagetest.Entry{Name: "var/lib/dpkg/status", Body: ""})

	repo := "shop-" + st.id
	st.setUp(repo, definition(repo, "shop/"+repo))

	first := st.commit("first", map[string]string{
		"Dockerfile": "FROM " + vulnerable + "\nCOPY app.txt /app/app.txt\n",
		"app.txt":    "hello\n",
	})
	ex := st.waitEnd(repo, first, 2*time.Minute)
	if ex.Status != pipeline.StateFailed || ex.Approval == nil || ex.Approval.Status != pipeline.StateRejected {
		t.Fatalf("first commit: %s, approval %+v; want Failed and Rejected", ex.Status, ex.Approval)
	}
	a := ex.Approval
	if a.DecidedBy != pipeline.Evaluator || !strings.HasPrefix(a.Summary, "Rejected: CRITICAL") || !strings.Contains(strings.Join(a.Reasons, "\n"), "zlib1g CVE-2023-45853") {
		t.Errorf("rejection: %s by %s\n%s", a.Summary, a.DecidedBy, strings.Join(a.Reasons, "\n"))
	}
	if ex.ImageDigest == "" || a.ImageDigest != ex.ImageDigest {
		t.Errorf("the approval answers %s, the build pushed %s", a.ImageDigest, ex.ImageDigest)
	}
	stages := map[string]string{}
	for _, s := range ex.Stages {
		stages[s.Name] = s.Status
	}
	if stages["Source"] != "Succeeded" || stages["Build"] != "Succeeded" || stages["Approval"] != "Failed" || stages["Deploy"] != "Skipped" {
		t.Errorf("stages %v", stages)
	}

	second := st.commit("use the fixed base", map[string]string{
		"Dockerfile": "FROM " + fixed + "\nCOPY app.txt /app/app.txt\n",
	})
	ex = st.waitEnd(repo, second, 2*time.Minute)
	if ex.Status != pipeline.StateSucceeded || ex.Approval == nil || ex.Approval.Status != pipeline.StateApproved {
		t.Fatalf("second commit: %s (%s), approval %+v; want Succeeded and Approved", ex.Status, ex.Reason, ex.Approval)
	}
	var defs []struct{ Name, ImageURI string }
	if err := json.Unmarshal(st.api("GET", "/api/v1/executions/"+ex.ID+"/artifact", nil, http.StatusOK), &defs); err != nil {
		t.Fatal(err)
	}
	if len(defs) != 1 || defs[0].Name != repo || defs[0].ImageURI != ex.ImageURI || !strings.Contains(ex.ImageURI, "@"+ex.ImageDigest) {
		t.Errorf("imagedefinitions.json %+v, image %s", defs, ex.ImageURI)
	}
	if log := string(st.api("GET", "/api/v1/executions/"+ex.ID+"/log", nil, http.StatusOK)); !strings.Contains(log, "COPY app.txt") {
		t.Errorf("build log:\n%s", log)
	}
}
