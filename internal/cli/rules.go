package cli

import (
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/spf13/cobra"

	"github.com/scangate/scangate/internal/events"
)

func newRulesCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "rules",
		Short: "Work with event rules and their EventBridge-style patterns",
	}
	cmd.AddCommand(newRulesTestCmd(g))
	return cmd
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
	if _, err := events.Parse(eventJSON); err != nil {
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
