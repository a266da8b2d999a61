// Package cli holds scangate's commands: flag parsing, output, exit codes.
// Each command is a thin layer over the internal packages that do the work.
package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/scangate/scangate/internal/scan"
	"github.com/scangate/scangate/internal/store"
)

// Exit codes, as the README documents them.
const (
	ExitOK       = 0
	ExitPolicy   = 1
	ExitBadInput = 2
	ExitInternal = 3
)

// formats are the output formats; scan and findings also write sarif,
// cyclonedx and spdx, the others table, wide, json and yaml.
var formats = []string{formatTable, formatWide, formatJSON, formatYAML, "sarif", "cyclonedx", "spdx"}

// globals are the flags every command takes.
type globals struct {
	dataDir  string
	database string // --database: empty for SQLite in dataDir, or postgres://…
	logLevel string
	format   string
	stdout   io.Writer
	stderr   io.Writer
	log      *slog.Logger
}

// Main runs scangate with args (without the program name) and returns the
// process exit code.
func Main(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	g := &globals{stdout: stdout, stderr: stderr}
	root := newRoot(g)
	root.SetArgs(args)
	root.SetOut(stdout)
	root.SetErr(stderr)
	err := root.ExecuteContext(ctx)
	if err == nil {
		return ExitOK
	}
	if !errors.As(err, new(policyFailed)) { // the gate has said why already
		fmt.Fprintf(stderr, "scangate: %v\n", err)
	}
	return exitCode(err)
}

func newRoot(g *globals) *cobra.Command {
	root := &cobra.Command{
		Use:           "scangate",
		Short:         "Build, scan, gate and deploy container images",
		Long:          "scangate is a self-hosted container delivery pipeline in which only images that pass a vulnerability policy reach a running service.",
		SilenceUsage:  true,
		SilenceErrors: true,
		PersistentPreRunE: func(cmd *cobra.Command, _ []string) error {
			if err := applyEnv(cmd); err != nil {
				return usageError{err}
			}
			return g.setup()
		},
	}
	root.SetFlagErrorFunc(func(_ *cobra.Command, err error) error { return usageError{err} })
	pf := root.PersistentFlags()
	pf.StringVar(&g.dataDir, "data-dir", defaultDataDir(), "where scangate keeps its database and registry")
	pf.StringVar(&g.database, "database", "", "empty: SQLite in the data folder; postgres://user:password@host/db: a PostgreSQL database that several servers may share (the server's, and the local commands')")
	pf.StringVar(&g.logLevel, "log-level", "info", "log level: debug, info, warn, error")
	pf.StringVar(&g.format, "format", "table", "output format: table, wide (more columns), json or yaml; scan and findings also write sarif, cyclonedx and spdx")
	root.AddCommand(newVersionCmd(g), newDBCmd(g), newScanCmd(g), newRulesCmd(g), newServerCmd(g), newTokenCmd(g), newImagesCmd(g), newFindingsCmd(g), newEventsCmd(g), newPipelineCmd(g), newExecutionCmd(g), newApprovalCmd(g), newRepoCmd(g),
		newClusterCmd(g), newTaskDefCmd(g), newServiceCmd(g), newTaskCmd(g), newKeyCmd(g), newCacheCmd(g),
		newLoginCmd(g), newContextCmd(g), newWhoamiCmd(g), newGitCredentialCmd(g), newUpCmd(g), newDownCmd(g))
	strictGroups(root)
	return root
}

// strictGroups makes every command that only groups others refuse an
// unknown subcommand (exit 2) and show its help when called alone.
func strictGroups(cmd *cobra.Command) {
	for _, c := range cmd.Commands() {
		if c.HasSubCommands() && c.Run == nil && c.RunE == nil {
			c.Args, c.RunE = noSubcommand, groupRunE
		}
		strictGroups(c)
	}
}

// applyEnv sets every flag the command line left alone from SCANGATE_<FLAG>
// (upper case, dashes as underscores), so that `--data-dir` is also
// SCANGATE_DATA_DIR.
func applyEnv(cmd *cobra.Command) error {
	var errs []string
	cmd.Flags().VisitAll(func(f *pflag.Flag) {
		if f.Changed {
			return
		}
		name := "SCANGATE_" + strings.ToUpper(strings.ReplaceAll(f.Name, "-", "_"))
		v, ok := os.LookupEnv(name)
		if !ok {
			return
		}
		if err := cmd.Flags().Set(f.Name, v); err != nil {
			errs = append(errs, fmt.Sprintf("%s=%q: %v", name, v, err))
		}
	})
	if len(errs) > 0 {
		return fmt.Errorf("environment: %s", strings.Join(errs, "; "))
	}
	return nil
}

func (g *globals) setup() error {
	var level slog.Level
	if err := level.UnmarshalText([]byte(g.logLevel)); err != nil {
		return usageError{fmt.Errorf("--log-level %q: want debug, info, warn or error", g.logLevel)}
	}
	if !slices.Contains(formats, g.format) {
		return usageError{fmt.Errorf("--format %q: want one of %s", g.format, strings.Join(formats, ", "))}
	}
	g.log = slog.New(slog.NewTextHandler(g.stderr, &slog.HandlerOptions{Level: level}))
	scan.SetLogger(g.log)
	return nil
}

// defaultDataDir follows the XDG base directory spec.
func defaultDataDir() string {
	if d := os.Getenv("XDG_DATA_HOME"); d != "" {
		return filepath.Join(d, "scangate")
	}
	home, err := os.UserHomeDir()
	if err != nil {
		return ".scangate"
	}
	return filepath.Join(home, ".local", "share", "scangate")
}

// openStore opens the database: --database, else SQLite in the data directory.
func (g *globals) openStore(ctx context.Context) (*store.Store, error) {
	st, err := store.OpenDatabase(ctx, g.database, g.dataDir)
	if err != nil {
		return nil, internalError{err}
	}
	return st, nil
}
