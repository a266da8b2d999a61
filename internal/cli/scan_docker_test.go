package cli

import (
	"strings"
	"testing"

	"github.com/scangate/scangate/internal/imagetest"
)

// TestScanDockerEngine scans an image in a real Docker Engine. It needs
// dockerd (CI starts it) and fails, never skips, without one.
func TestScanDockerEngine(t *testing.T) {
	dir, archive := scanSetup(t)
	imagetest.DockerLoad(t, archive, "127.0.0.1:5000/app:1")

	r := run(t, dir, "scan", "--fail-on", "CRITICAL=0", "docker:127.0.0.1:5000/app:1")
	if r.code != ExitPolicy || !strings.Contains(r.stdout, "CVE-2023-45853") {
		t.Errorf("scan docker:127.0.0.1:5000/app:1: exit %d\nstdout: %.500s\nstderr: %s", r.code, r.stdout, r.stderr)
	}
	r = run(t, dir, "scan", "docker:no-such-image:404")
	if r.code != ExitBadInput || !strings.Contains(r.stderr, "no-such-image") {
		t.Errorf("scan of a missing Docker image: exit %d, stderr %q", r.code, r.stderr)
	}
}
