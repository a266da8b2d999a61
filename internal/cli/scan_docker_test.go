package cli

import (
	"context"
	"io"
	"os"
	"strings"
	"testing"

	"github.com/moby/moby/client"
)

// TestScanDockerEngine scans an image in a real Docker Engine. It needs
// dockerd (CI starts it) and fails, never skips, without one.
func TestScanDockerEngine(t *testing.T) {
	ctx := context.Background()
	cli, err := client.New(client.FromEnv)
	if err != nil {
		t.Fatalf("docker client: %v", err)
	}
	defer cli.Close()
	if _, err := cli.Ping(ctx, client.PingOptions{}); err != nil {
		t.Fatalf("this test needs a running Docker Engine (dockerd): %v", err)
	}
	dir, archive := scanSetup(t)
	f, err := os.Open(archive)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	res, err := cli.ImageLoad(ctx, f, client.ImageLoadWithQuiet(true))
	if err != nil {
		t.Fatalf("docker load: %v", err)
	}
	io.Copy(io.Discard, res)
	res.Close()
	t.Cleanup(func() { cli.ImageRemove(ctx, "127.0.0.1:5000/app:1", client.ImageRemoveOptions{Force: true}) })

	r := run(t, dir, "scan", "--fail-on", "CRITICAL=0", "docker:127.0.0.1:5000/app:1")
	if r.code != ExitPolicy || !strings.Contains(r.stdout, "CVE-2023-45853") {
		t.Errorf("scan docker:127.0.0.1:5000/app:1: exit %d\nstdout: %.500s\nstderr: %s", r.code, r.stdout, r.stderr)
	}
	r = run(t, dir, "scan", "docker:no-such-image:404")
	if r.code != ExitBadInput || !strings.Contains(r.stderr, "no-such-image") {
		t.Errorf("scan of a missing Docker image: exit %d, stderr %q", r.code, r.stderr)
	}
}
