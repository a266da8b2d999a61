// Package apptest is a runnable image for tests of what runs containers
// (the engine runtimes, the deploy controller, end-to-end tests and
// benchmarks): testdata/app, a small static HTTP server whose behaviour is
// set by environment variables (see its doc comment: PORT, MESSAGE,
// EXIT_AFTER, EXIT_CODE, UNHEALTHY, ALLOC_MIB), with a probe mode for
// health checks, since its image has nothing else in it.
//
// The program is built for linux/amd64 with CGO_ENABLED=0 the first time a
// test process asks for it, with the go command of the test's environment,
// from inside the module (any package folder will do).
package apptest

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"testing"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/moby/moby/client"

	"github.com/scangate/scangate/internal/imagetest"
)

// Port is the port the app listens on unless PORT says otherwise.
const Port = 8080

// Path is the app's path in Image.
const Path = "/app"

// pkg is the app's import path; the go command builds it from anywhere in
// the module, testdata or not.
const pkg = "github.com/scangate/scangate/internal/apptest/testdata/app"

var binary = sync.OnceValues(func() ([]byte, error) {
	dir, err := os.MkdirTemp("", "scangate-apptest-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(dir)
	out := filepath.Join(dir, "app")
	cmd := exec.Command("go", "build", "-trimpath", "-ldflags=-s -w", "-o", out, pkg)
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOOS=linux", "GOARCH=amd64")
	if msg, err := cmd.CombinedOutput(); err != nil {
		return nil, fmt.Errorf("building %s: %v\n%s", pkg, err, msg)
	}
	return os.ReadFile(out)
})

// Binary is the app, a static linux/amd64 executable, built once per
// process.
func Binary(t imagetest.T) []byte {
	t.Helper()
	b, err := binary()
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// Image is the app's image: one layer holding /app, with /app as its
// entrypoint and Port exposed. The same program gives the same image (and
// digest) every time.
func Image(t imagetest.T) v1.Image {
	t.Helper()
	img := imagetest.Build(t, imagetest.Layer(t, imagetest.Entry{Name: Path[1:], Body: string(Binary(t)), Mode: 0o755}))
	cf, err := img.ConfigFile()
	if err != nil {
		t.Fatal(err)
	}
	cf = cf.DeepCopy()
	cf.Config.Entrypoint = []string{Path}
	cf.Config.ExposedPorts = map[string]struct{}{fmt.Sprintf("%d/tcp", Port): {}}
	img, err = mutate.ConfigFile(img, cf)
	if err != nil {
		t.Fatal(err)
	}
	return img
}

// Push pushes Image to the registry at registryHost (host:port; plain
// HTTP is allowed) as repo:latest, with basic auth of any user name and
// token as the password (scangate's scheme; "" pushes anonymously). It
// returns the image by digest: registryHost/repo@sha256:….
func Push(t imagetest.T, registryHost, repo, token string) string {
	t.Helper()
	ref, err := name.ParseReference(registryHost+"/"+repo+":latest", name.Insecure)
	if err != nil {
		t.Fatal(err)
	}
	auth := authn.Anonymous
	if token != "" {
		auth = &authn.Basic{Username: "apptest", Password: token}
	}
	img := Image(t)
	if err := remote.Write(ref, img, remote.WithAuth(auth)); err != nil {
		t.Fatalf("pushing the app to %s: %v", ref, err)
	}
	d, err := img.Digest()
	if err != nil {
		t.Fatal(err)
	}
	return ref.Context().Name() + "@" + d.String()
}

// Load loads Image into the Docker Engine as tag (repo:tag), as `docker
// load` does, and removes that tag when the test ends.
func Load(t testing.TB, docker *client.Client, tag string) {
	t.Helper()
	ctx := context.Background()
	path := imagetest.WriteDockerArchive(t, filepath.Join(t.TempDir(), "app.tar"), tag, Image(t))
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	resp, err := docker.ImageLoad(ctx, f, client.ImageLoadWithQuiet(true))
	if err != nil {
		t.Fatalf("loading the app as %s: %v", tag, err)
	}
	defer resp.Close()
	out, err := io.ReadAll(resp)
	if err != nil || bytes.Contains(out, []byte(`"error"`)) {
		t.Fatalf("loading the app as %s: %v %s", tag, err, out)
	}
	t.Cleanup(func() {
		if _, err := docker.ImageRemove(context.Background(), tag, client.ImageRemoveOptions{}); err != nil {
			t.Logf("removing %s: %v", tag, err)
		}
	})
}

// Probe is a health check command (Docker's form) that passes when a GET
// of url answers 2xx, e.g. Probe("http://127.0.0.1:8080/health").
func Probe(url string) []string {
	return []string{"CMD", Path, "probe", url}
}

// HealthURL is the app's own health URL inside its container, on Port.
const HealthURL = "http://127.0.0.1:8080/health"
