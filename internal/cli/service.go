package cli

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/scangate/scangate/internal/auth"
	"github.com/scangate/scangate/internal/deploy"
	"github.com/scangate/scangate/internal/events"
	"github.com/scangate/scangate/internal/jobs"
	"github.com/scangate/scangate/internal/policy"
	"github.com/scangate/scangate/internal/report"
	"github.com/scangate/scangate/internal/scanner"
	"github.com/scangate/scangate/internal/store"
)

// The commands in this file work on the data folder the server uses, so
// they run on the server's machine, with or without the server running;
// remote users have the REST API.

func newTokenCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{Use: "token", Short: "Create, list and revoke access tokens for the registry and API"}
	var name, role, expires string
	create := &cobra.Command{
		Use:   "create --name NAME --role reader|pusher|deployer|admin [--expires 90d|2027-01-31]",
		Short: "Create a token and print its secret (shown once)",
		Long: `Create makes an access token. reader pulls images and reads results;
pusher also pushes; deployer also changes clusters, task definitions,
services and tasks; admin also deletes, approves and manages tokens and rules. The
secret is printed once; scangate keeps only its hash. Use it as the password
of docker login (any user name) or as "Authorization: Bearer" for the API.
With --expires (a number of days such as 90d, a date, or an RFC 3339 time)
the token stops working then, and is refused as an unknown one is.`,
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
			return g.withStore(cmd.Context(), func(st *store.Store) error {
				secret, tok, err := auth.NewTokens(st).CreateExpiring(cmd.Context(), name, r, until)
				if errors.Is(err, auth.ErrExists) {
					return usageError{err}
				}
				if err != nil {
					return usageError{err}
				}
				if g.structured() {
					return g.write(map[string]any{"token": tok, "secret": secret})
				}
				_, err = fmt.Fprintln(g.stdout, secret)
				return err
			})
		},
	}
	create.Flags().StringVar(&name, "name", "", "a name for the token, such as ci")
	create.Flags().StringVar(&role, "role", "reader", "reader, pusher, approver, deployer or admin")
	create.Flags().StringVar(&expires, "expires", "", "when the token stops working: 90d (days from now), a date (2027-01-31) or an RFC 3339 time; default never")
	_ = create.MarkFlagRequired("name")
	list := &cobra.Command{
		Use: "list", Short: "List tokens (never their secrets)", Args: args(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error {
			return g.withStore(cmd.Context(), func(st *store.Store) error {
				toks, err := auth.NewTokens(st).List(cmd.Context())
				if err != nil {
					return internalError{err}
				}
				if g.structured() {
					return g.write(orEmpty(toks))
				}
				tw := tabwriter.NewWriter(g.stdout, 0, 4, 2, ' ', 0)
				fmt.Fprintln(tw, "NAME\tROLE\tCREATED\tLAST USED\tEXPIRES")
				for _, t := range toks {
					used, exp := "never", "never"
					if t.LastUsedAt != nil {
						used = t.LastUsedAt.Format(time.RFC3339)
					}
					if t.ExpiresAt != nil {
						exp = t.ExpiresAt.Format(time.RFC3339)
					}
					fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", t.Name, t.Role, t.CreatedAt.Format(time.RFC3339), used, exp)
				}
				return tw.Flush()
			})
		},
	}
	revoke := &cobra.Command{
		Use: "revoke NAME", Short: "Revoke a token", Args: args(cobra.ExactArgs(1)),
		RunE: func(cmd *cobra.Command, a []string) error {
			return g.withStore(cmd.Context(), func(st *store.Store) error {
				return badInput(auth.NewTokens(st).Revoke(cmd.Context(), a[0]))
			})
		},
	}
	cmd.AddCommand(create, list, revoke)
	return cmd
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

func newImagesCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{Use: "images", Short: "Images pushed to the registry and their scans"}
	var repository string
	list := &cobra.Command{
		Use: "list [--repository R]", Short: "List images with their scan status and counts", Args: args(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error {
			return g.withStore(cmd.Context(), func(st *store.Store) error {
				imgs, err := scanner.ListImages(cmd.Context(), st, repository)
				if err != nil {
					return internalError{err}
				}
				used, err := deploy.WithUse(cmd.Context(), st, imgs)
				if err != nil {
					return internalError{err}
				}
				if g.structured() {
					return g.write(used)
				}
				tw := tabwriter.NewWriter(g.stdout, 0, 4, 2, ' ', 0)
				fmt.Fprintln(tw, "REPOSITORY\tTAGS\tDIGEST\tPUSHED\tSCAN\tCRITICAL\tHIGH\tMEDIUM\tLOW\tUNKNOWN\tFIXABLE\tRUNNING")
				for _, im := range used {
					running := "-"
					if im.Tasks > 0 {
						running = fmt.Sprintf("%d (%s)", im.Tasks, strings.Join(im.Services, ","))
					}
					fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%d\t%d\t%d\t%d\t%d\t%d\t%s\n", im.Repository, strings.Join(im.Tags, ","),
						shortDigest(im.Digest), im.PushedAt.Format(time.RFC3339), im.ScanStatus,
						im.Summary.Critical, im.Summary.High, im.Summary.Medium, im.Summary.Low, im.Summary.Unknown, im.Fixable.Total, running)
				}
				return tw.Flush()
			})
		},
	}
	list.Flags().StringVar(&repository, "repository", "", "only this repository")
	cmd.AddCommand(list)
	return cmd
}

func shortDigest(d string) string {
	if len(d) > 19 {
		return d[:19]
	}
	return d
}

func newFindingsCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "findings IMAGE",
		Short: "Show the latest findings of an image in the registry",
		Long: `Findings prints the latest scan report of an image pushed to scangate's
registry, named REPOSITORY@DIGEST or REPOSITORY:TAG, in any --format scan
writes (table, json, sarif, cyclonedx, spdx). It reads the stored result:
no pull, no new scan.`,
		Example: "  scangate findings app:1\n  scangate findings app@sha256:4f1c... --format json",
		Args:    args(cobra.ExactArgs(1)),
		RunE: func(cmd *cobra.Command, a []string) error {
			format, err := report.ParseFormat(g.format)
			if err != nil {
				return usageError{err}
			}
			return g.withStore(cmd.Context(), func(st *store.Store) error {
				r, err := scanner.Findings(cmd.Context(), st, a[0])
				if errors.Is(err, scanner.ErrNoImage) || errors.Is(err, scanner.ErrNotScanned) {
					return usageError{err}
				}
				if err != nil {
					return internalError{err}
				}
				if err := g.writeReport(r, format, ""); err != nil || format != report.Table {
					return err
				}
				// Which running tasks this image's findings concern.
				inUse, err := deploy.InUse(cmd.Context(), st)
				if err != nil {
					return internalError{err}
				}
				if u := inUse[r.Image.Digest]; u != nil {
					_, err = fmt.Fprintf(g.stdout, "\nIn use by %d running tasks of %s.\n", u.Tasks, strings.Join(u.Services, ", "))
				}
				return err
			})
		},
	}
}

func newEventsCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{Use: "events", Short: "Read the event log, replay events and dead letters"}
	var follow bool
	var after int64
	tail := &cobra.Command{
		Use:   "tail [--follow]",
		Short: "Print logged events as JSON lines, oldest first",
		Args:  args(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error {
			return g.withStore(cmd.Context(), func(st *store.Store) error {
				return g.tail(cmd.Context(), st, after, follow)
			})
		},
	}
	tail.Flags().BoolVarP(&follow, "follow", "f", false, "keep printing new events until interrupted")
	tail.Flags().Int64Var(&after, "after", 0, "start after this sequence number")

	var since, until, rule string
	var deadLetters bool
	var ids []int64
	replay := &cobra.Command{
		Use:   "replay (--since TIME [--until TIME] [--rule NAME] | --dead-letters [--id N]...)",
		Short: "Route logged events again, or deliver dead letters again",
		Long: `Replay sends events again. With --since, the logged events from --since to
--until (RFC 3339 times, or durations back from now such as 2h) are routed
again, to every rule or to --rule only, as EventBridge's archive replay does.
With --dead-letters, deliveries that failed for their whole retry window are
tried again (all pending ones, or those --id names), with a new window. The
server does the work when it runs.`,
		Args: args(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error {
			if deadLetters == (since != "") {
				return usageError{errors.New("give either --since or --dead-letters")}
			}
			return g.withBus(cmd.Context(), func(bus *events.Bus) error {
				var n int
				var refused []events.Refusal
				var err error
				if deadLetters {
					n, refused, err = bus.ReplayDeadLetters(cmd.Context(), ids)
				} else {
					var from, to time.Time
					if from, err = parseWhen(since, time.Now()); err != nil {
						return usageError{fmt.Errorf("--since: %w", err)}
					}
					to = time.Now()
					if until != "" {
						if to, err = parseWhen(until, time.Now()); err != nil {
							return usageError{fmt.Errorf("--until: %w", err)}
						}
					}
					n, err = bus.ReplayEvents(cmd.Context(), from, to, rule)
					if errors.Is(err, events.ErrNoRule) {
						return usageError{err}
					}
				}
				if err != nil {
					return internalError{err}
				}
				for _, r := range refused {
					fmt.Fprintf(g.stderr, "dead letter %d not replayed: %s\n", r.ID, r.Reason)
				}
				_, err = fmt.Fprintf(g.stdout, "queued %d for delivery\n", n)
				return err
			})
		},
	}
	rf := replay.Flags()
	rf.StringVar(&since, "since", "", "replay events logged from this time (RFC 3339, or a duration ago: 2h)")
	rf.StringVar(&until, "until", "", "up to this time (default now)")
	rf.StringVar(&rule, "rule", "", "only to this rule")
	rf.BoolVar(&deadLetters, "dead-letters", false, "deliver the dead-letter list again")
	rf.Int64SliceVar(&ids, "id", nil, "only these dead letters")

	var pending bool
	dead := &cobra.Command{
		Use: "dead-letters", Short: "List deliveries that failed for their whole retry window", Args: args(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error {
			return g.withBus(cmd.Context(), func(bus *events.Bus) error {
				list, err := bus.DeadLetters(cmd.Context(), pending)
				if err != nil {
					return internalError{err}
				}
				for i := range list {
					if list[i].Target.Secret != "" {
						list[i].Target.Secret = "********"
					}
				}
				if g.structured() {
					return g.write(orEmpty(list))
				}
				tw := tabwriter.NewWriter(g.stdout, 0, 4, 2, ' ', 0)
				fmt.Fprintln(tw, "ID\tEVENT\tRULE\tTARGET\tATTEMPTS\tFAILED\tREPLAYED\tERROR")
				for _, d := range list {
					replayed := "-"
					if d.ReplayedAt != nil {
						replayed = d.ReplayedAt.Format(time.RFC3339)
					}
					fmt.Fprintf(tw, "%d\t%s\t%s\t%s\t%d\t%s\t%s\t%s\n", d.ID, d.EventID, d.Rule, targetName(d.Target),
						d.Attempts, d.FailedAt.Format(time.RFC3339), replayed, d.Error)
				}
				return tw.Flush()
			})
		},
	}
	dead.Flags().BoolVar(&pending, "pending", false, "leave out the ones replayed")
	cmd.AddCommand(tail, replay, dead)
	return cmd
}

func targetName(t events.Target) string {
	if t.Webhook != "" {
		return t.Webhook
	}
	return "handler:" + t.Handler
}

// parseWhen reads an RFC 3339 time or a duration before now.
func parseWhen(s string, now time.Time) (time.Time, error) {
	if t, err := time.Parse(time.RFC3339, s); err == nil {
		return t, nil
	}
	d, err := time.ParseDuration(s)
	if err != nil || d < 0 {
		return time.Time{}, fmt.Errorf("%q is neither an RFC 3339 time nor a duration such as 2h", s)
	}
	return now.Add(-d), nil
}

func (g *globals) tail(ctx context.Context, st *store.Store, after int64, follow bool) error {
	for {
		batch, err := events.ListLog(ctx, st, after, 500)
		if err != nil {
			return internalError{err}
		}
		for _, l := range batch {
			if err := writeJSONLine(g.stdout, l.Event); err != nil {
				return err
			}
			after = l.Seq
		}
		if len(batch) == 500 {
			continue
		}
		if !follow {
			return nil
		}
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(500 * time.Millisecond):
		}
	}
}

// withBus gives fn a bus that can queue work for the server.
func (g *globals) withBus(ctx context.Context, fn func(*events.Bus) error) error {
	return g.withJobs(ctx, func(_ *store.Store, _ *jobs.Client, bus *events.Bus) error { return fn(bus) })
}

// withJobs gives fn the store, an insert-only job client and a bus: the
// commands record and queue, and the server does the work.
func (g *globals) withJobs(ctx context.Context, fn func(*store.Store, *jobs.Client, *events.Bus) error) error {
	return g.withStore(ctx, func(st *store.Store) error {
		if err := jobs.Migrate(ctx, st); err != nil {
			return internalError{err}
		}
		client, err := jobs.New(st, nil, jobs.Config{})
		if err != nil {
			return internalError{err}
		}
		return fn(st, client, events.NewBus(st, client, events.BusOptions{}))
	})
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
