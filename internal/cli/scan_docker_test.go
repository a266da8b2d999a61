package cli

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/scangate/scangate/internal/imagetest"
)

// TestScanDockerEngine scans an image in a real Docker Engine. It needs
// dockerd (CI starts it) and fails, never skips, without one.
func TestScanDockerEngine(t *testing.T) {
	const ref = "127.0.0.1:5000/app:1"
	dir, archive := scanSetup(t)
	cli := imagetest.DockerLoad(t, archive, ref)
	ins, err := cli.ImageInspect(context.Background(), ref)
	if err != nil {
		t.Fatal(err)
	}
	since := time.Now()

	first := run(t, dir, "--format", "json", "scan", "--fail-on", "CRITICAL=0", "docker:"+ref)
	if first.code != ExitPolicy || !strings.Contains(first.stdout, "CVE-2023-45853") {
		t.Errorf("scan docker:%s: exit %d\nstdout: %.500s\nstderr: %s", ref, first.code, first.stdout, first.stderr)
	}
	// Scanned again, the image is not exported: the layer cache holds its
	// layers, its config and its manifest. The report is the same.
	again := run(t, dir, "--format", "json", "scan", "--fail-on", "CRITICAL=0", "docker:"+ref)
	if got := imagetest.DockerExports(t, cli, ins.ID, since); got != 1 {
		t.Errorf("two scans exported the image %d times, want once", got)
	}
	if a, b := withoutTime(t, first.stdout), withoutTime(t, again.stdout); again.code != ExitPolicy || a != b {
		t.Errorf("the second scan (exit %d) reports\n%.2000s\nthe first\n%.2000s", again.code, b, a)
	}
	// Without the cache, each scan exports the image.
	run(t, dir, "scan", "--layer-cache-bytes", "0", "docker:"+ref).must(t)
	if got := imagetest.DockerExports(t, cli, ins.ID, since); got != 2 {
		t.Errorf("a scan without the layer cache: %d exports in all, want 2", got)
	}

	r := run(t, dir, "scan", "docker:no-such-image:404")
	if r.code != ExitBadInput || !strings.Contains(r.stderr, "no-such-image") {
		t.Errorf("scan of a missing Docker image: exit %d, stderr %q", r.code, r.stderr)
	}
}

// withoutTime is a JSON report without the time it was made.
func withoutTime(t *testing.T, report string) string {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal([]byte(report), &m); err != nil {
		t.Fatalf("json report: %v\n%.500s", err, report)
	}
	delete(m, "createdAt")
	out, err := json.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	return string(out)
}
