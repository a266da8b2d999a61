package cli

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"github.com/scangate/scangate/internal/egress"
	"github.com/scangate/scangate/internal/events"
	"github.com/scangate/scangate/internal/store"
)

func newRulesCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "rules",
		Short: "Work with event rules and their EventBridge-style patterns",
	}
	cmd.AddCommand(newRulesTestCmd(g), newRulesPutCmd(g), newRulesListCmd(g), newRulesDeleteCmd(g))
	return cmd
}

func newRulesPutCmd(g *globals) *cobra.Command {
	var file, pattern, secret, handler string
	var webhooks, allowPrivate []string
	cmd := &cobra.Command{
		Use:   "put NAME (--file RULE.json | --pattern PATTERN --webhook URL [--secret S])",
		Short: "Create or replace a rule",
		Long: `Put stores a rule: an event pattern and up to 5 targets. Each event the
pattern matches is delivered to every target: a webhook gets a POST of the
event with the header X-Scangate-Signature-256 (sha256=HMAC-SHA256 of the body
under --secret), retried with exponential backoff for the server's
--delivery-retry-window, then kept in the dead-letter list.

--file takes the API's body: {"pattern": {...}, "targets": [{"id": "...",
"webhook": "https://...", "secret": "..."}]}. PATTERN is JSON or @FILE.

The webhook's URL and secret are sealed at rest with the data folder's keys
(scangate key rotate). A webhook on a loopback, link-local or private address
is refused unless --allow-private-targets lists it; the server checks the
address of each delivery against its own --allow-private-targets.`,
		Example: `  scangate rules put critical --pattern '{"detail-type": ["Scan"], "detail": {"finding-severity-counts": {"CRITICAL": [{"numeric": [">", 0]}]}}}' \
      --webhook http://127.0.0.1:9000/hook --secret s3cret`,
		Args: args(cobra.ExactArgs(1)),
		RunE: func(cmd *cobra.Command, a []string) error {
			rule, err := ruleFromFlags(a[0], file, pattern, webhooks, secret, handler)
			if err != nil {
				return usageError{err}
			}
			allow, err := egress.ParseAllow(allowPrivate)
			if err != nil {
				return usageError{err}
			}
			if err := events.CheckTargets(cmd.Context(), egress.New(allow), rule); err != nil {
				return usageError{err}
			}
			return g.withStore(cmd.Context(), func(st *store.Store) error {
				if err := events.NewRules(st).Put(cmd.Context(), rule); err != nil {
					return internalError{err}
				}
				return nil
			})
		},
	}
	f := cmd.Flags()
	f.StringVarP(&file, "file", "f", "", "the rule as JSON (the API's body)")
	f.StringVar(&pattern, "pattern", "", "the event pattern: JSON text, or @FILE")
	f.StringArrayVar(&webhooks, "webhook", nil, "a webhook URL to deliver to (repeatable)")
	f.StringVar(&secret, "secret", "", "the secret that signs webhook deliveries")
	f.StringVar(&handler, "handler", "", "a built-in handler to deliver to")
	f.StringSliceVar(&allowPrivate, "allow-private-targets", nil, "prefixes of loopback, link-local or private addresses a webhook may be on (the server's setting of that name decides at delivery)")
	return cmd
}

func ruleFromFlags(name, file, pattern string, webhooks []string, secret, handler string) (events.Rule, error) {
	if file != "" {
		if pattern != "" || len(webhooks) > 0 || handler != "" {
			return events.Rule{}, errors.New("--file holds the whole rule: give no --pattern, --webhook or --handler with it")
		}
		data, err := readSmallFile(file)
		if err != nil {
			return events.Rule{}, fmt.Errorf("--file: %w", err)
		}
		return events.ParseRule(name, bytes.NewReader(data))
	}
	p, err := readJSONArg("--pattern", pattern, events.MaxPatternSize)
	if err != nil {
		return events.Rule{}, err
	}
	r := events.Rule{Name: name, Pattern: p}
	for i, u := range webhooks {
		r.Targets = append(r.Targets, events.Target{ID: fmt.Sprint(i + 1), Webhook: u, Secret: secret})
	}
	if handler != "" {
		r.Targets = append(r.Targets, events.Target{ID: handler, Handler: handler})
	}
	return r, r.Check()
}

func newRulesListCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use: "list", Short: "List the stored rules", Args: args(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error {
			return g.withStore(cmd.Context(), func(st *store.Store) error {
				rules, err := events.NewRules(st).List(cmd.Context())
				if err != nil {
					return internalError{err}
				}
				for i := range rules {
					for j := range rules[i].Targets {
						if rules[i].Targets[j].Secret != "" {
							rules[i].Targets[j].Secret = "********"
						}
					}
				}
				if g.structured() {
					return g.write(orEmpty(rules))
				}
				tw := tabwriter.NewWriter(g.stdout, 0, 4, 2, ' ', 0)
				fmt.Fprintln(tw, "NAME\tTARGETS\tPATTERN")
				for _, r := range rules {
					var ts []string
					for _, t := range r.Targets {
						ts = append(ts, targetName(t))
					}
					fmt.Fprintf(tw, "%s\t%s\t%s\n", r.Name, strings.Join(ts, ","), oneLine(string(r.Pattern), 80))
				}
				return tw.Flush()
			})
		},
	}
}

func newRulesDeleteCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use: "delete NAME", Short: "Delete a rule", Args: args(cobra.ExactArgs(1)),
		RunE: func(cmd *cobra.Command, a []string) error {
			return g.withStore(cmd.Context(), func(st *store.Store) error {
				err := events.NewRules(st).Delete(cmd.Context(), a[0])
				if errors.Is(err, events.ErrNoRule) {
					return usageError{err}
				}
				return err
			})
		},
	}
}

func newRulesTestCmd(g *globals) *cobra.Command {
	var pattern, event string
	cmd := &cobra.Command{
		Use:   "test --pattern PATTERN --event EVENT",
		Short: "Test whether an event pattern matches an event",
		Long: `Test compiles an event pattern and matches one event against it, as
EventBridge's TestEventPattern does, and prints true or false.

PATTERN and EVENT are JSON text, or @FILE to read a file. The pattern is
EventBridge's pattern language (exact values, prefix, suffix,
equals-ignore-case, anything-but, numeric, exists, wildcard, cidr, $or), of at
most 4096 bytes. The event is an envelope of at most 256 KiB with id, source,
detail-type and time. A pattern or event that is not valid is an error
(exit 2).`,
		Example: `  scangate rules test --pattern '{"source": ["scangate.scanner"]}' --event @scan-event.json
  scangate rules test --pattern @critical.json --event @scan-event.json`,
		Args: args(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error {
			matched, err := testPattern(pattern, event)
			if err != nil {
				return err
			}
			_, err = fmt.Fprintln(g.stdout, matched)
			return err
		},
	}
	f := cmd.Flags()
	f.StringVar(&pattern, "pattern", "", "the event pattern: JSON text, or @FILE")
	f.StringVar(&event, "event", "", "the event: JSON text, or @FILE")
	for _, name := range []string{"pattern", "event"} {
		if err := cmd.MarkFlagRequired(name); err != nil {
			panic(err) // the flag is defined just above
		}
	}
	return cmd
}

// testPattern compiles the pattern, checks the event's envelope, and
// matches. Every failure is the caller's input: a usage error.
func testPattern(patternArg, eventArg string) (bool, error) {
	patternJSON, err := readJSONArg("--pattern", patternArg, events.MaxPatternSize)
	if err != nil {
		return false, err
	}
	eventJSON, err := readJSONArg("--event", eventArg, events.MaxEventSize)
	if err != nil {
		return false, err
	}
	p, err := events.CompilePattern(patternJSON)
	if err != nil {
		return false, usageError{fmt.Errorf("--pattern%s: %w", fileNote(patternArg), err)}
	}
	if err := events.CheckEvent(eventJSON); err != nil {
		return false, usageError{fmt.Errorf("--event%s: %w", fileNote(eventArg), err)}
	}
	matched, err := p.Match(eventJSON)
	if err != nil {
		return false, usageError{fmt.Errorf("--event%s: %w", fileNote(eventArg), err)}
	}
	return matched, nil
}

// readJSONArg returns a flag's JSON: the text itself, or with @FILE the
// file's content, which may have at most limit bytes.
func readJSONArg(flag, value string, limit int64) ([]byte, error) {
	path, isFile := strings.CutPrefix(value, "@")
	if !isFile {
		return []byte(value), nil
	}
	if path == "" {
		return nil, usageError{fmt.Errorf("%s @: name a file after the @", flag)}
	}
	f, err := os.Open(path)
	if err != nil {
		return nil, usageError{fmt.Errorf("%s: %w", flag, err)}
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, limit+1))
	if err != nil {
		return nil, usageError{fmt.Errorf("%s: reading %s: %w", flag, path, err)}
	}
	if int64(len(data)) > limit {
		return nil, usageError{fmt.Errorf("%s: %s is larger than the %d bytes allowed", flag, path, limit)}
	}
	return data, nil
}

// fileNote names the file a flag's value came from, for error messages.
func fileNote(value string) string {
	if strings.HasPrefix(value, "@") {
		return " " + value
	}
	return ""
}
