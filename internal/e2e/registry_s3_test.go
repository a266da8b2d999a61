package e2e

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/scangate/scangate/internal/imagetest"
	"github.com/scangate/scangate/internal/s3test"
	"github.com/scangate/scangate/internal/server"
	"github.com/scangate/scangate/internal/servertest"
)

// A server whose registry is an S3 bucket (versitygw): docker push stores
// the image there, go-containerregistry pulls it back whole, the scan on
// push reads the layers through the storage driver, and /readyz answers
// ready, then not ready once the bucket's server is gone.
func TestRegistryOnS3(t *testing.T) {
	if _, err := exec.LookPath("docker"); err != nil {
		t.Fatal("this test needs a Docker Engine and its CLI (docker): ", err)
	}
	gw := s3test.Start(t)
	storage := gw.Storage(t, gw.Bucket(t), "registry")
	s := servertest.Start(t, servertest.Options{Config: server.Config{
		RegistryStorage: storage, RegistrySecret: "e2e-registry-secret-0123456789",
	}})
	if _, err := os.Stat(filepath.Join(s.DataDir, "registry")); err == nil {
		t.Errorf("the data folder has a registry folder although the registry is on S3")
	}

	run := fmt.Sprintf("%d-%d", os.Getpid(), time.Now().UnixNano())
	local := "scangate-s3-test:" + run
	repo := "s3test/app-" + run
	remoteRef := s.Addr + "/" + repo + ":v1"
	config := t.TempDir()
	docker := func(stdin string, args ...string) string {
		t.Helper()
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		defer cancel()
		cmd := exec.CommandContext(ctx, "docker", append([]string{"--config", config}, args...)...)
		cmd.Stdin = strings.NewReader(stdin)
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("docker %s: %v\n%s", strings.Join(args, " "), err, out)
		}
		return string(out)
	}
	t.Cleanup(func() {
		for _, ref := range []string{local, remoteRef} {
			_ = exec.Command("docker", "rmi", "--force", ref).Run()
		}
	})
	img, _ := imagetest.BookwormApp(t)
	docker("", "load", "--input", imagetest.WriteDockerArchive(t, filepath.Join(t.TempDir(), "image.tar"), local, img))
	docker("", "tag", local, remoteRef)
	docker(s.Token+"\n", "login", s.Addr, "--username", "ci", "--password-stdin")
	docker("", "push", remoteRef)

	desc, err := remote.Get(s.Ref(t, repo+":v1"), remote.WithAuth(s.Auth()))
	if err != nil {
		t.Fatalf("pull from the S3-backed registry: %v", err)
	}
	pulled, err := desc.Image()
	if err != nil {
		t.Fatal(err)
	}
	layers, err := pulled.Layers()
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range layers {
		// Reading a layer whole checks its digest.
		rc, err := l.Compressed()
		if err != nil {
			t.Fatal(err)
		}
		if _, err := io.Copy(io.Discard, rc); err != nil {
			t.Fatalf("read a layer back: %v", err)
		}
		rc.Close()
	}

	im := s.WaitScan(t, repo, desc.Digest.String(), 2*time.Minute)
	if im.ScanStatus != "COMPLETE" || im.Summary.Total == 0 {
		t.Fatalf("scan on push of an image on S3: %s %q, %d findings; want COMPLETE with findings", im.ScanStatus, im.ScanError, im.Summary.Total)
	}

	ready := func() int {
		resp, err := http.Get("http://" + s.Addr + "/readyz")
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	if c := ready(); c != http.StatusOK {
		t.Fatalf("/readyz with S3 up: %d", c)
	}
	gw.Stop()
	if c := ready(); c != http.StatusServiceUnavailable {
		t.Fatalf("/readyz with S3 down: %d; want 503", c)
	}
}
