package cli

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/scangate/scangate/internal/feed"
	"github.com/scangate/scangate/internal/server"
	"github.com/scangate/scangate/internal/store"
	"github.com/scangate/scangate/internal/vulndb"
)

func newDBCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "db",
		Short: "Manage the local vulnerability database (local: the data folder)",
		Long:  "The db commands work on the vulnerability database in the data folder (--data-dir): on the server's machine, or on an air-gapped one." + localHelp,
		PersistentPreRunE: func(cmd *cobra.Command, a []string) error {
			if err := cmd.Root().PersistentPreRunE(cmd, a); err != nil {
				return err
			}
			return g.documentFormat()
		},
	}
	cmd.AddCommand(newDBImportCmd(g), newDBUpdateCmd(g), newDBStatusCmd(g), newDBShowCmd(g), newDBAffectedCmd(g))
	return cmd
}

// withDB opens the store and runs fn with its vulnerability database.
func (g *globals) withDB(ctx context.Context, fn func(*vulndb.DB) error) error {
	return g.withExistingStore(ctx, func(st *store.Store) error { return fn(vulndb.New(st)) })
}

// noteQueued says, after a change that queued work for the server (the
// re-evaluation of stored images), when no server runs on the data folder
// to do it.
func (g *globals) noteQueued() {
	if !serverRunning(g.dataDir) {
		fmt.Fprintf(g.stderr, "note: no scangate server is running on %s: the re-evaluation of stored images waits until one starts\n", g.dataDir)
	}
}

// serverRunning reports whether a server holds the data folder's lock
// (see internal/server's lockDataDir).
func serverRunning(dataDir string) bool {
	f, err := os.Open(filepath.Join(dataDir, "server.lock"))
	if err != nil {
		return false
	}
	defer f.Close()
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_SH|syscall.LOCK_NB); err != nil {
		return errors.Is(err, syscall.EWOULDBLOCK)
	}
	_ = syscall.Flock(int(f.Fd()), syscall.LOCK_UN)
	return false
}

// withExistingStore is withStore for the commands that only read or
// change what is there: a data folder without a database is a mistyped
// --data-dir, said so, not a new empty folder made.
func (g *globals) withExistingStore(ctx context.Context, fn func(*store.Store) error) error {
	path := filepath.Join(g.dataDir, store.FileName)
	if _, err := os.Stat(path); g.database == "" && errors.Is(err, fs.ErrNotExist) {
		return usageError{fmt.Errorf("no scangate database in %s (--data-dir, or SCANGATE_DATA_DIR): scangate db import or db update makes one", g.dataDir)}
	}
	return g.withStore(ctx, fn)
}

// withStore opens the store for fn and closes it after, making the data
// folder and its database if there are none.
func (g *globals) withStore(ctx context.Context, fn func(*store.Store) error) (err error) {
	st, err := g.openStore(ctx)
	if err != nil {
		return err
	}
	defer func() { err = errors.Join(err, st.Close()) }()
	return fn(st)
}

func newDBImportCmd(g *globals) *cobra.Command {
	var opts feed.Options
	opts.Limits = feed.DefaultLimits
	cmd := &cobra.Command{
		Use:   "import PATH...",
		Short: "Import feed files, folders and zips (for air-gapped use)",
		Long: `Import reads vulnerability feeds from local files, folders and .zip archives:
OSV records (JSON, or YAML as in PyPA's advisory database; osv.dev's all.zip),
the Debian Security Tracker JSON, Alpine secdb (JSON or YAML), NVD CVE API 2.0
responses or single CVE records, and GitHub advisories as vuln-list stores them.

Each feed found replaces the stored feed of the same name, all in one
transaction: a failed import leaves the database as it was.`,
		Args: args(cobra.MinimumNArgs(1)),
		RunE: func(cmd *cobra.Command, paths []string) error {
			ctx := cmd.Context()
			loaded, err := feed.Load(ctx, paths, "", opts)
			if err != nil {
				return badInput(err)
			}
			return g.withStore(ctx, func(st *store.Store) error {
				reevaluate, err := server.Reevaluation(ctx, st)
				if err != nil {
					return internalError{err}
				}
				if err := vulndb.New(st).Replace(ctx, loaded.Feeds, vulndb.ReplaceOptions{InTx: reevaluate}); err != nil {
					return internalError{err}
				}
				if err := g.reportImport(loaded); err != nil {
					return err
				}
				g.noteQueued()
				return nil
			})
		},
	}
	f := cmd.Flags()
	f.StringVar(&opts.Format, "feed-format", "", "read every file as this format instead of detecting it (osv, ghsa, debian, alpine, nvd)")
	f.Int64Var(&opts.Limits.MaxFileBytes, "max-file-bytes", opts.Limits.MaxFileBytes, "largest file or zip entry to read")
	f.Int64Var(&opts.Limits.MaxTotalBytes, "max-total-bytes", opts.Limits.MaxTotalBytes, "most bytes to read in all, uncompressed")
	f.IntVar(&opts.Limits.MaxFiles, "max-files", opts.Limits.MaxFiles, "most files and zip entries to read")
	return cmd
}

// maxSkipLines bounds how many skipped records a table report lists.
const maxSkipLines = 10

func (g *globals) reportImport(l *feed.Loaded) error {
	if g.structured() {
		type feedOut struct {
			Name    string `json:"name"`
			Format  string `json:"format"`
			Records int    `json:"records"`
			Skipped int    `json:"skipped"`
		}
		out := struct {
			Feeds   []feedOut   `json:"feeds"`
			Skipped []feed.Skip `json:"skipped"`
			Files   int         `json:"files"`
			Ignored int         `json:"ignored"`
		}{Skipped: l.Skipped, Files: l.Files, Ignored: l.Ignored}
		for _, f := range l.Feeds {
			out.Feeds = append(out.Feeds, feedOut{f.Name, f.Format, len(f.Advisories), f.Skipped})
		}
		return g.write(out)
	}
	for i, s := range l.Skipped {
		if i == maxSkipLines {
			fmt.Fprintf(g.stderr, "skipped: … and %d more\n", len(l.Skipped)-maxSkipLines)
			break
		}
		fmt.Fprintf(g.stderr, "skipped: %s: %s: %s\n", s.File, s.Record, s.Reason)
	}
	tw := tabwriter.NewWriter(g.stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "FEED\tFORMAT\tRECORDS\tSKIPPED")
	records := 0
	for _, f := range l.Feeds {
		fmt.Fprintf(tw, "%s\t%s\t%d\t%d\n", f.Name, f.Format, len(f.Advisories), f.Skipped)
		records += len(f.Advisories)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	_, err := fmt.Fprintf(g.stdout, "imported %d records in %d feeds from %d files; %d skipped, %d files not recognised\n",
		records, len(l.Feeds), l.Files, len(l.Skipped), l.Ignored)
	return err
}

func newDBStatusCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "status",
		Short: "List the stored feeds: records, last update, source, age",
		Args:  args(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx := cmd.Context()
			return g.withDB(ctx, func(db *vulndb.DB) error {
				feeds, err := db.Feeds(ctx)
				if err != nil {
					return internalError{err}
				}
				v, err := db.Version(ctx)
				if err != nil {
					return internalError{err}
				}
				return g.printStatus(feeds, v, time.Now())
			})
		},
	}
}

func (g *globals) printStatus(feeds []vulndb.FeedStatus, v vulndb.Version, now time.Time) error {
	if g.structured() {
		return g.write(struct {
			Version vulndb.Version      `json:"version"`
			Feeds   []vulndb.FeedStatus `json:"feeds"`
		}{v, feeds})
	}
	if len(feeds) == 0 {
		_, err := fmt.Fprintln(g.stdout, "The vulnerability database is empty: run `scangate db update`, or `scangate db import PATH` offline.")
		return err
	}
	tw := tabwriter.NewWriter(g.stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "FEED\tFORMAT\tRECORDS\tSKIPPED\tUPDATED\tAGE\tSOURCE")
	for _, f := range feeds {
		fmt.Fprintf(tw, "%s\t%s\t%d\t%d\t%s\t%s\t%s\n", f.Name, f.Format, f.Records, f.Skipped,
			f.Updated.Format(time.RFC3339), age(now.Sub(f.Updated)), f.Source)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	_, err := fmt.Fprintf(g.stdout, "database %s, built %s\n", v.Digest, v.Built.Format(time.RFC3339))
	return err
}

// age prints a duration as people read ages: "3m", "5h", "2d".
func age(d time.Duration) string {
	switch {
	case d < time.Minute:
		return "just now"
	case d < time.Hour:
		return fmt.Sprintf("%dm", int(d.Minutes()))
	case d < 48*time.Hour:
		return fmt.Sprintf("%dh", int(d.Hours()))
	default:
		return fmt.Sprintf("%dd", int(d.Hours()/24))
	}
}

func newDBShowCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "show ID",
		Short: "Print an advisory with every severity and where each came from",
		Args:  args(cobra.ExactArgs(1)),
		RunE: func(cmd *cobra.Command, a []string) error {
			ctx := cmd.Context()
			return g.withDB(ctx, func(db *vulndb.DB) error {
				advs, err := db.Lookup(ctx, a[0])
				if err != nil {
					return internalError{err}
				}
				if len(advs) == 0 {
					return usageError{fmt.Errorf("no advisory %s in the database", a[0])}
				}
				if g.structured() {
					return g.write(advs)
				}
				return printAdvisories(g.stdout, advs)
			})
		},
	}
}

func printAdvisories(w io.Writer, advs []vulndb.Advisory) error {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	for i, a := range advs {
		if i > 0 {
			fmt.Fprintln(tw)
		}
		fmt.Fprintf(tw, "%s\t(feed %s)\n", a.ID, a.Feed)
		if len(a.Aliases) > 0 {
			fmt.Fprintf(tw, "  aliases\t%s\n", strings.Join(a.Aliases, ", "))
		}
		if a.Summary != "" {
			fmt.Fprintf(tw, "  summary\t%s\n", oneLine(a.Summary, 200))
		}
		for _, t := range []struct {
			name string
			t    time.Time
		}{{"published", a.Published}, {"modified", a.Modified}, {"withdrawn", a.Withdrawn}} {
			if !t.t.IsZero() {
				fmt.Fprintf(tw, "  %s\t%s\n", t.name, t.t.Format(time.RFC3339))
			}
		}
		for _, s := range a.Severities {
			fmt.Fprintf(tw, "  severity\t%s\t%s\n", s.Rating, describeSeverity(s))
		}
		for _, af := range a.Affected {
			fmt.Fprintf(tw, "  affects\t%s %s\t%s\n", af.Ecosystem, af.Package, describeAffected(af))
		}
		if len(a.References) > 0 {
			fmt.Fprintf(tw, "  see\t%s\n", a.References[0])
		}
	}
	return tw.Flush()
}

func describeSeverity(s vulndb.Severity) string {
	var parts []string
	if s.Vector != "" {
		parts = append(parts, fmt.Sprintf("%s %.1f %s", s.Type, s.Score, s.Vector))
	} else {
		parts = append(parts, string(s.Type))
	}
	src := "from " + s.Source
	if s.Type != vulndb.GHSARating && s.Type != vulndb.VendorRating && s.Source != "" {
		if s.Primary {
			src += " (primary)"
		}
	}
	return strings.Join(append(parts, src), ", ")
}

func describeAffected(af vulndb.Affected) string {
	var parts []string
	if af.Status != "" {
		parts = append(parts, string(af.Status))
	}
	if af.Fixed != "" {
		parts = append(parts, "fixed in "+af.Fixed)
	}
	for _, r := range af.Ranges {
		if r.Type == vulndb.RangeGit {
			continue
		}
		var evs []string
		for _, e := range r.Events {
			switch {
			case e.Introduced != "":
				evs = append(evs, ">="+e.Introduced)
			case e.Fixed != "":
				evs = append(evs, "<"+e.Fixed)
			case e.LastAffected != "":
				evs = append(evs, "<="+e.LastAffected)
			case e.Limit != "":
				evs = append(evs, "limit "+e.Limit)
			}
		}
		parts = append(parts, strings.Join(evs, " "))
	}
	if n := len(af.Versions); n > 0 {
		parts = append(parts, fmt.Sprintf("%d listed versions", n))
	}
	if af.Urgency != "" {
		parts = append(parts, "urgency "+af.Urgency)
	}
	return strings.Join(parts, "; ")
}

// oneLine folds s to one line of at most n characters.
func oneLine(s string, n int) string {
	s = strings.Join(strings.Fields(s), " ")
	if r := []rune(s); len(r) > n {
		s = string(r[:n-1]) + "…"
	}
	return s
}

func writeJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}
