package source

import (
	"context"
	"os/exec"
	"strings"
	"testing"

	"github.com/scangate/scangate/internal/dnstest"
	"github.com/scangate/scangate/internal/egress"
)

// An ssh repository is pinned through ssh's own options: OpenSSH, asked
// what it would do with the command scangate gives git (ssh -G prints
// its configuration and connects nowhere), connects to the address
// checked and keeps the host key under the repository's name.
func TestSSHIsPinned(t *testing.T) {
	dns := dnstest.Start(t)
	dns.Set("git.ssh.test", "127.0.0.1")
	r := &Repos{opts: Options{Egress: egress.New(egress.Loopback).WithResolver(dns.Resolver())}}
	for _, raw := range []string{"ssh://git@git.ssh.test:2222/o/r.git", "git@git.ssh.test:o/r.git"} {
		p, err := r.reach(context.Background(), raw)
		if err != nil || len(p.env) != 1 || len(p.config) != 0 {
			t.Fatalf("reach %s: %+v, %v; want one variable", raw, p, err)
		}
		command, ok := strings.CutPrefix(p.env[0], "GIT_SSH_COMMAND=")
		if !ok {
			t.Fatalf("reach %s: %q, want GIT_SSH_COMMAND", raw, p.env[0])
		}
		// As git runs it: through the shell, with the host appended.
		out, err := exec.Command("sh", "-c", command+` -G "$0"`, "git@git.ssh.test").CombinedOutput()
		if err != nil {
			t.Fatalf("ssh -G: %v\n%s", err, out)
		}
		for _, want := range []string{"hostname 127.0.0.1", "hostkeyalias git.ssh.test", "batchmode yes"} {
			if !strings.Contains(string(out), "\n"+want+"\n") {
				t.Errorf("%s: ssh would run without %q:\n%s", raw, want, out)
			}
		}
	}
	dns.Set("git.ssh.test", "169.254.169.254")
	strict := &Repos{opts: Options{Egress: egress.New(nil).WithResolver(dns.Resolver())}}
	if _, err := strict.reach(context.Background(), "git@git.ssh.test:o/r.git"); err == nil {
		t.Error("an ssh host resolving to the metadata address was not refused")
	}
}
