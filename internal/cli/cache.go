package cli

import (
	"fmt"
	"path/filepath"

	"github.com/spf13/cobra"

	"github.com/scangate/scangate/internal/layercache"
)

// layerCacheFlag is the bound on the layer cache that scan and server
// share: 0 turns the cache off.
func layerCacheFlag(cmd *cobra.Command, v *int64) {
	cmd.Flags().Int64Var(v, "layer-cache-bytes", layercache.DefaultMaxBytes,
		"keep the unpacked package files of scanned layers in <data-dir>/layercache, up to this many bytes (least recently used go first); 0: no cache")
}

// openLayerCache opens the data folder's layer cache, or none when max is 0.
func (g *globals) openLayerCache(max int64) (*layercache.Cache, error) {
	if max <= 0 {
		return nil, nil
	}
	c, err := layercache.Open(filepath.Join(g.dataDir, layercache.Dir), max)
	if err != nil {
		return nil, internalError{err}
	}
	return c, nil
}

func newCacheCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "cache",
		Short: "The layer cache: what scans keep of each layer they read (local: the data folder)",
		Long: `Scans keep each layer's unpacked package files in <data-dir>/layercache, keyed by
the layer's DiffID and the extractors' versions, so that an image rebuilt on
the same base costs only its new layers. For an image of the local Docker
Engine (docker:NAME) it also keeps the image's config and manifest, so that
scanning that image again does not export it from the engine unless a layer
is missing. The cache is bounded (--layer-cache-bytes of scan and server);
the records used least recently go first.`,
	}
	var keep int64
	prune := &cobra.Command{
		Use:   "prune",
		Short: "Remove cached layers, least recently used first",
		Example: "  scangate cache prune                       # empty the cache\n" +
			"  scangate cache prune --keep-bytes 500000000  # keep the most recently used 500 MB",
		Args: args(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error {
			if keep < 0 {
				return usageError{fmt.Errorf("--keep-bytes %d: must be 0 or more", keep)}
			}
			c, err := layercache.Open(filepath.Join(g.dataDir, layercache.Dir), 0)
			if err != nil {
				return internalError{err}
			}
			removed, err := c.Prune(keep)
			if err != nil {
				return internalError{err}
			}
			left, err := c.Usage()
			if err != nil {
				return internalError{err}
			}
			if g.structured() {
				return g.write(map[string]any{"removed": usageJSON(removed), "left": usageJSON(left)})
			}
			_, err = fmt.Fprintf(g.stdout, "removed %d cached layers (%s); %d left (%s)\n",
				removed.Records, bytesText(removed.Bytes), left.Records, bytesText(left.Bytes))
			return err
		},
	}
	prune.Flags().Int64Var(&keep, "keep-bytes", 0, "keep the most recently used layers up to this many bytes")
	status := &cobra.Command{
		Use:   "status",
		Short: "How many layers the cache holds, and their size",
		Args:  args(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := layercache.Open(filepath.Join(g.dataDir, layercache.Dir), 0)
			if err != nil {
				return internalError{err}
			}
			u, err := c.Usage()
			if err != nil {
				return internalError{err}
			}
			if g.structured() {
				return g.write(usageJSON(u))
			}
			_, err = fmt.Fprintf(g.stdout, "%d cached layers, %s, in %s\n", u.Records, bytesText(u.Bytes), filepath.Join(g.dataDir, layercache.Dir))
			return err
		},
	}
	cmd.AddCommand(prune, status)
	return cmd
}

type cacheUsage struct {
	Layers int   `json:"layers"`
	Bytes  int64 `json:"bytes"`
}

func usageJSON(u layercache.Usage) cacheUsage { return cacheUsage{Layers: u.Records, Bytes: u.Bytes} }

func bytesText(n int64) string {
	switch {
	case n >= 1<<30:
		return fmt.Sprintf("%.1f GiB", float64(n)/(1<<30))
	case n >= 1<<20:
		return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20))
	case n >= 1<<10:
		return fmt.Sprintf("%.1f KiB", float64(n)/(1<<10))
	}
	return fmt.Sprintf("%d bytes", n)
}
