package cli

import (
	"bufio"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/spf13/cobra"
)

// maxCredentialInput bounds what git may send a credential helper.
const maxCredentialInput = 64 << 10

func newGitCredentialCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "git-credential get|store|erase",
		Short: "A git credential helper that answers with the token of the context for the server",
		Long: `Git-credential speaks git's credential helper protocol, so that clone and
push URLs need no token in them (where .git/config and the shell's history
would keep it). Tell git once, for the server:

  git config --global credential.http://127.0.0.1:5000.helper '!scangate git-credential'

For "get" it answers with the token of the context whose server is the
URL's scheme, host and port (scangate login), or SCANGATE_TOKEN when
SCANGATE_SERVER names that server; for any other host it answers nothing,
and git asks elsewhere. "store" and "erase" do nothing: the token lives in
scangate's configuration.`,
		Args: args(cobra.ExactArgs(1)),
		RunE: func(_ *cobra.Command, a []string) error {
			if a[0] != "get" {
				_, _ = io.Copy(io.Discard, io.LimitReader(os.Stdin, maxCredentialInput))
				return nil
			}
			attrs, err := readCredentialRequest(os.Stdin)
			if err != nil {
				return usageError{err}
			}
			token := g.credentialFor(attrs["protocol"], attrs["host"])
			if token == "" {
				return nil
			}
			_, err = fmt.Fprintf(g.stdout, "username=scangate\npassword=%s\n", token)
			return err
		},
	}
}

// readCredentialRequest reads git's key=value lines up to a blank line.
func readCredentialRequest(r io.Reader) (map[string]string, error) {
	attrs := map[string]string{}
	sc := bufio.NewScanner(io.LimitReader(r, maxCredentialInput))
	for sc.Scan() {
		line := sc.Text()
		if line == "" {
			break
		}
		k, v, ok := strings.Cut(line, "=")
		if !ok {
			return nil, fmt.Errorf("git-credential: %q is not key=value", line)
		}
		attrs[k] = v
	}
	return attrs, sc.Err()
}

// credentialFor returns the token for protocol://host, or "" when
// scangate has none for that server.
func (g *globals) credentialFor(protocol, host string) string {
	if protocol != "http" && protocol != "https" || host == "" {
		return ""
	}
	server := protocol + "://" + host
	if env := os.Getenv("SCANGATE_SERVER"); env != "" {
		if s, err := serverURL(env); err == nil && s == server {
			if t := strings.TrimSpace(os.Getenv(tokenEnv)); t != "" {
				return t
			}
		}
	}
	cfg, _, err := loadConfig(g.stderr)
	if err != nil {
		fmt.Fprintf(g.stderr, "scangate git-credential: %v\n", err)
		return ""
	}
	if cx := cfg.forServer(server); cx != nil {
		return cx.Token
	}
	return ""
}
