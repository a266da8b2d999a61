package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"time"

	"github.com/schollz/progressbar/v3"
	"github.com/spf13/cobra"
	"go.yaml.in/yaml/v3"
	"golang.org/x/term"

	"github.com/scangate/scangate/internal/feed"
	"github.com/scangate/scangate/internal/server"
	"github.com/scangate/scangate/internal/store"
	"github.com/scangate/scangate/internal/vulndb"
)

// feedsFile is the optional list of sources in the data directory.
const feedsFile = "feeds.yaml"

func newDBUpdateCmd(g *globals) *cobra.Command {
	var (
		sourcesPath string
		nvdKey      string
		nvdDelay    time.Duration
		attempts    int
		backoff     time.Duration
		limits      = feed.DefaultLimits
	)
	cmd := &cobra.Command{
		Use:   "update",
		Short: "Download the configured feeds and rebuild the database",
		Long: `Update downloads every configured feed (osv.dev ecosystem zips, Go vulndb,
the Debian tracker JSON, Alpine secdb, the NVD API), with conditional requests
and retries, then stores them all in one transaction: a failed or interrupted
update leaves the previous database whole.

The feeds come from --feeds, else <data-dir>/feeds.yaml, else the built-in list
(shown by --list). A feeds file is a YAML list of {name, url, format, api}.`,
		Args: args(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error {
			sources, err := g.loadSources(sourcesPath)
			if err != nil {
				return usageError{err}
			}
			if list, _ := cmd.Flags().GetBool("list"); list {
				if g.structured() {
					return g.write(sources)
				}
				for _, s := range sources {
					fmt.Fprintf(g.stdout, "%s\t%s\n", s.Name, s.URL)
				}
				return nil
			}
			f := &feed.Fetcher{Client: http.DefaultClient, Attempts: attempts, Backoff: backoff, NVDKey: nvdKey, NVDDelay: nvdDelay}
			if nvdKey != "" && !cmd.Flags().Changed("nvd-delay") {
				f.NVDDelay = 600 * time.Millisecond
			}
			if isTerminal(g.stderr) {
				f.Progress = progress(g.stderr)
			}
			return g.update(cmd.Context(), f, sources, limits)
		},
	}
	fl := cmd.Flags()
	fl.StringVar(&sourcesPath, "feeds", "", "YAML file listing the feeds to download")
	fl.Bool("list", false, "print the feeds an update would download, and stop")
	fl.StringVar(&nvdKey, "nvd-api-key", "", "NVD API key (raises NVD's rate limit)")
	fl.DurationVar(&nvdDelay, "nvd-delay", 6*time.Second, "pause between NVD pages (0.6s by default with a key)")
	fl.IntVar(&attempts, "attempts", 4, "tries per request before a feed fails")
	fl.DurationVar(&backoff, "backoff", time.Second, "wait before the second try, doubling after each")
	fl.Int64Var(&limits.MaxFileBytes, "max-file-bytes", limits.MaxFileBytes, "largest file or zip entry to read")
	fl.Int64Var(&limits.MaxTotalBytes, "max-total-bytes", limits.MaxTotalBytes, "most bytes to read per feed, uncompressed")
	return cmd
}

func (g *globals) loadSources(path string) ([]feed.Source, error) {
	explicit := path != ""
	if !explicit {
		path = g.dataDir + string(os.PathSeparator) + feedsFile
	}
	data, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) && !explicit {
		return feed.DefaultSources, nil
	}
	if err != nil {
		return nil, fmt.Errorf("feeds: %w", err)
	}
	var sources []feed.Source
	if err := yaml.Unmarshal(data, &sources); err != nil {
		return nil, fmt.Errorf("feeds %s: %w", path, err)
	}
	if len(sources) == 0 {
		return nil, fmt.Errorf("feeds %s: no feeds listed", path)
	}
	for i, s := range sources {
		if s.Name == "" || s.URL == "" {
			return nil, fmt.Errorf("feeds %s: entry %d needs a name and a url", path, i+1)
		}
		if s.Format != "" && feed.FormatByName(s.Format) == nil {
			return nil, fmt.Errorf("feeds %s: %s: unknown format %q", path, s.Name, s.Format)
		}
	}
	return sources, nil
}

// update fetches every source into a staging folder, then stores what
// changed in one transaction.
func (g *globals) update(ctx context.Context, f *feed.Fetcher, sources []feed.Source, limits feed.Limits) error {
	return g.withStore(ctx, func(st *store.Store) error {
		db := vulndb.New(st)
		dir, err := os.MkdirTemp(g.dataDir, ".update-")
		if err != nil {
			return internalError{err}
		}
		defer os.RemoveAll(dir)
		f.Dir = dir
		var feeds []vulndb.Feed
		var downloads []vulndb.Download
		unchanged := 0
		for _, src := range sources {
			last, err := db.LastDownload(ctx, src.URL)
			if err != nil {
				return internalError{err}
			}
			got, err := f.Fetch(ctx, src, last)
			if err != nil {
				return internalError{fmt.Errorf("update failed, the database was not changed: %w", err)}
			}
			downloads = append(downloads, got.Download)
			if got.Unchanged() {
				unchanged++
				g.log.Info("feed unchanged", "feed", src.Name)
				continue
			}
			loaded, err := feed.Load(ctx, got.Paths, src.URL, feed.Options{Limits: limits, Format: src.Format})
			if err != nil {
				return internalError{fmt.Errorf("update failed, the database was not changed: feed %q (%s): %w", src.Name, src.URL, err)}
			}
			for _, fd := range loaded.Feeds {
				fd.Merge = got.Incremental
				feeds = append(feeds, fd)
				g.log.Info("feed downloaded", "feed", src.Name, "name", fd.Name, "records", len(fd.Advisories), "skipped", fd.Skipped)
			}
		}
		reevaluate, err := server.Reevaluation(ctx, st)
		if err != nil {
			return internalError{err}
		}
		if err := db.Replace(ctx, feeds, vulndb.ReplaceOptions{Downloads: downloads, InTx: reevaluate}); err != nil {
			return internalError{fmt.Errorf("update failed, the database was not changed: %w", err)}
		}
		v, err := db.Version(ctx)
		if err != nil {
			return internalError{err}
		}
		if _, err = fmt.Fprintf(g.stdout, "updated %d feeds, %d unchanged; database %s\n", len(feeds), unchanged, v.Digest); err != nil {
			return err
		}
		g.noteQueued()
		return nil
	})
}

func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	return ok && term.IsTerminal(int(f.Fd()))
}

func progress(w io.Writer) func(string, int64, io.Reader) io.Reader {
	return func(name string, size int64, body io.Reader) io.Reader {
		bar := progressbar.NewOptions64(size,
			progressbar.OptionSetWriter(w),
			progressbar.OptionSetDescription(name),
			progressbar.OptionShowBytes(true),
			progressbar.OptionClearOnFinish(),
		)
		r := progressbar.NewReader(body, bar)
		return &r
	}
}
