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

// The whole server flow through the commands a user types: the first
// admin's token made in the data folder (no server yet), the server
// configured by its file, a push, then images, findings (by the name
// docker push used, and as a gate), events and rules read back through the
// API; a pusher's token refused where an admin's is needed, naming both
// roles; an interrupt stops the server cleanly.
func TestServerCommands(t *testing.T) {
	dir := t.TempDir()
	r := run(t, dir, "db", "import", filepath.Join(fixtures, "debian"), filepath.Join(fixtures, "ghsa")).must(t)
	if !strings.Contains(r.stderr, "no scangate server is running on "+dir) {
		t.Errorf("db import with no server says nothing of the queued re-evaluation:\n%s", r.stderr)
	}
	r = run(t, dir, "token", "create", "--name", "ci", "--role", "pusher").must(t)
	secret := strings.TrimSpace(r.stdout)
	if !strings.HasPrefix(secret, "sgt_") || !strings.Contains(r.stderr, "created in the data folder "+dir) {
		t.Fatalf("token create printed %q, %q", secret, r.stderr)
	}
	admin := strings.TrimSpace(run(t, dir, "token", "create", "--name", "root", "--role", "admin").must(t).stdout)
	if r := run(t, dir, "token", "create", "--name", "ci", "--role", "pusher"); r.code != ExitBadInput {
		t.Errorf("the same name twice: exit %d, want 2", r.code)
	}
	if out := run(t, dir, "token", "list", "--local").must(t).stdout; !strings.Contains(out, "ci") || strings.Contains(out, secret) {
		t.Errorf("token list --local (never the secret):\n%s", out)
	}

	addr := freeAddr(t)
	config := "addr: " + addr + "\nscan-concurrency: 1\nallow-private-targets: 127.0.0.0/8\n"
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
	// The client commands from here on, from a folder that is not the
	// server's: the server and the token come from the environment.
	t.Setenv("SCANGATE_SERVER", addr)
	t.Setenv("SCANGATE_TOKEN", admin)
	elsewhere := filepath.Join(t.TempDir(), "laptop")

	img, _ := imagetest.BookwormApp(t)
	ref, err := name.ParseReference(addr+"/shop/api:1", name.Insecure)
	if err != nil {
		t.Fatal(err)
	}
	if err := remote.Write(ref, img, remote.WithAuth(&authn.Basic{Username: "ci", Password: secret})); err != nil {
		t.Fatalf("push with the pusher token: %v", err)
	}
	deadline := time.Now().Add(30 * time.Second)
	for !strings.Contains(run(t, elsewhere, "images", "list").must(t).stdout, "COMPLETE") {
		if time.Now().After(deadline) {
			t.Fatal("not scanned in 30 s")
		}
		time.Sleep(100 * time.Millisecond)
	}
	var rep struct {
		Image    struct{ Repository string }
		Findings []struct{ ID, Severity string }
	}
	// The name docker push used, registry host and all.
	out := run(t, elsewhere, "--format", "json", "findings", addr+"/shop/api:1").must(t).stdout
	if err := json.Unmarshal([]byte(out), &rep); err != nil || rep.Image.Repository != "shop/api" || len(rep.Findings) == 0 {
		t.Fatalf("findings: %v %+v", err, rep)
	}
	if out := run(t, elsewhere, "--format", "yaml", "findings", "shop/api:1").must(t).stdout; !strings.Contains(out, "repository: shop/api") || strings.HasPrefix(out, "{") {
		t.Errorf("findings --format yaml:\n%.500s", out)
	}
	if r := run(t, elsewhere, "findings", "shop/api:2"); r.code != ExitBadInput || !strings.Contains(r.stderr, "server http://"+addr+": 404:") {
		t.Errorf("findings of an unknown tag: exit %d %s, want 2 naming the server", r.code, r.stderr)
	}
	// The gate on the stored result: no pull, the policy's reasons.
	sev := rep.Findings[0].Severity
	r = run(t, elsewhere, "findings", "shop/api:1", "--fail-on", sev+"=0")
	if r.code != ExitPolicy || !strings.Contains(r.stderr, sev) {
		t.Errorf("findings --fail-on %s=0: exit %d %s, want 1 with the reasons", sev, r.code, r.stderr)
	}
	run(t, elsewhere, "findings", "shop/api:1", "--fail-on", sev+"=100000").must(t)

	out = run(t, elsewhere, "events", "tail").must(t).stdout
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if len(lines) != 3 || !strings.HasPrefix(lines[0], "SEQ") || !strings.HasPrefix(lines[1], "1 ") || !strings.Contains(lines[1], "Image Push") ||
		!strings.Contains(lines[2], "INITIAL_SCAN_COMPLETE") {
		t.Errorf("events tail:\n%s", out)
	}
	out = run(t, elsewhere, "--format", "json", "events", "tail", "-n", "1", "--type", "Scan", "--since", "1h").must(t).stdout
	var ev loggedEvent
	if err := json.Unmarshal([]byte(out), &ev); err != nil || ev.Seq != 2 || ev.Event.DetailType != "Scan" {
		t.Errorf("events tail -n 1 --type Scan: %v %s", err, out)
	}
	if out := run(t, elsewhere, "events", "tail", "--type", "Nothing").must(t).stdout; strings.Count(out, "\n") != 1 {
		t.Errorf("events tail --type Nothing:\n%s", out)
	}

	run(t, elsewhere, "rules", "put", "crit", "--pattern", `{"detail-type": ["Scan"]}`, "--webhook", "http://127.0.0.1:9/x", "--secret", "s").must(t)
	if out := run(t, elsewhere, "rules", "list").must(t).stdout; !strings.Contains(out, "crit") || strings.Contains(out, `"s"`) {
		t.Errorf("rules list:\n%s", out)
	}
	if out := run(t, elsewhere, "--format", "yaml", "rules", "list").must(t).stdout; !strings.Contains(out, "name: crit") || !strings.Contains(out, "secret: '********'") {
		t.Errorf("rules list --format yaml:\n%s", out)
	}
	if r := run(t, elsewhere, "rules", "put", "bad", "--pattern", `{"detail-type": "Scan"}`, "--webhook", "http://127.0.0.1:9/x"); r.code != ExitBadInput {
		t.Errorf("a bad pattern: exit %d, want 2: %s", r.code, r.stderr)
	}
	run(t, elsewhere, "rules", "delete", "crit").must(t)
	if r := run(t, elsewhere, "rules", "delete", "crit"); r.code != ExitBadInput {
		t.Errorf("deleting a missing rule: exit %d, want 2", r.code)
	}
	// A pusher may not: the error names the server, the role needed and the
	// token's.
	t.Setenv("SCANGATE_TOKEN", secret)
	if r := run(t, elsewhere, "rules", "delete", "x"); r.code != ExitBadInput ||
		!strings.Contains(r.stderr, "server http://"+addr+": 403: this needs the admin role; token ci is a pusher") {
		t.Errorf("a pusher deletes a rule: exit %d %s", r.code, r.stderr)
	}
	if _, err := os.Stat(elsewhere); !os.IsNotExist(err) {
		t.Errorf("the client commands made a data folder: %v", err)
	}
	// With the server running, an import says nothing of waiting.
	if r := run(t, dir, "db", "import", filepath.Join(fixtures, "debian")).must(t); strings.Contains(r.stderr, "no scangate server") {
		t.Errorf("db import with the server running:\n%s", r.stderr)
	}

	stop()
	select {
	case r := <-done:
		if r.code != 0 {
			t.Errorf("server stopped with exit %d: %s", r.code, r.stderr)
		}
		if strings.Contains(r.stderr, "database is empty") || !strings.Contains(r.stderr, "scangate server stopped") {
			t.Errorf("the server's log does not end saying it stopped (or warns of a database that is not empty):\n%s", r.stderr)
		}
		// One info line for the push and one for its scan.
		if strings.Count(r.stderr, `msg="Image Push"`) != 1 || strings.Count(r.stderr, "msg=Scan ") != 1 || !strings.Contains(r.stderr, "INITIAL_SCAN_COMPLETE") {
			t.Errorf("the server's log does not tell the push and the scan once each:\n%s", r.stderr)
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
	} else if !strings.Contains(r.stderr, "the vulnerability database is empty: every scan will fail until it is filled") {
		t.Errorf("a server on an empty database does not warn at start:\n%s", r.stderr)
	}
}

// Registry settings that cannot work are bad input, said before the server
// starts, and the error never repeats a credential or the secret.
func TestServerRegistrySettings(t *testing.T) {
	dir := t.TempDir()
	for _, c := range []struct {
		args []string
		env  map[string]string
		want string
	}{
		{[]string{"--registry-storage", "s3://bucket?region=us-east-1"}, nil, "registry secret: required"},
		{[]string{"--registry-storage", "/srv/shared", "--registry-cache", "inmemory"}, map[string]string{"SCANGATE_REGISTRY_SECRET": "hunter2-hunter2-hunter2"}, "inmemory is refused"},
		{[]string{"--registry-storage", "s3://AKIAKEY:hunter2@bucket?region=us-east-1"}, nil, "credentials in the URL are refused"},
		{nil, map[string]string{"SCANGATE_REGISTRY_STORAGE": "relative/folder"}, "absolute path"},
		{[]string{"--registry-secret", "hunter2"}, nil, "at least 16"},
		{[]string{"--registry-host", "http://registry.example.com"}, nil, "not a registry host"},
		{[]string{"--registry-host", "registry.example.com/shop"}, nil, "not a registry host"},
		{nil, map[string]string{"SCANGATE_REGISTRY_HOST": "Registry"}, "not a registry host"},
	} {
		for k, v := range c.env {
			t.Setenv(k, v)
		}
		r := run(t, dir, append([]string{"server", "--addr", "127.0.0.1:0"}, c.args...)...)
		if r.code != ExitBadInput || !strings.Contains(r.stderr, c.want) {
			t.Errorf("%v %v: exit %d %s; want 2 and %q", c.args, c.env, r.code, r.stderr, c.want)
		}
		if strings.Contains(r.stderr, "hunter2") || strings.Contains(r.stderr, "AKIA") {
			t.Errorf("%v: the error repeats a secret: %s", c.args, r.stderr)
		}
		for k := range c.env {
			os.Unsetenv(k)
		}
	}
}
