package cli

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/scangate/scangate/internal/events"
)

// loggedEvent is an entry of the event log as the API gives it.
type loggedEvent struct {
	Seq   int64           `json:"seq"`
	Event events.Envelope `json:"event"`
}

// eventPage is how many events one call of the log asks for.
const eventPage = 1000

func newEventsCmd(g *globals) *cobra.Command {
	var sf serverFlags
	cmd := &cobra.Command{Use: "events", Short: "Read the event log, replay events and dead letters", Long: "The event log, its replays and the dead-letter list." + clientHelp}
	sf.add(cmd)
	var follow bool
	var after int64
	var last int
	var since string
	var types []string
	tail := &cobra.Command{
		Use:   "tail [-n N] [--since 1h] [--type Scan]... [--follow]",
		Short: "Print logged events, oldest first, with their sequence numbers",
		Long: `Tail prints the event log, oldest first: a table of sequence number, time,
type, source, resources and detail (one line each), or with --format json
one JSON object per line ({"seq": N, "event": {...}}, the API's entries).
-n keeps the last N (at most 1000), --since those logged since a time or a duration ago,
--type those of a detail type (repeatable); --follow keeps printing new ones
until interrupted, and --after N starts after a sequence number seen.` + clientHelp,
		Example: "  scangate events tail -n 20 --since 1h --type Scan\n  scangate --format json events tail --follow",
		Args:    args(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error {
			if last < 0 {
				return usageError{fmt.Errorf("-n %d: want a number of events", last)}
			}
			var from time.Time
			if since != "" {
				var err error
				if from, err = parseWhen(since, time.Now()); err != nil {
					return usageError{fmt.Errorf("--since: %w", err)}
				}
			}
			c, err := g.apiClient(&sf)
			if err != nil {
				return err
			}
			q := url.Values{"type": types}
			if !from.IsZero() {
				q.Set("since", from.UTC().Format(time.RFC3339))
			}
			return g.tail(cmd.Context(), c, after, last, q, follow)
		},
	}
	tf := tail.Flags()
	tf.BoolVarP(&follow, "follow", "f", false, "keep printing new events until interrupted")
	tf.Int64Var(&after, "after", 0, "start after this sequence number")
	tf.IntVarP(&last, "lines", "n", 0, "only the last N events (0: all)")
	tf.StringVar(&since, "since", "", "only events logged since this time (RFC 3339, or a duration ago: 1h)")
	tf.StringArrayVar(&types, "type", nil, "only events of this detail type, such as Scan or \"Image Push\" (repeatable)")

	var until, rule string
	var deadLetters bool
	var ids []int64
	replay := &cobra.Command{
		Use:   "replay (--since TIME [--until TIME] [--rule NAME] | --dead-letters [--id N]...)",
		Short: "Route logged events again, or deliver dead letters again (admin)",
		Long: `Replay sends events again. With --since, the logged events from --since to
--until (RFC 3339 times, or durations back from now such as 2h) are routed
again, to every rule or to --rule only, as EventBridge's archive replay does.
With --dead-letters, deliveries that failed for their whole retry window are
tried again (all pending ones, or those --id names), with a new window.` + clientHelp,
		Args: args(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error {
			if deadLetters == (since != "") {
				return usageError{errors.New("give either --since or --dead-letters")}
			}
			c, err := g.apiClient(&sf)
			if err != nil {
				return err
			}
			var out struct {
				Replayed int              `json:"replayed"`
				Refused  []events.Refusal `json:"refused"`
			}
			if deadLetters {
				err = c.call(cmd.Context(), http.MethodPost, pathOf("dead-letters", "replay"), nil, map[string]any{"ids": orEmpty(ids)}, &out)
			} else {
				now := time.Now()
				from, err := parseWhen(since, now)
				if err != nil {
					return usageError{fmt.Errorf("--since: %w", err)}
				}
				to := now
				if until != "" {
					if to, err = parseWhen(until, now); err != nil {
						return usageError{fmt.Errorf("--until: %w", err)}
					}
				}
				body := map[string]any{"since": from, "until": to}
				if rule != "" {
					body["rule"] = rule
				}
				err = c.call(cmd.Context(), http.MethodPost, pathOf("events", "replay"), nil, body, &out)
			}
			if err != nil {
				return err
			}
			if g.structured() {
				out.Refused = orEmpty(out.Refused)
				return g.write(out)
			}
			for _, r := range out.Refused {
				fmt.Fprintf(g.stderr, "dead letter %d not replayed: %s\n", r.ID, r.Reason)
			}
			_, err = fmt.Fprintf(g.stdout, "queued %d for delivery\n", out.Replayed)
			return err
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
		Use: "dead-letters", Short: "List deliveries that failed for their whole retry window",
		Long: "Dead-letters lists the deliveries that failed for their whole retry window." + clientHelp,
		Args: args(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := g.apiClient(&sf)
			if err != nil {
				return err
			}
			q := url.Values{}
			if pending {
				q.Set("pending", "true")
			}
			var out struct {
				DeadLetters []events.DeadLetter `json:"deadLetters"`
			}
			if err := c.call(cmd.Context(), http.MethodGet, pathOf("dead-letters"), q, nil, &out); err != nil {
				return err
			}
			if g.structured() {
				return g.write(orEmpty(out.DeadLetters))
			}
			tw := tabwriter.NewWriter(g.stdout, 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "ID\tEVENT\tRULE\tTARGET\tATTEMPTS\tFAILED\tREPLAYED\tERROR")
			for _, d := range out.DeadLetters {
				fmt.Fprintf(tw, "%d\t%s\t%s\t%s\t%d\t%s\t%s\t%s\n", d.ID, d.EventID, d.Rule, targetName(d.Target),
					d.Attempts, d.FailedAt.Format(time.RFC3339), whenPtr(d.ReplayedAt), d.Error)
			}
			return tw.Flush()
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

// tail prints the log after seq that filter (the API's type and since
// parameters) keeps: with last > 0 only the last ones there now, then,
// with follow, what comes. The server filters, so -n 20 of a long log is
// one request.
func (g *globals) tail(ctx context.Context, c *apiClient, after int64, last int, filter url.Values, follow bool) error {
	var tw *tabwriter.Writer
	if !g.structured() {
		tw = tabwriter.NewWriter(g.stdout, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "SEQ\tTIME\tTYPE\tSOURCE\tRESOURCES\tDETAIL")
	}
	print := func(l loggedEvent) error {
		if tw == nil {
			if g.format == formatYAML {
				return writeYAML(g.stdout, []loggedEvent{l})
			}
			return writeJSONLine(g.stdout, l)
		}
		detail := string(l.Event.Detail)
		if !g.wide() {
			detail = oneLine(detail, 160)
		}
		fmt.Fprintf(tw, "%d\t%s\t%s\t%s\t%s\t%s\n", l.Seq, l.Event.Time.UTC().Format(time.RFC3339), l.Event.DetailType, l.Event.Source,
			orDash(joinShort(l.Event.Resources)), detail)
		return nil
	}
	for first := true; ; first = false {
		var page struct {
			Events []loggedEvent `json:"events"`
		}
		q := url.Values{"after": {strconv.FormatInt(after, 10)}, "limit": {strconv.Itoa(eventPage)}}
		for k, v := range filter {
			q[k] = v
		}
		if first && last > 0 {
			q.Set("limit", strconv.Itoa(min(last, eventPage)))
			q.Set("tail", "true")
		}
		if err := c.call(ctx, http.MethodGet, pathOf("events"), q, nil, &page); err != nil {
			if errors.Is(err, context.Canceled) {
				return nil
			}
			return err
		}
		for _, l := range page.Events {
			after = max(after, l.Seq)
			if err := print(l); err != nil {
				return err
			}
		}
		if tw != nil {
			if err := tw.Flush(); err != nil {
				return err
			}
		}
		if len(page.Events) == eventPage && !(first && last > 0) {
			continue
		}
		if !follow {
			return nil
		}
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(time.Second):
		}
	}
}

// joinShort joins resources, shortening digests.
func joinShort(rs []string) string {
	out := make([]string, len(rs))
	for i, r := range rs {
		if name, d, ok := strings.Cut(r, "@"); ok {
			r = name + "@" + shortDigest(d)
		}
		out[i] = r
	}
	return strings.Join(out, ",")
}
