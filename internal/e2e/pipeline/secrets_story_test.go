package pipeline_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/scangate/scangate/internal/auth"
	"github.com/scangate/scangate/internal/imagetest"
	"github.com/scangate/scangate/internal/logbuf"
	"github.com/scangate/scangate/internal/pipeline"
	"github.com/scangate/scangate/internal/server"
	"github.com/scangate/scangate/internal/servertest"
)

// shellBase loads a base image whose /bin/sh is imagetest.FakeShell,
// so that a Dockerfile's RUN steps run.
func (st *story) shellBase() string {
	st.t.Helper()
	sh := imagetest.FakeShell(st.t)
	return st.loadBase("shell",
		imagetest.Entry{Name: "bin/sh", Body: string(sh), Mode: 0o755},
		imagetest.Entry{Name: "etc/os-release", Body: imagetest.ReadFixture(st.t, "debian", "os-release")},
		imagetest.Entry{Name: "var/lib/dpkg/status", Body: ""})
}

// A pipeline on an external repository whose URL holds a token, with a
// push webhook secret and a secret build arg that a RUN step prints: the
// build gets the arg (its log says it printed something) but the log, as
// a reader reads it, shows xxxxx; no version of the definition, no file of
// the database or the keys, and no line of the server's log (at debug
// level) holds a secret; readers see no build arg values, admins see the
// plain args but never a secret.
func TestPipelineSecretsStaySealed(t *testing.T) {
	t.Parallel()
	logs := &logbuf.Buffer{}
	st := newStoryWith(t, servertest.Options{Feeds: []string{}, Config: server.Config{
		Logger: slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug})),
	}})
	base := st.shellBase()
	upstream, name := "upstream-"+st.id, "sealed-"+st.id
	st.api("POST", "/api/v1/repositories", map[string]string{"name": upstream}, http.StatusCreated)
	dir := st.clone(upstream)
	commit := st.commitIn(dir, "first", map[string]string{
		"Dockerfile": "FROM " + base + "\nARG NPM_TOKEN\nARG GREETING\nRUN echo token=$NPM_TOKEN greeting=$GREETING\nCOPY app.txt /app/app.txt\n",
		"app.txt":    "hello\n",
	})
	npm, hook := "npm-s3cret-"+st.id, "hook-s3cret-"+st.id
	def := func(npm string) []byte {
		return []byte(fmt.Sprintf(`name: %s
source: {url: '%s', branch: main, webhook-secret: %s}
build:
  repository: apps/%s
  args: {GREETING: hello-plain}
  secret-args: {NPM_TOKEN: %s}
approval:
  policy:
    thresholds: {CRITICAL: 0, HIGH: 0}
`, name, st.repoURL(upstream), hook, name, npm))
	}
	st.api("PUT", "/api/v1/pipelines/"+name, def(npm), http.StatusOK)
	id := st.start(name, commit)
	ex := st.waitFor(id, "built", 90*time.Second, func(ex *pipeline.Execution) bool { return ex.Approval != nil || ended(ex) })
	if s := stages(ex); s["Build"] != pipeline.StateSucceeded {
		t.Fatalf("build: %v (%s)", s, ex.Reason)
	}
	st.api("PUT", "/api/v1/pipelines/"+name, def("npm-s3cret2-"+st.id), http.StatusOK)

	viewer, _, err := auth.NewTokens(st.s.Store).Create(context.Background(), "viewer-"+st.id, auth.RoleReader)
	if err != nil {
		t.Fatal(err)
	}
	read := func(token, path string) []byte {
		t.Helper()
		status, body := st.s.APIAs(t, token, http.MethodGet, path, nil)
		if status != http.StatusOK {
			t.Fatalf("%s: %d %s", path, status, body)
		}
		return body
	}
	buildLog := string(read(viewer, "/api/v1/executions/"+id+"/log"))
	if !strings.Contains(buildLog, "token=xxxxx greeting=hello-plain") {
		t.Errorf("the build log does not show the RUN step with its secret hidden:\n%s", buildLog)
	}
	var forReader, forAdmin pipeline.Definition
	if err := json.Unmarshal(read(viewer, "/api/v1/pipelines/"+name), &forReader); err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(read(st.s.Token, "/api/v1/pipelines/"+name), &forAdmin); err != nil {
		t.Fatal(err)
	}
	if forReader.Build.Args["GREETING"] != "xxxxx" || forReader.Build.SecretArgs["NPM_TOKEN"] != "xxxxx" || forReader.Source.WebhookSecret != "xxxxx" {
		t.Errorf("a reader sees build %+v, webhook secret %q", forReader.Build, forReader.Source.WebhookSecret)
	}
	if forAdmin.Build.Args["GREETING"] != "hello-plain" || forAdmin.Build.SecretArgs["NPM_TOKEN"] != "xxxxx" || forAdmin.Version != 2 {
		t.Errorf("an admin sees version %d, build %+v", forAdmin.Version, forAdmin.Build)
	}

	secrets := []string{npm, "npm-s3cret2-" + st.id, hook, st.s.Token}
	for _, path := range []string{"/api/v1/pipelines", "/api/v1/pipelines/" + name, "/api/v1/executions/" + id, "/api/v1/executions/" + id + "/log", "/api/v1/events?limit=1000"} {
		body := read(viewer, path)
		for _, s := range secrets {
			if bytes.Contains(body, []byte(s)) {
				t.Errorf("a reader's %s holds a secret", path)
			}
		}
	}
	for _, s := range secrets {
		if strings.Contains(logs.String(), s) {
			t.Errorf("the server's log holds the secret %.12s…", s)
		}
	}
	// The registry is left out: Docker's classic builder records the
	// values of the args a RUN step used in the image's history (see
	// BuildSpec.SecretArgs).
	for _, f := range servertest.FilesHolding(t, st.s.DataDir, []string{"registry"}, secrets...) {
		t.Errorf("%s in the clear", f)
	}
}

// A default server refuses a pipeline whose external source is on the
// cloud metadata address or on loopback, with the reason, when it is put.
func TestDefaultServerRefusesInternalSources(t *testing.T) {
	t.Parallel()
	s := servertest.Start(t, servertest.Options{Feeds: []string{}, StrictEgress: true})
	for url, kind := range map[string]string{
		"http://169.254.169.254/latest/meta-data.git":  "cloud metadata",
		"http://ci:tok3n@127.0.0.1:" + "9/git/lib.git": "loopback",
		"https://localhost/git/lib.git":                "loopback",
	} {
		status, body := s.API(t, http.MethodPut, "/api/v1/pipelines/internal", []byte(gate("internal", "{url: '"+url+"', branch: main}", "apps/internal")))
		if status != http.StatusBadRequest || !strings.Contains(string(body), kind) || strings.Contains(string(body), "tok3n") {
			t.Errorf("put a source at %s: %d %s, want 400 naming the %s address and not the token", url, status, body, kind)
		}
	}
}
