package cli

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"github.com/scangate/scangate/internal/events"
	"github.com/scangate/scangate/internal/events/pattern"
)

func newRulesCmd(g *globals) *cobra.Command {
	var sf serverFlags
	cmd := &cobra.Command{
		Use:   "rules",
		Short: "Work with event rules and their EventBridge-style patterns",
		Long:  "Rules route the server's events to webhooks. put, list and delete are clients of the server; test works here alone." + clientHelp,
	}
	sf.add(cmd)
	cmd.AddCommand(newRulesTestCmd(g), newRulesPutCmd(g, &sf), newRulesListCmd(g, &sf), newRulesDeleteCmd(g, &sf))
	return cmd
}

func newRulesPutCmd(g *globals, sf *serverFlags) *cobra.Command {
	var file, patternArg, secret, handler string
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

The webhook's URL and secret are sealed at rest with the server's keys
(scangate key rotate). A webhook on a loopback, link-local or private address
is refused unless the server's --allow-private-targets lists it; the server
checks it at put time and again at each delivery. Needs an admin token.` + clientHelp,
		Example: `  scangate rules put critical --pattern '{"detail-type": ["Scan"], "detail": {"finding-severity-counts": {"CRITICAL": [{"numeric": [">", 0]}]}}}' \
      --webhook http://127.0.0.1:9000/hook --secret s3cret`,
		Args: args(cobra.ExactArgs(1)),
		RunE: func(cmd *cobra.Command, a []string) error {
			rule, err := ruleFromFlags(a[0], file, patternArg, webhooks, secret, handler)
			if err != nil {
				return usageError{err}
			}
			if len(allowPrivate) > 0 {
				fmt.Fprintln(g.stderr, "note: --allow-private-targets is the server's setting now; the server checks the webhook's address")
			}
			c, err := g.apiClient(sf)
			if err != nil {
				return err
			}
			body := map[string]any{"pattern": rule.Pattern, "targets": rule.Targets}
			if err := c.call(cmd.Context(), http.MethodPut, pathOf("rules", rule.Name), nil, body, nil); err != nil {
				return err
			}
			_, err = fmt.Fprintf(g.stdout, "rule %s stored\n", rule.Name)
			return err
		},
	}
	f := cmd.Flags()
	f.StringVarP(&file, "file", "f", "", "the rule as JSON (the API's body)")
	f.StringVar(&patternArg, "pattern", "", "the event pattern: JSON text, or @FILE")
	f.StringArrayVar(&webhooks, "webhook", nil, "a webhook URL to deliver to (repeatable)")
	f.StringVar(&secret, "secret", "", "the secret that signs webhook deliveries")
	f.StringVar(&handler, "handler", "", "a built-in handler to deliver to")
	f.StringSliceVar(&allowPrivate, "allow-private-targets", nil, "ignored: the server's --allow-private-targets decides")
	_ = f.MarkHidden("allow-private-targets")
	return cmd
}

func ruleFromFlags(name, file, patternArg string, webhooks []string, secret, handler string) (events.Rule, error) {
	if file != "" {
		if patternArg != "" || len(webhooks) > 0 || handler != "" {
			return events.Rule{}, errors.New("--file holds the whole rule: give no --pattern, --webhook or --handler with it")
		}
		data, err := readSmallFile(file)
		if err != nil {
			return events.Rule{}, fmt.Errorf("--file: %w", err)
		}
		return events.ParseRule(name, bytes.NewReader(data))
	}
	p, err := readJSONArg("--pattern", patternArg, pattern.MaxSize)
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

func newRulesListCmd(g *globals, sf *serverFlags) *cobra.Command {
	return &cobra.Command{
		Use: "list", Short: "List the stored rules (admins see webhook URLs whole, others their scheme and host)", Args: args(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := g.apiClient(sf)
			if err != nil {
				return err
			}
			var out struct {
				Rules []events.Rule `json:"rules"`
			}
			if err := c.call(cmd.Context(), http.MethodGet, pathOf("rules"), nil, nil, &out); err != nil {
				return err
			}
			rules := out.Rules
			{
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
			}
		},
	}
}

func newRulesDeleteCmd(g *globals, sf *serverFlags) *cobra.Command {
	return &cobra.Command{
		Use: "delete NAME", Short: "Delete a rule (admin)", Args: args(cobra.ExactArgs(1)),
		RunE: func(cmd *cobra.Command, a []string) error {
			c, err := g.apiClient(sf)
			if err != nil {
				return err
			}
			if err := c.call(cmd.Context(), http.MethodDelete, pathOf("rules", a[0]), nil, nil, nil); err != nil {
				return err
			}
			_, err = fmt.Fprintf(g.stdout, "rule %s deleted\n", a[0])
			return err
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
	patternJSON, err := readJSONArg("--pattern", patternArg, pattern.MaxSize)
	if err != nil {
		return false, err
	}
	eventJSON, err := readJSONArg("--event", eventArg, events.MaxEventSize)
	if err != nil {
		return false, err
	}
	p, err := pattern.Compile(patternJSON)
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
