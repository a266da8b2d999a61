package registry_test

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/scangate/scangate/internal/auth"
	"github.com/scangate/scangate/internal/events"
	"github.com/scangate/scangate/internal/imagetest"
	"github.com/scangate/scangate/internal/server"
	"github.com/scangate/scangate/internal/servertest"
)

// dockerCLI runs the docker CLI with a configuration folder of its own, so
// that logging in neither reads nor changes the user's credentials.
type dockerCLI struct {
	t      *testing.T
	config string
}

// newDocker fails, rather than skips, the test when Docker is missing: the
// registry's point is that Docker can use it.
func newDocker(t *testing.T) *dockerCLI {
	t.Helper()
	if _, err := exec.LookPath("docker"); err != nil {
		t.Fatalf("the docker CLI is needed: %v", err)
	}
	d := &dockerCLI{t: t, config: t.TempDir()}
	if out, err := d.run("version", "--format", "{{.Server.Version}}"); err != nil {
		t.Fatalf("the Docker Engine is needed: docker version: %v\n%s", err, out)
	}
	return d
}

func (d *dockerCLI) run(args ...string) (string, error) {
	return d.runIn("", args...)
}

func (d *dockerCLI) runIn(stdin string, args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "docker", append([]string{"--config", d.config}, args...)...)
	cmd.Stdin = strings.NewReader(stdin)
	out, err := cmd.CombinedOutput()
	return string(out), err
}

func (d *dockerCLI) must(args ...string) string {
	d.t.Helper()
	out, err := d.run(args...)
	if err != nil {
		d.t.Fatalf("docker %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return out
}

// The Docker Engine logs in with a pusher token, pushes an image, and
// pulls it back after removing it; a reader token cannot push.
func TestDockerLoginPushPull(t *testing.T) {
	d := newDocker(t)
	s := servertest.Start(t, servertest.Options{Feeds: []string{}})
	pusher := token(t, s.Store, auth.RolePusher)
	reader := token(t, s.Store, auth.RoleReader)

	run := fmt.Sprintf("%d-%d", os.Getpid(), time.Now().UnixNano())
	local := "scangate-registry-test:" + run
	repo := "scangate-test/docker-" + run
	remoteRef := s.Addr + "/" + repo + ":v1"
	t.Cleanup(func() {
		// Whatever the test got to, the images it made go.
		for _, ref := range []string{local, remoteRef} {
			_, _ = d.run("rmi", "--force", ref)
		}
	})

	img := imagetest.Build(t,
		imagetest.Layer(t, imagetest.Entry{Name: "etc/os-release", Body: "ID=scangate-test\n"}),
		imagetest.Layer(t, imagetest.Entry{Name: "app/run-id", Body: run}),
	)
	archive := imagetest.WriteDockerArchive(t, filepath.Join(t.TempDir(), "image.tar"), local, img)
	d.must("load", "--input", archive)
	d.must("tag", local, remoteRef)

	// A wrong token does not log in.
	if out, err := d.runIn("sgt_not-a-token\n", "login", s.Addr, "--username", "ci", "--password-stdin"); err == nil {
		t.Fatalf("docker login with a wrong token succeeded:\n%s", out)
	}

	// A reader logs in and cannot push.
	if out, err := d.runIn(reader+"\n", "login", s.Addr, "--username", "ci", "--password-stdin"); err != nil {
		t.Fatalf("docker login as reader: %v\n%s", err, out)
	}
	if out, err := d.run("push", remoteRef); err == nil {
		t.Fatalf("docker push as reader succeeded:\n%s", out)
	} else if !strings.Contains(strings.ToLower(out), "denied") {
		t.Errorf("docker push as reader: want a denial, got:\n%s", out)
	}

	// A pusher logs in and pushes.
	if out, err := d.runIn(pusher+"\n", "login", s.Addr, "--username", "ci", "--password-stdin"); err != nil {
		t.Fatalf("docker login as pusher: %v\n%s", err, out)
	}
	out := d.must("push", remoteRef)
	ref := s.Ref(t, repo+":v1")
	desc, err := remote.Head(ref, remote.WithAuth(s.Auth()))
	if err != nil {
		t.Fatalf("the pushed image is not in the registry: %v", err)
	}
	if !strings.Contains(out, desc.Digest.String()) {
		t.Errorf("docker push reported no digest %s:\n%s", desc.Digest, out)
	}
	// The push was recorded: its Image Push event is in the log.
	waitPushEvent(t, s, s.Addr+"/"+repo+"@"+desc.Digest.String())

	// Remove it locally and pull it back.
	d.must("rmi", local, remoteRef)
	if _, err := d.run("image", "inspect", remoteRef); err == nil {
		t.Fatalf("%s is still there after docker rmi", remoteRef)
	}
	d.must("pull", remoteRef)
	var inspect []struct {
		RepoDigests []string
	}
	if err := json.Unmarshal([]byte(d.must("image", "inspect", remoteRef)), &inspect); err != nil || len(inspect) != 1 {
		t.Fatalf("docker image inspect: %v", err)
	}
	want := s.Addr + "/" + repo + "@" + desc.Digest.String()
	if !slices.Contains(inspect[0].RepoDigests, want) {
		t.Errorf("pulled image's digests %v, want %s", inspect[0].RepoDigests, want)
	}
	// The pulled image is the one built: same layers, same config.
	cfg, err := img.ConfigName()
	if err != nil {
		t.Fatal(err)
	}
	if id := strings.TrimSpace(d.must("image", "inspect", "--format", "{{.Id}}", remoteRef)); id != cfg.String() && id != desc.Digest.String() {
		t.Errorf("pulled image id %s, want the config digest %s", id, cfg)
	}
	d.must("logout", s.Addr)
}

// waitPushEvent waits for the Image Push event of resource (host/repo@digest).
func waitPushEvent(t *testing.T, s *servertest.Server, resource string) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		log, err := events.ListLog(context.Background(), s.Store, 0, 1000)
		if err != nil {
			t.Fatal(err)
		}
		for _, l := range log {
			if l.Event.DetailType == events.DetailTypeImagePush && slices.Contains(l.Event.Resources, resource) {
				return
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("no Image Push event for %s", resource)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// With anonymous pulls on, the Docker Engine pulls with no login (the
// registry's challenge is then Bearer, through its token endpoint, which
// Docker answers without credentials), cannot push without one, and logs
// in and pushes with a pusher token as before.
func TestDockerAnonymousPull(t *testing.T) {
	d := newDocker(t)
	s := servertest.Start(t, servertest.Options{Feeds: []string{}, Config: server.Config{AnonymousPull: true}})
	pusher := token(t, s.Store, auth.RolePusher)

	run := fmt.Sprintf("%d-%d", os.Getpid(), time.Now().UnixNano())
	repo := "scangate-test/anon-" + run
	pulled, pushed := s.Addr+"/"+repo+":v1", s.Addr+"/"+repo+":v2"
	t.Cleanup(func() {
		for _, ref := range []string{pulled, pushed} {
			_, _ = d.run("rmi", "--force", ref)
		}
	})
	img := imagetest.Build(t, imagetest.Layer(t, imagetest.Entry{Name: "app/run-id", Body: run}))
	s.Push(t, repo+":v1", img) // go-containerregistry with a token: the Bearer flow with Basic credentials

	d.must("pull", pulled)
	d.must("tag", pulled, pushed)
	if out, err := d.run("push", pushed); err == nil {
		t.Fatalf("docker push with no login succeeded:\n%s", out)
	} else if !strings.Contains(strings.ToLower(out), "unauthorized") && !strings.Contains(strings.ToLower(out), "denied") {
		t.Errorf("docker push with no login: want it refused, got:\n%s", out)
	}
	if out, err := d.runIn("sgt_not-a-token\n", "login", s.Addr, "--username", "ci", "--password-stdin"); err == nil {
		t.Fatalf("docker login with a wrong token succeeded:\n%s", out)
	}
	if out, err := d.runIn(pusher+"\n", "login", s.Addr, "--username", "ci", "--password-stdin"); err != nil {
		t.Fatalf("docker login as pusher: %v\n%s", err, out)
	}
	d.must("push", pushed)
	if _, err := remote.Head(s.Ref(t, repo+":v2"), remote.WithAuth(s.Auth())); err != nil {
		t.Fatalf("the image docker pushed is not in the registry: %v", err)
	}
}
