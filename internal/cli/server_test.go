package cli

import (
	"context"
	"encoding/json"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/scangate/scangate/internal/imagetest"
)

func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

func waitReady(t *testing.T, addr string, done <-chan result) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		select {
		case r := <-done:
			t.Fatalf("server exited %d: %s", r.code, r.stderr)
		default:
		}
		resp, err := http.Get("http://" + addr + "/readyz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatal("server not ready in 30 s")
}

// The whole server flow through the commands a user types: a token, the
// server configured by its file, a push, then images, findings, events and
// rules read back; an interrupt stops it cleanly.
func TestServerCommands(t *testing.T) {
	dir := t.TempDir()
	run(t, dir, "db", "import", filepath.Join(fixtures, "debian"), filepath.Join(fixtures, "ghsa")).must(t)
	secret := strings.TrimSpace(run(t, dir, "token", "create", "--name", "ci", "--role", "pusher").must(t).stdout)
	if !strings.HasPrefix(secret, "sgt_") {
		t.Fatalf("token create printed %q", secret)
	}
	if r := run(t, dir, "token", "create", "--name", "ci", "--role", "pusher"); r.code != ExitBadInput {
		t.Errorf("the same name twice: exit %d, want 2", r.code)
	}
	if out := run(t, dir, "token", "list").must(t).stdout; !strings.Contains(out, "ci") || strings.Contains(out, secret) {
		t.Errorf("token list (never the secret):\n%s", out)
	}

	addr := freeAddr(t)
	config := "addr: " + addr + "\nscan-concurrency: 1\n"
	if err := os.WriteFile(filepath.Join(dir, "scangate.yaml"), []byte(config), 0o600); err != nil {
		t.Fatal(err)
	}
	ctx, stop := context.WithCancel(context.Background())
	defer stop()
	done := make(chan result, 1)
	go func() { done <- runCtx(ctx, t, dir, "server") }()
	waitReady(t, addr, done)

	if r := run(t, dir, "server", "--addr", freeAddr(t)); r.code != ExitInternal || !strings.Contains(r.stderr, "another scangate server") {
		t.Errorf("a second server on the same data: exit %d %s", r.code, r.stderr)
	}

	img, _ := imagetest.BookwormApp(t)
	ref, err := name.ParseReference(addr+"/shop/api:1", name.Insecure)
	if err != nil {
		t.Fatal(err)
	}
	if err := remote.Write(ref, img, remote.WithAuth(&authn.Basic{Username: "ci", Password: secret})); err != nil {
		t.Fatalf("push with the pusher token: %v", err)
	}
	deadline := time.Now().Add(30 * time.Second)
	for !strings.Contains(run(t, dir, "images", "list").must(t).stdout, "COMPLETE") {
		if time.Now().After(deadline) {
			t.Fatal("not scanned in 30 s")
		}
		time.Sleep(100 * time.Millisecond)
	}
	var rep struct {
		Image    struct{ Repository string }
		Findings []struct{ ID string }
	}
	out := run(t, dir, "--format", "json", "findings", "shop/api:1").must(t).stdout
	if err := json.Unmarshal([]byte(out), &rep); err != nil || rep.Image.Repository != "shop/api" || len(rep.Findings) == 0 {
		t.Errorf("findings: %v %+v", err, rep)
	}
	if r := run(t, dir, "findings", "shop/api:2"); r.code != ExitBadInput {
		t.Errorf("findings of an unknown tag: exit %d, want 2", r.code)
	}
	lines := strings.Split(strings.TrimSpace(run(t, dir, "events", "tail").must(t).stdout), "\n")
	if len(lines) != 2 || !strings.Contains(lines[0], `"Image Push"`) || !strings.Contains(lines[1], `"INITIAL_SCAN_COMPLETE"`) {
		t.Errorf("events tail:\n%s", strings.Join(lines, "\n"))
	}

	run(t, dir, "rules", "put", "crit", "--pattern", `{"detail-type": ["Scan"]}`, "--webhook", "http://127.0.0.1:9/x", "--secret", "s",
		"--allow-private-targets", "127.0.0.0/8").must(t)
	if out := run(t, dir, "rules", "list").must(t).stdout; !strings.Contains(out, "crit") || strings.Contains(out, `"s"`) {
		t.Errorf("rules list:\n%s", out)
	}
	if r := run(t, dir, "rules", "put", "bad", "--pattern", `{"detail-type": "Scan"}`, "--webhook", "http://127.0.0.1:9/x"); r.code != ExitBadInput {
		t.Errorf("a bad pattern: exit %d, want 2: %s", r.code, r.stderr)
	}
	run(t, dir, "rules", "delete", "crit").must(t)
	if r := run(t, dir, "rules", "delete", "crit"); r.code != ExitBadInput {
		t.Errorf("deleting a missing rule: exit %d, want 2", r.code)
	}

	stop()
	select {
	case r := <-done:
		if r.code != 0 {
			t.Errorf("server stopped with exit %d: %s", r.code, r.stderr)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("server did not stop in 30 s")
	}
}

// Settings come from flags, then the environment, then the config file;
// a file with a setting that does not exist is refused.
func TestServerConfigFile(t *testing.T) {
	dir := t.TempDir()
	bad := filepath.Join(dir, "bad.yaml")
	if err := os.WriteFile(bad, []byte("adress: 127.0.0.1:1\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if r := run(t, dir, "server", "--config", bad); r.code != ExitBadInput || !strings.Contains(r.stderr, `unknown setting "adress"`) {
		t.Errorf("misspelt setting: exit %d %s", r.code, r.stderr)
	}
	if r := run(t, dir, "server", "--config", filepath.Join(dir, "missing.yaml")); r.code != ExitBadInput {
		t.Errorf("missing --config file: exit %d, want 2", r.code)
	}

	fileAddr, envAddr := freeAddr(t), freeAddr(t)
	file := filepath.Join(dir, "scangate.yaml")
	if err := os.WriteFile(file, []byte("addr: "+fileAddr+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Setenv("SCANGATE_ADDR", envAddr)
	ctx, stop := context.WithCancel(context.Background())
	done := make(chan result, 1)
	go func() { done <- runCtx(ctx, t, dir, "server") }()
	waitReady(t, envAddr, done) // the environment wins over the file
	stop()
	if r := <-done; r.code != 0 {
		t.Errorf("exit %d: %s", r.code, r.stderr)
	}
}
