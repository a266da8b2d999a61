package cli

import (
	"bytes"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"
	"golang.org/x/term"

	"github.com/scangate/scangate/internal/auth"
)

func newLoginCmd(g *globals) *cobra.Command {
	var name, caFile string
	cmd := &cobra.Command{
		Use:   "login URL [--name CONTEXT] [--ca-file FILE]",
		Short: "Store a server's URL and a token for it, and make it the current context",
		Long: `Login asks for a token (typed without echo on a terminal; read from standard
input otherwise, as in "scangate login URL < token"), checks it with the
server, and stores the server, the token and --ca-file as a context in
$XDG_CONFIG_HOME/scangate/config.yaml (else ~/.config/scangate/config.yaml;
SCANGATE_CLIENT_CONFIG names another file), written 0600. The context, named after
the server's host and port unless --name says otherwise, becomes the current
one: client commands then need no --server or token. The token is never an
argument: it would land in the shell's history and every process listing.

scangate token create --name NAME --role ROLE makes a token (the first
admin's on the server's machine, later ones with an admin's token).`,
		Example: `  scangate login http://127.0.0.1:5000
  scangate login https://scangate.example.com --ca-file ca.pem --name prod < ci.token`,
		Args: args(cobra.ExactArgs(1)),
		RunE: func(cmd *cobra.Command, a []string) error {
			base, err := serverURL(a[0])
			if err != nil {
				return usageError{err}
			}
			token, err := promptToken(g, base)
			if err != nil {
				return usageError{err}
			}
			tr, err := httpTransport(caFile)
			if err != nil {
				return usageError{err}
			}
			c := &apiClient{base: base, token: token, tokenFrom: "login", http: &http.Client{Timeout: 30 * time.Second, Transport: tr}}
			var tok auth.Token
			if err := c.call(cmd.Context(), http.MethodGet, pathOf("whoami"), nil, nil, &tok); err != nil {
				return err
			}
			cfg, path, err := loadConfig(g.stderr)
			if err != nil {
				return usageError{err}
			}
			if name == "" {
				name = contextName(base)
			}
			if caFile != "" {
				if caFile, err = filepath.Abs(caFile); err != nil {
					return usageError{err}
				}
			}
			cfg.put(clientContext{Name: name, Server: base, Token: token, CAFile: caFile, TokenName: tok.Name, Role: string(tok.Role)})
			cfg.CurrentContext = name
			if err := cfg.save(path); err != nil {
				return internalError{err}
			}
			if g.structured() {
				return g.write(contextView{Name: name, Server: base, TokenName: tok.Name, Role: string(tok.Role), CAFile: caFile, Current: true})
			}
			_, err = fmt.Fprintf(g.stdout, "logged in to %s as token %s (%s); context %s is current (%s)\n", base, tok.Name, tok.Role, name, path)
			return err
		},
	}
	cmd.Flags().StringVar(&name, "name", "", "the context's name (default: the server's host:port)")
	cmd.Flags().StringVar(&caFile, "ca-file", "", "PEM certificates of the authorities that signed the server's TLS certificate (a private CA)")
	return cmd
}

// promptToken reads a token: typed without echo on a terminal, else one
// line of standard input.
func promptToken(g *globals, server string) (string, error) {
	stdinFile := os.Stdin
	fd := int(stdinFile.Fd())
	if term.IsTerminal(fd) {
		fmt.Fprintf(g.stderr, "Token for %s: ", server)
		data, err := term.ReadPassword(fd)
		fmt.Fprintln(g.stderr)
		if err != nil {
			return "", fmt.Errorf("reading the token: %w", err)
		}
		return readToken(bytes.NewReader(data))
	}
	token, err := readToken(stdinFile)
	if err != nil {
		return "", fmt.Errorf("the token on standard input: %w", err)
	}
	return token, nil
}

// contextView is a context as list shows it: never its token.
type contextView struct {
	Name      string `json:"name"`
	Server    string `json:"server"`
	TokenName string `json:"tokenName,omitempty"`
	Role      string `json:"role,omitempty"`
	CAFile    string `json:"caFile,omitempty"`
	Current   bool   `json:"current"`
}

func newContextCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "context",
		Short: "List, switch and delete the servers logged in to (scangate login adds them)",
		Long: `A context is a server and the token to present to it, as scangate login
stored them. Client commands use the current context unless --server,
--context or SCANGATE_SERVER say otherwise; a context's token goes to its
own server only.`,
		Args: noSubcommand,
		RunE: groupRunE,
	}
	list := &cobra.Command{
		Use: "list", Short: "List the contexts (never their tokens)", Args: args(cobra.NoArgs),
		RunE: func(_ *cobra.Command, _ []string) error {
			if err := g.documentFormat(); err != nil {
				return err
			}
			cfg, _, err := loadConfig(g.stderr)
			if err != nil {
				return usageError{err}
			}
			views := make([]contextView, 0, len(cfg.Contexts))
			for _, c := range cfg.Contexts {
				views = append(views, contextView{c.Name, c.Server, c.TokenName, c.Role, c.CAFile, c.Name == cfg.CurrentContext})
			}
			if g.structured() {
				return g.write(views)
			}
			tw := tabwriter.NewWriter(g.stdout, 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "CURRENT\tNAME\tSERVER\tTOKEN\tROLE")
			for _, v := range views {
				cur := ""
				if v.Current {
					cur = "*"
				}
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", cur, v.Name, v.Server, orDash(v.TokenName), orDash(v.Role))
			}
			return tw.Flush()
		},
	}
	use := &cobra.Command{
		Use: "use NAME", Short: "Make a context the current one", Args: args(cobra.ExactArgs(1)),
		RunE: func(_ *cobra.Command, a []string) error {
			cfg, path, err := loadConfig(g.stderr)
			if err != nil {
				return usageError{err}
			}
			c := cfg.find(a[0])
			if c == nil {
				return usageError{fmt.Errorf("no context %s in %s (scangate context list shows them)", a[0], path)}
			}
			cfg.CurrentContext = a[0]
			if err := cfg.save(path); err != nil {
				return internalError{err}
			}
			_, err = fmt.Fprintf(g.stdout, "context %s (%s) is current\n", c.Name, c.Server)
			return err
		},
	}
	del := &cobra.Command{
		Use: "delete NAME", Short: "Forget a context and its token (the token itself stays valid: token revoke ends it)", Args: args(cobra.ExactArgs(1)),
		RunE: func(_ *cobra.Command, a []string) error {
			cfg, path, err := loadConfig(g.stderr)
			if err != nil {
				return usageError{err}
			}
			if !cfg.remove(a[0]) {
				return usageError{fmt.Errorf("no context %s in %s", a[0], path)}
			}
			if err := cfg.save(path); err != nil {
				return internalError{err}
			}
			_, err = fmt.Fprintf(g.stdout, "context %s deleted\n", a[0])
			return err
		},
	}
	cmd.AddCommand(list, use, del)
	return cmd
}

func newWhoamiCmd(g *globals) *cobra.Command {
	var sf serverFlags
	cmd := &cobra.Command{
		Use:   "whoami",
		Short: "Show the server and the token the client commands use: its name, role and expiry",
		Long:  "Whoami asks the server which token it was given." + clientHelp,
		Args:  args(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := g.apiClient(&sf)
			if err != nil {
				return err
			}
			var tok auth.Token
			if err := c.call(cmd.Context(), http.MethodGet, pathOf("whoami"), nil, nil, &tok); err != nil {
				return err
			}
			if g.structured() {
				return g.write(map[string]any{"server": c.base, "token": tok})
			}
			exp := "never"
			if tok.ExpiresAt != nil {
				exp = when(*tok.ExpiresAt)
			}
			_, err = fmt.Fprintf(g.stdout, "server %s: token %s, role %s, expires %s (from %s)\n", c.base, tok.Name, tok.Role, exp, c.tokenFrom)
			return err
		},
	}
	sf.add(cmd)
	return cmd
}

// noSubcommand refuses arguments to a command that only groups others:
// `scangate images lst` is a mistake, exit 2, not help and exit 0.
func noSubcommand(cmd *cobra.Command, a []string) error {
	if len(a) > 0 {
		return usageError{fmt.Errorf("unknown command %q for %q; run %s --help", a[0], cmd.CommandPath(), cmd.CommandPath())}
	}
	return nil
}

// groupRunE shows a group's help when it is called alone.
func groupRunE(cmd *cobra.Command, _ []string) error { return cmd.Help() }
