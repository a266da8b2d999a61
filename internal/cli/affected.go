package cli

import (
	"fmt"
	"strings"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"github.com/scangate/scangate/internal/vulndb"
)

func newDBAffectedCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "affected ECOSYSTEM PACKAGE VERSION",
		Short: "List the advisories that affect one package version",
		Long: `Affected asks the database what the scanner asks for each package it finds.
ECOSYSTEM is named as OSV names it: Debian:12, Alpine:v3.20, Go, npm, PyPI,
Maven, crates.io... Distribution packages are matched by source (Debian) or
origin (Alpine) package name.`,
		Example: "  scangate db affected Debian:12 zlib 1:1.2.13.dfsg-1\n  scangate db affected Go golang.org/x/text v0.3.5",
		Args:    args(cobra.ExactArgs(3)),
		RunE: func(cmd *cobra.Command, a []string) error {
			ctx := cmd.Context()
			return g.withDB(ctx, func(db *vulndb.DB) error {
				ms, err := db.Reader().Affected(ctx, a[0], a[1], a[2])
				if err != nil {
					return usageError{err}
				}
				if g.structured() {
					if ms == nil {
						ms = []vulndb.Match{}
					}
					return g.write(ms)
				}
				if len(ms) == 0 {
					_, err := fmt.Fprintf(g.stdout, "no known advisory affects %s %s %s\n", a[0], a[1], a[2])
					return err
				}
				tw := tabwriter.NewWriter(g.stdout, 0, 4, 2, ' ', 0)
				fmt.Fprintln(tw, "ID\tALIASES\tSTATUS\tFIXED IN\tFEED\tSUMMARY")
				for _, m := range ms {
					fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", m.ID, strings.Join(m.Aliases, ","), m.Status,
						strings.Join(m.Fixed, ","), m.Feed, oneLine(m.Summary, 70))
				}
				return tw.Flush()
			})
		},
	}
}
