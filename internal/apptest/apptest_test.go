package apptest_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/scangate/scangate/internal/apptest"
	"github.com/scangate/scangate/internal/logbuf"
	"github.com/scangate/scangate/internal/registry/registrytest"
)

// The program runs here as a process of the test (it is built for
// linux/amd64, as these tests are run); the engine tests run it in
// containers.

// app is a running app process.
type app struct {
	cmd  *exec.Cmd
	out  *logbuf.Buffer
	addr string
	done chan error
}

func program(t *testing.T) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "app")
	if err := os.WriteFile(path, apptest.Binary(t), 0o755); err != nil {
		t.Fatal(err)
	}
	return path
}

func freePort(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return fmt.Sprint(ln.Addr().(*net.TCPAddr).Port)
}

// start runs the app with env and waits until it listens.
func start(t *testing.T, env ...string) *app {
	t.Helper()
	port := freePort(t)
	a := &app{out: &logbuf.Buffer{}, addr: "127.0.0.1:" + port, done: make(chan error, 1)}
	a.cmd = exec.Command(program(t))
	a.cmd.Env = append([]string{"PORT=" + port}, env...)
	a.cmd.Stdout, a.cmd.Stderr = a.out, a.out
	// The program was just written; a parallel test's fork can still hold
	// its descriptor for a moment (ETXTBSY, golang.org/issue/22315).
	for tries := 0; ; tries++ {
		err := a.cmd.Start()
		if err == nil {
			break
		}
		if !errors.Is(err, syscall.ETXTBSY) || tries == 50 {
			t.Fatal(err)
		}
		time.Sleep(20 * time.Millisecond)
		a.cmd = exec.Command(a.cmd.Path)
		a.cmd.Env = append([]string{"PORT=" + port}, env...)
		a.cmd.Stdout, a.cmd.Stderr = a.out, a.out
	}
	go func() { a.done <- a.cmd.Wait() }()
	t.Cleanup(func() {
		a.cmd.Process.Kill()
		<-a.done
	})
	deadline := time.Now().Add(10 * time.Second)
	for !strings.Contains(a.out.String(), "listening on") {
		select {
		case err := <-a.done:
			a.done <- err
			t.Fatalf("the app exited before listening (%v):\n%s", err, a.out)
		case <-time.After(20 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatalf("the app did not listen in 10 s:\n%s", a.out)
		}
	}
	return a
}

// wait waits for the app to exit and returns its exit code.
func (a *app) wait(t *testing.T) int {
	t.Helper()
	select {
	case err := <-a.done:
		a.done <- err
		return a.cmd.ProcessState.ExitCode()
	case <-time.After(15 * time.Second):
		t.Fatalf("the app did not exit in 15 s:\n%s", a.out)
		return -1
	}
}

// waitLog waits until the app's output holds want.
func (a *app) waitLog(t *testing.T, want string) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !strings.Contains(a.out.String(), want) {
		if time.Now().After(deadline) {
			t.Fatalf("the log lacks %q after 5 s:\n%s", want, a.out)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func get(t *testing.T, url string) (int, string) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(body)
}

func TestServe(t *testing.T) {
	t.Parallel()
	a := start(t, "MESSAGE=hello, tests")
	if code, body := get(t, "http://"+a.addr+"/"); code != 200 || body != "hello, tests\n" {
		t.Errorf("GET / = %d %q", code, body)
	}
	if code, body := get(t, "http://"+a.addr+"/health"); code != 200 || body != "ok\n" {
		t.Errorf("GET /health = %d %q", code, body)
	}
	if code, _ := get(t, "http://"+a.addr+"/nothing"); code != 404 {
		t.Errorf("GET /nothing = %d", code)
	}
	// A request's line is written once it is answered.
	a.waitLog(t, "app: GET /nothing 404\n")
	for _, want := range []string{"app: listening on [::]:", "app: GET / 200\n", "app: GET /health 200\n"} {
		if !strings.Contains(a.out.String(), want) {
			t.Errorf("the log lacks %q:\n%s", want, a.out)
		}
	}
}

func TestUnhealthyAndProbe(t *testing.T) {
	t.Parallel()
	bin := program(t)
	healthy := start(t)
	sick := start(t, "UNHEALTHY=1")
	if code, _ := get(t, "http://"+sick.addr+"/health"); code != 500 {
		t.Errorf("GET /health with UNHEALTHY=1 = %d", code)
	}
	for _, c := range []struct {
		url  string
		code int
		out  string
	}{
		{"http://" + healthy.addr + "/health", 0, "200 OK ok"},
		{"http://" + sick.addr + "/health", 1, "500 Internal Server Error unhealthy (UNHEALTHY=1)"},
		{"http://127.0.0.1:1/health", 1, "connection refused"},
	} {
		out, err := exec.Command(bin, "probe", c.url).CombinedOutput()
		code := 0
		if err != nil {
			code = err.(*exec.ExitError).ExitCode()
		}
		if code != c.code || !strings.Contains(string(out), c.out) {
			t.Errorf("probe %s: exit %d %q, want %d and %q", c.url, code, out, c.code, c.out)
		}
	}
}

func TestExitAfter(t *testing.T) {
	t.Parallel()
	t.Run("at once", func(t *testing.T) {
		t.Parallel()
		cmd := exec.Command(program(t))
		cmd.Env = []string{"EXIT_AFTER=0s", "EXIT_CODE=3"}
		var stdout, stderr bytes.Buffer
		cmd.Stdout, cmd.Stderr = &stdout, &stderr
		err := cmd.Run()
		if cmd.ProcessState == nil || cmd.ProcessState.ExitCode() != 3 {
			t.Fatalf("exit: %v, want code 3", err)
		}
		if !strings.Contains(stdout.String(), "started") || !strings.Contains(stderr.String(), "exiting with code 3") {
			t.Errorf("stdout %q, stderr %q", stdout.String(), stderr.String())
		}
	})
	t.Run("later", func(t *testing.T) {
		t.Parallel()
		a := start(t, "EXIT_AFTER=300ms", "EXIT_CODE=4")
		if code := a.wait(t); code != 4 {
			t.Errorf("exit code %d, want 4", code)
		}
	})
}

// TestGracefulStop sends SIGTERM while a request is in flight: the
// request is answered, then the app exits 0.
func TestGracefulStop(t *testing.T) {
	t.Parallel()
	a := start(t)
	answered := make(chan string, 1)
	go func() {
		resp, err := http.Get("http://" + a.addr + "/sleep?d=700ms")
		if err != nil {
			answered <- err.Error()
			return
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		answered <- string(body)
	}()
	time.Sleep(200 * time.Millisecond)
	if err := a.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if body := <-answered; body != "slept 700ms\n" {
		t.Errorf("the request in flight got %q", body)
	}
	if code := a.wait(t); code != 0 {
		t.Errorf("exit code %d after SIGTERM, want 0:\n%s", code, a.out)
	}
	a.waitLog(t, "app: stopped gracefully\n")
}

func TestAlloc(t *testing.T) {
	t.Parallel()
	a := start(t, "ALLOC_MIB=32")
	if !strings.Contains(a.out.String(), "allocating 32 MiB") {
		t.Errorf("log:\n%s", a.out)
	}
}

func TestImageAndPush(t *testing.T) {
	t.Parallel()
	img := apptest.Image(t)
	cf, err := img.ConfigFile()
	if err != nil {
		t.Fatal(err)
	}
	if ep := cf.Config.Entrypoint; len(ep) != 1 || ep[0] != "/app" {
		t.Errorf("entrypoint %q", ep)
	}
	if _, ok := cf.Config.ExposedPorts["8080/tcp"]; !ok || cf.OS != "linux" || cf.Architecture != "amd64" {
		t.Errorf("config %+v", cf)
	}
	d1, _ := img.Digest()
	d2, _ := apptest.Image(t).Digest()
	if d1 != d2 {
		t.Errorf("two images of one program: %s and %s", d1, d2)
	}

	_, base, token := registrytest.Start(t, nil)
	addr := strings.TrimPrefix(base, "http://")
	ref := apptest.Push(t, addr, "apptest/app", token)
	if want := addr + "/apptest/app@" + d1.String(); ref != want {
		t.Errorf("Push = %s, want %s", ref, want)
	}
	r, err := name.ParseReference(ref, name.Insecure)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := remote.Head(r, remote.WithAuth(&authn.Basic{Username: "apptest", Password: token}), remote.WithContext(context.Background())); err != nil {
		t.Errorf("the pushed image: %v", err)
	}
}
