package build_test

import (
	"archive/tar"
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/moby/moby/client"

	"github.com/scangate/scangate/internal/auth"
	"github.com/scangate/scangate/internal/build"
	"github.com/scangate/scangate/internal/imagetest"
	"github.com/scangate/scangate/internal/logbuf"
	"github.com/scangate/scangate/internal/servertest"
)

// These tests need a Docker Engine (DOCKER_HOST, else the default socket)
// and fail without one. Base images are made here: /bin/sh in them is
// imagetest's fakesh.

// fixture is a Docker Engine with a base image loaded, a scangate server,
// and a build.Builder that pushes to it.
type fixture struct {
	docker  *client.Client
	srv     *servertest.Server
	builder *build.Builder
	base    string // the base image in the registry, REGISTRY/NAME:1
	pinned  string // the base image by digest, as builds name it
}

func newFixture(t *testing.T) *fixture {
	t.Helper()
	docker := dockerClient(t)
	id := unique(t)
	srv := servertest.Start(t, servertest.Options{Feeds: []string{}})
	name := "buildtest/base-" + id
	dgst := srv.Push(t, name+":1", baseImage(t, id))
	f := &fixture{docker: docker, srv: srv, builder: newBuilder(t, srv, build.Options{}),
		base: srv.Addr + "/" + name + ":1", pinned: srv.Addr + "/" + name + "@" + dgst}
	f.pull(t, f.pinned)
	return f
}

// pull pulls ref into the daemon with the server's admin token, and
// removes it and every image built on it when the test ends.
func (f *fixture) pull(t *testing.T, ref string) {
	t.Helper()
	auth, err := json.Marshal(map[string]string{"username": "builder", "password": f.srv.Token})
	if err != nil {
		t.Fatal(err)
	}
	resp, err := f.docker.ImagePull(context.Background(), ref, client.ImagePullOptions{RegistryAuth: base64.URLEncoding.EncodeToString(auth)})
	if err != nil {
		t.Fatalf("pull %s: %v", ref, err)
	}
	out, err := io.ReadAll(resp)
	resp.Close()
	if err != nil || bytes.Contains(out, []byte(`"error"`)) {
		t.Fatalf("pull %s: %v %s", ref, err, out)
	}
	removeFamily(t, f.docker, ref)
}

func dockerClient(t *testing.T) *client.Client {
	t.Helper()
	docker, err := client.New(client.FromEnv)
	if err != nil {
		t.Fatalf("docker client: %v", err)
	}
	t.Cleanup(func() { docker.Close() })
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := docker.Ping(ctx, client.PingOptions{NegotiateAPIVersion: true}); err != nil {
		t.Fatalf("these tests need a Docker Engine: %v", err)
	}
	return docker
}

// newBuilder returns a build.Builder for srv's registry with its admin token,
// opts' other settings taken as they are.
func newBuilder(t *testing.T, srv *servertest.Server, opts build.Options) *build.Builder {
	t.Helper()
	opts.Registry = srv.Addr
	if opts.Username == "" && opts.Password == "" {
		opts.Username, opts.Password = "builder", srv.Token
	}
	b, err := build.New(opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.Close() })
	return b
}

// baseImage is a base image with /bin/sh; motd makes it unique, so that
// removing it removes no other test's image.
func baseImage(t *testing.T, motd string) v1.Image {
	t.Helper()
	return imagetest.Build(t, imagetest.Layer(t,
		imagetest.Entry{Name: "bin/sh", Body: string(imagetest.FakeShell(t)), Mode: 0o755},
		imagetest.Entry{Name: "etc/motd", Body: motd + "\n"},
	))
}

// loadImage loads img into the daemon as tag, and removes it and every
// image built on it when the test ends.
func loadImage(t *testing.T, docker *client.Client, tag string, img v1.Image) {
	t.Helper()
	ctx := context.Background()
	path := imagetest.WriteDockerArchive(t, filepath.Join(t.TempDir(), "base.tar"), tag, img)
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	resp, err := docker.ImageLoad(ctx, f, client.ImageLoadWithQuiet(true))
	if err != nil {
		t.Fatalf("loading %s: %v", tag, err)
	}
	defer resp.Close()
	out, err := io.ReadAll(resp)
	if err != nil || bytes.Contains(out, []byte(`"error"`)) {
		t.Fatalf("loading %s: %v %s", tag, err, out)
	}
	removeFamily(t, docker, tag)
}

// removeFamily removes ref and the images built on it (build cache
// included) from the engine when the test ends.
func removeFamily(t *testing.T, docker *client.Client, ref string) {
	t.Helper()
	in, err := docker.ImageInspect(context.Background(), ref)
	if err != nil {
		t.Fatalf("inspecting %s: %v", ref, err)
	}
	t.Cleanup(func() { servertest.RemoveImageFamily(t, in.ID) })
}

func unique(t *testing.T) string {
	t.Helper()
	b := make([]byte, 5)
	rand.Read(b)
	return hex.EncodeToString(b)
}

// contextTar is a build context of files, as `git archive` writes one.
func contextTar(t *testing.T, files map[string]string) io.Reader {
	t.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	names := make([]string, 0, len(files))
	for name := range files {
		names = append(names, name)
	}
	slices.Sort(names)
	for _, name := range names {
		body := files[name]
		if err := tw.WriteHeader(&tar.Header{Name: name, Mode: 0o644, Size: int64(len(body)), Typeflag: tar.TypeReg, ModTime: time.Unix(1700000000, 0)}); err != nil {
			t.Fatal(err)
		}
		io.WriteString(tw, body)
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	return &buf
}

func TestBuildAndPush(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()

	version, err := f.builder.Ping(ctx)
	if err != nil {
		t.Fatal(err)
	}
	ping, err := f.docker.Ping(ctx, client.PingOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if version != ping.APIVersion && version != client.MaxAPIVersion {
		t.Errorf("negotiated API version %s with a daemon at %s", version, ping.APIVersion)
	}
	t.Logf("Docker Engine API %s, negotiated %s", ping.APIVersion, version)

	repo := "buildtest/" + unique(t) + "/api"
	sha := "3f2a9c0d1e4b5a6978877665544332211f0e0d0c"
	var log logbuf.Buffer
	res, err := f.builder.Build(ctx, build.Request{
		Context: contextTar(t, map[string]string{
			"Dockerfile": "FROM " + f.base + "\nARG GREETING=unset\nCOPY app.txt /app/\nRUN echo greeting=$GREETING\nLABEL greeting=$GREETING\n",
			"app.txt":    "hello from the app\n",
		}),
		BuildArgs:  map[string]string{"GREETING": "hello"},
		Repository: repo,
		Tags:       []string{sha, "latest"},
		Container:  "api",
		Log:        &log,
	})
	if err != nil {
		t.Fatalf("build: %v\nlog:\n%s", err, log.String())
	}

	if !regexp.MustCompile(`^sha256:[0-9a-f]{64}$`).MatchString(res.Digest) {
		t.Errorf("digest %q", res.Digest)
	}
	if want := f.srv.Addr + "/" + repo + "@" + res.Digest; res.ImageURI != want {
		t.Errorf("image URI %q, want %q", res.ImageURI, want)
	}
	var defs []map[string]string
	if err := json.Unmarshal(res.ImageDefinitions, &defs); err != nil {
		t.Fatalf("imagedefinitions.json %s: %v", res.ImageDefinitions, err)
	}
	if len(defs) != 1 || len(defs[0]) != 2 || defs[0]["name"] != "api" || defs[0]["imageUri"] != res.ImageURI {
		t.Errorf("imagedefinitions.json = %s", res.ImageDefinitions)
	}
	for _, tag := range []string{sha, "latest"} {
		desc, err := remote.Head(f.srv.Ref(t, repo+":"+tag), remote.WithAuth(f.srv.Auth()))
		if err != nil {
			t.Fatalf("registry HEAD %s:%s: %v", repo, tag, err)
		}
		if desc.Digest.String() != res.Digest {
			t.Errorf("registry serves %s:%s as %s, build said %s", repo, tag, desc.Digest, res.Digest)
		}
	}
	checkImage(t, f, repo+"@"+res.Digest)

	got := log.String()
	for _, want := range []string{
		"base: " + f.base + " -> " + f.pinned + "\n",
		"Step 1/5 : FROM " + f.pinned + "\n",
		"Step 3/5 : COPY app.txt /app/\n",
		"Step 4/5 : RUN echo greeting=$GREETING\n",
		"\ngreeting=hello\n",
		"Successfully built ",
		"The push refers to repository [" + f.srv.Addr + "/" + repo + "]\n",
		"latest: digest: " + res.Digest,
		sha + ": digest: " + res.Digest,
	} {
		if !strings.Contains(got, want) {
			t.Errorf("log lacks %q:\n%s", want, got)
		}
	}
	for _, ref := range res.Tags {
		if _, err := f.docker.ImageInspect(ctx, ref); err == nil {
			t.Errorf("local tag %s left in the daemon", ref)
		}
	}
}

// checkImage checks the pushed image's label and the file COPY added.
func checkImage(t *testing.T, f *fixture, ref string) {
	t.Helper()
	img, err := remote.Image(f.srv.Ref(t, ref), remote.WithAuth(f.srv.Auth()))
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := img.ConfigFile()
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Config.Labels["greeting"] != "hello" {
		t.Errorf("label greeting = %q, want the build arg's hello", cfg.Config.Labels["greeting"])
	}
	layers, err := img.Layers()
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range layers {
		rc, err := l.Uncompressed()
		if err != nil {
			t.Fatal(err)
		}
		tr := tar.NewReader(rc)
		for {
			h, err := tr.Next()
			if err != nil {
				break
			}
			if h.Name == "app/app.txt" {
				body, _ := io.ReadAll(tr)
				rc.Close()
				if string(body) != "hello from the app\n" {
					t.Errorf("app/app.txt = %q", body)
				}
				return
			}
		}
		rc.Close()
	}
	t.Error("no layer holds app/app.txt")
}

func TestBuildFailures(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()

	t.Run("failing RUN", func(t *testing.T) {
		repo := "buildtest/" + unique(t)
		_, err := f.builder.Build(ctx, build.Request{
			Context: contextTar(t, map[string]string{
				"Dockerfile": "FROM " + f.base + "\nRUN echo about to fail && exit 3\n",
			}),
			Repository: repo, Tags: []string{"latest"},
		})
		var e *build.Error
		if !errors.As(err, &e) {
			t.Fatalf("err = %v, want an *build.Error", err)
		}
		if e.Op != "build" || e.Repository != repo || !strings.Contains(e.Message, "returned a non-zero code: 3") {
			t.Errorf("error %+v", e)
		}
		if !slices.Contains(e.Tail, "about to fail") || !strings.Contains(err.Error(), "lines of the log:\n  base: "+f.base) {
			t.Errorf("the error lacks the log's tail:\n%v", err)
		}
		if _, err := remote.Head(f.srv.Ref(t, repo+":latest"), remote.WithAuth(f.srv.Auth())); err == nil {
			t.Error("a failed build was pushed")
		}
	})

	t.Run("unknown base image", func(t *testing.T) {
		missing := f.srv.Addr + "/buildtest/missing-" + unique(t) + ":1"
		_, err := f.builder.Build(ctx, build.Request{
			Context:    contextTar(t, map[string]string{"Dockerfile": "FROM " + missing + "\n"}),
			Repository: "buildtest/" + unique(t), Tags: []string{"latest"},
		})
		if err == nil || !strings.Contains(err.Error(), missing) {
			t.Errorf("err = %v, want one naming %s", err, missing)
		}
	})

	t.Run("base image from the registry", func(t *testing.T) {
		id := unique(t)
		base := "buildtest/base-" + id
		dgst := f.srv.Push(t, base+":1", baseImage(t, id))
		res, err := f.builder.Build(ctx, build.Request{
			Context:    contextTar(t, map[string]string{"Dockerfile": "FROM " + f.srv.Addr + "/" + base + ":1\nRUN echo pulled\n"}),
			Repository: "buildtest/" + unique(t), Tags: []string{"v1"},
		})
		if err == nil {
			removeFamily(t, f.docker, f.srv.Addr+"/"+base+"@"+dgst)
		}
		if err != nil || res.Digest == "" {
			t.Fatalf("build FROM the registry: %v", err)
		}
	})

	t.Run("missing Dockerfile", func(t *testing.T) {
		_, err := f.builder.Build(ctx, build.Request{
			Context:    contextTar(t, map[string]string{"app.txt": "x"}),
			Repository: "buildtest/" + unique(t), Tags: []string{"latest"},
		})
		if err == nil || !strings.Contains(err.Error(), "Dockerfile") {
			t.Errorf("err = %v, want one about the missing Dockerfile", err)
		}
		t.Log(err)
	})

	t.Run("push refused", func(t *testing.T) {
		// A reader may pull the base, not push.
		reader, _, err := auth.NewTokens(f.srv.Store).Create(ctx, "reader-"+unique(t), auth.RoleReader)
		if err != nil {
			t.Fatal(err)
		}
		b := newBuilder(t, f.srv, build.Options{Username: "builder", Password: reader})
		repo := "buildtest/" + unique(t)
		var log logbuf.Buffer
		res, err := b.Build(ctx, build.Request{
			Context:    contextTar(t, map[string]string{"Dockerfile": "FROM " + f.base + "\nLABEL x=y\n"}),
			Repository: repo, Tags: []string{"latest"}, Log: &log,
		})
		if err == nil || !strings.HasPrefix(err.Error(), "push "+repo+": ") {
			t.Fatalf("err = %v, want a failed push", err)
		}
		t.Log(err)
		ref := f.srv.Addr + "/" + repo + ":latest"
		if _, err := f.docker.ImageInspect(ctx, ref); err == nil {
			t.Errorf("local tag %s left after a failed push", ref)
		}
		_ = res
	})
}

func TestBuildStops(t *testing.T) {
	f := newFixture(t)
	sleeper := map[string]string{"Dockerfile": "FROM " + f.base + "\nRUN echo sleeping && sleep 60\n"}

	t.Run("cancel", func(t *testing.T) {
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		log := &watchLog{want: "sleeping\n", seen: make(chan struct{})}
		done := make(chan error, 1)
		start := time.Now()
		go func() {
			_, err := f.builder.Build(ctx, build.Request{Context: contextTar(t, sleeper), Repository: "buildtest/" + unique(t), Tags: []string{"latest"}, Log: log})
			done <- err
		}()
		select {
		case <-log.seen:
		case err := <-done:
			t.Fatalf("build ended before it slept: %v", err)
		case <-time.After(30 * time.Second):
			t.Fatal("the RUN step did not start in 30 s")
		}
		cancel()
		var err error
		select {
		case err = <-done:
		case <-time.After(15 * time.Second):
			t.Fatal("Build did not return 15 s after its context was canceled")
		}
		if !errors.Is(err, context.Canceled) || time.Since(start) > 30*time.Second {
			t.Fatalf("err = %v after %s, want context.Canceled", err, time.Since(start))
		}
		waitContainerGone(t, f.docker, log.String())
	})

	t.Run("timeout", func(t *testing.T) {
		b := newBuilder(t, f.srv, build.Options{Timeout: 3 * time.Second})
		var log logbuf.Buffer
		start := time.Now()
		_, err := b.Build(context.Background(), build.Request{Context: contextTar(t, sleeper), Repository: "buildtest/" + unique(t), Tags: []string{"latest"}, Log: &log})
		if !errors.Is(err, context.DeadlineExceeded) || !strings.Contains(err.Error(), "timed out after 3s") {
			t.Fatalf("err = %v, want a timeout", err)
		}
		if time.Since(start) > 15*time.Second {
			t.Errorf("a 3 s timeout stopped the build after %s", time.Since(start))
		}
		if !strings.Contains(err.Error(), "sleeping") {
			t.Errorf("the timeout's error lacks the log's tail: %v", err)
		}
		waitContainerGone(t, f.docker, log.String())
	})
}

// watchLog is a log that says when it has seen a string.
type watchLog struct {
	logbuf.Buffer
	want string
	seen chan struct{}
	once sync.Once
}

func (w *watchLog) Write(p []byte) (int, error) {
	n, err := w.Buffer.Write(p)
	if strings.Contains(w.String(), w.want) {
		w.once.Do(func() { close(w.seen) })
	}
	return n, err
}

// waitContainerGone waits until the build step container the log names is
// stopped or removed.
func waitContainerGone(t *testing.T, docker *client.Client, log string) {
	t.Helper()
	m := regexp.MustCompile(`Running in ([0-9a-f]{12})`).FindAllStringSubmatch(log, -1)
	if m == nil {
		t.Fatalf("no step container in the log:\n%s", log)
	}
	id := m[len(m)-1][1]
	deadline := time.Now().Add(20 * time.Second)
	for {
		c, err := docker.ContainerInspect(context.Background(), id, client.ContainerInspectOptions{})
		if err != nil || c.Container.State == nil || !c.Container.State.Running {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("step container %s still running 20 s after the build stopped", id)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// TestBuildSameRepositoryConcurrently builds three images of one
// repository at once, all tagged latest: each push must be of its own
// image, which the per-repository push lock ensures.
func TestBuildSameRepositoryConcurrently(t *testing.T) {
	f := newFixture(t)
	repo := "buildtest/" + unique(t)
	var wg sync.WaitGroup
	results := make([]build.Result, 3)
	errs := make([]error, 3)
	for i := range results {
		wg.Go(func() {
			results[i], errs[i] = f.builder.Build(context.Background(), build.Request{
				Context: contextTar(t, map[string]string{
					"Dockerfile": fmt.Sprintf("FROM %s\nLABEL build=%d\n", f.base, i),
				}),
				Repository: repo, Tags: []string{fmt.Sprintf("commit%d", i), "latest"},
			})
		})
	}
	wg.Wait()
	seen := map[string]bool{}
	for i, res := range results {
		if errs[i] != nil {
			t.Fatalf("build %d: %v", i, errs[i])
		}
		desc, err := remote.Head(f.srv.Ref(t, fmt.Sprintf("%s:commit%d", repo, i)), remote.WithAuth(f.srv.Auth()))
		if err != nil {
			t.Fatal(err)
		}
		if desc.Digest.String() != res.Digest {
			t.Errorf("build %d: registry has %s, build said %s", i, desc.Digest, res.Digest)
		}
		seen[res.Digest] = true
	}
	if len(seen) != 3 {
		t.Errorf("three different builds gave %d digests", len(seen))
	}
}

func TestBuildEngineUnavailable(t *testing.T) {
	t.Setenv("DOCKER_HOST", "unix://"+filepath.Join(t.TempDir(), "no-docker.sock"))
	b, err := build.New(build.Options{Registry: "127.0.0.1:5000"})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	if _, err := b.Ping(context.Background()); !errors.Is(err, build.ErrUnavailable) {
		t.Errorf("Ping: %v, want build.ErrUnavailable", err)
	}
	_, err = b.Build(context.Background(), build.Request{Context: strings.NewReader(""), Repository: "shop/api", Tags: []string{"latest"}})
	if !errors.Is(err, build.ErrUnavailable) {
		t.Errorf("Build: %v, want build.ErrUnavailable", err)
	}
	t.Log(err)
}
