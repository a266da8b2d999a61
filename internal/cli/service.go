package cli

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/scangate/scangate/internal/auth"
	"github.com/scangate/scangate/internal/policy"
	"github.com/scangate/scangate/internal/store"
)

// The commands in this file are clients of the server's API, but for the
// first admin's token: token create with no token to present (or --local)
// works on the data folder, so that a fresh server can be given its first
// admin.

func newTokenCmd(g *globals) *cobra.Command {
	var sf serverFlags
	var local bool
	cmd := &cobra.Command{
		Use:   "token",
		Short: "Create, list and revoke access tokens for the registry and API (admin)",
		Long: `Tokens let people and programs in: as the password of docker login and
git (any user name), or as "Authorization: Bearer" for the API. Managing
them needs an admin token, over the API.

The first admin's token is made on the server's machine, with the server
running or not: token create with no token to present (no SCANGATE_TOKEN,
--token-file or context for the server), or with --local, writes it in the
data folder (--data-dir) itself, and says so.` + clientHelp,
	}
	sf.add(cmd)
	cmd.PersistentFlags().BoolVar(&local, "local", false, "work on the data folder (--data-dir) instead of a server: the first admin's token")
	var name, role, expires, repositories string
	create := &cobra.Command{
		Use:   "create --name NAME --role reader|pusher|approver|deployer|admin [--expires 90d|2027-01-31] [--repositories 'shop/*,billing/api']",
		Short: "Create a token and print its secret (shown once)",
		Long: `Create makes an access token. reader pulls images and reads results;
pusher also pushes; approver also answers approvals; deployer also changes
clusters, task definitions, services and tasks; admin also deletes and
manages tokens, rules and pipelines. The secret is printed once; scangate
keeps only its hash. With --expires (a number of days such as 90d, a date,
or an RFC 3339 time) the token stops working then, and is refused as an
unknown one is. With --repositories (patterns: "*" within a path segment,
"**" as the last segment for any depth) the token reaches only those
registry and hosted git repositories; admin tokens reach every repository.` + clientHelp,
		Args: args(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error {
			r, err := auth.ParseRole(role)
			if err != nil {
				return usageError{err}
			}
			var until time.Time
			if expires != "" {
				if until, err = parseTokenExpiry(expires, time.Now()); err != nil {
					return usageError{fmt.Errorf("--expires: %w", err)}
				}
			}
			scope, err := auth.ParseScope(repositories)
			if err != nil {
				return usageError{fmt.Errorf("--repositories: %w", err)}
			}
			var created struct {
				Token  auth.Token `json:"token"`
				Secret string     `json:"secret"`
			}
			c, err := g.tokenClient(&sf, local)
			if err != nil {
				return err
			}
			if c == nil { // the first admin's, in the data folder's database
				where := "the data folder " + g.dataDir
				err = g.withStore(cmd.Context(), func(st *store.Store) error {
					if st.Dialect() == store.Postgres {
						where = "the PostgreSQL database of --database"
					}
					created.Secret, created.Token, err = auth.NewTokens(st).CreateToken(cmd.Context(), auth.Spec{Name: name, Role: r, Expires: until, Repositories: scope})
					return badInput(err)
				})
				if err != nil {
					return err
				}
				fmt.Fprintf(g.stderr, "token %s created in %s (local: no server was asked)\n", name, where)
			} else {
				body := map[string]any{"name": name, "role": r}
				if !until.IsZero() {
					body["expiresAt"] = until
				}
				if len(scope) > 0 {
					body["repositories"] = scope
				}
				if err := c.call(cmd.Context(), http.MethodPost, pathOf("tokens"), nil, body, &created); err != nil {
					return err
				}
			}
			if g.structured() {
				return g.write(created)
			}
			_, err = fmt.Fprintln(g.stdout, created.Secret)
			return err
		},
	}
	create.Flags().StringVar(&name, "name", "", "a name for the token, such as ci")
	create.Flags().StringVar(&role, "role", "reader", "reader, pusher, approver, deployer or admin")
	create.Flags().StringVar(&expires, "expires", "", "when the token stops working: 90d (days from now), a date (2027-01-31) or an RFC 3339 time; default never")
	create.Flags().StringVar(&repositories, "repositories", "", "repository patterns the token reaches, comma-separated (shop/*, billing/api); default all")
	_ = create.MarkFlagRequired("name")
	list := &cobra.Command{
		Use: "list", Short: "List tokens (never their secrets)", Long: "List lists the tokens." + clientHelp, Args: args(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error {
			var toks []auth.Token
			if local {
				err := g.withExistingStore(cmd.Context(), func(st *store.Store) (err error) {
					toks, err = auth.NewTokens(st).List(cmd.Context())
					return err
				})
				if err != nil {
					return err
				}
			} else {
				c, err := g.apiClient(&sf)
				if err != nil {
					return err
				}
				var out struct {
					Tokens []auth.Token `json:"tokens"`
				}
				if err := c.call(cmd.Context(), http.MethodGet, pathOf("tokens"), nil, nil, &out); err != nil {
					return err
				}
				toks = out.Tokens
			}
			if g.structured() {
				return g.write(orEmpty(toks))
			}
			tw := tabwriter.NewWriter(g.stdout, 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "NAME\tROLE\tCREATED\tLAST USED\tEXPIRES\tREPOSITORIES")
			for _, t := range toks {
				used, exp := "never", "never"
				if t.LastUsedAt != nil {
					used = t.LastUsedAt.Format(time.RFC3339)
				}
				if t.ExpiresAt != nil {
					exp = t.ExpiresAt.Format(time.RFC3339)
				}
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", t.Name, t.Role, t.CreatedAt.Format(time.RFC3339), used, exp, repositoriesColumn(t.Repositories))
			}
			return tw.Flush()
		},
	}
	revoke := &cobra.Command{
		Use: "revoke NAME", Short: "Revoke a token: it stops working at once", Long: "Revoke revokes a token." + clientHelp, Args: args(cobra.ExactArgs(1)),
		RunE: func(cmd *cobra.Command, a []string) error {
			if local {
				return g.withExistingStore(cmd.Context(), func(st *store.Store) error {
					return badInput(auth.NewTokens(st).Revoke(cmd.Context(), a[0]))
				})
			}
			c, err := g.apiClient(&sf)
			if err != nil {
				return err
			}
			if err := c.call(cmd.Context(), http.MethodDelete, pathOf("tokens", a[0]), nil, nil, nil); err != nil {
				return err
			}
			_, err = fmt.Fprintf(g.stdout, "token %s revoked\n", a[0])
			return err
		},
	}
	cmd.AddCommand(create, list, revoke)
	return cmd
}

// tokenClient is the client token create uses, or nil for the data
// folder: with --local, or when there is no token to present (the first
// admin's, which only the server's machine can make).
func (g *globals) tokenClient(sf *serverFlags, local bool) (*apiClient, error) {
	if err := g.documentFormat(); err != nil {
		return nil, err
	}
	if local {
		return nil, nil
	}
	c, err := sf.client(g.stderr)
	if errors.Is(err, errNoToken) && sf.server == "" && sf.context == "" {
		return nil, nil
	}
	return c, err
}

// parseTokenExpiry reads a number of days from now (90d), or what
// parseExpiry reads.
func parseTokenExpiry(s string, now time.Time) (time.Time, error) {
	if n, ok := strings.CutSuffix(s, "d"); ok {
		days, err := strconv.Atoi(n)
		if err != nil || days < 1 || days > 3650 {
			return time.Time{}, fmt.Errorf("%q: want 1d to 3650d", s)
		}
		return now.Add(time.Duration(days) * 24 * time.Hour), nil
	}
	return policy.ParseExpiry(s)
}

func orEmpty[T any](s []T) []T {
	if s == nil {
		return []T{}
	}
	return s
}

func writeJSONLine(w io.Writer, v any) error {
	return json.NewEncoder(w).Encode(v)
}

// repositoriesColumn is a token's scope in token list: "all", or its
// patterns.
func repositoriesColumn(sc auth.Scope) string {
	if sc.All() {
		return "all"
	}
	return sc.String()
}
