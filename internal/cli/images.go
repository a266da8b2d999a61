package cli

import (
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/scangate/scangate/internal/deploy"
	"github.com/scangate/scangate/internal/policy"
	"github.com/scangate/scangate/internal/report"
	"github.com/scangate/scangate/internal/scan"
)

func newImagesCmd(g *globals) *cobra.Command {
	var sf serverFlags
	cmd := &cobra.Command{Use: "images", Short: "Images pushed to the registry and their scans", Long: "Images pushed to scangate's registry, with their scans." + clientHelp}
	sf.add(cmd)
	var repository string
	list := &cobra.Command{
		Use: "list [--repository R]", Short: "List images with their scan status, counts, and why a scan failed",
		Long: "List lists the registry's images, newest push first: the scan's status and counts per severity, the tasks that run each, and why a scan failed." + clientHelp,
		Args: args(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := g.apiClient(&sf)
			if err != nil {
				return err
			}
			imgs, err := c.images(cmd, repositoryOf(repository))
			if err != nil {
				return err
			}
			if g.structured() {
				return g.write(orEmpty(imgs))
			}
			tw := tabwriter.NewWriter(g.stdout, 0, 4, 2, ' ', 0)
			head := "REPOSITORY\tTAGS\tDIGEST\tSCAN\tCRITICAL\tHIGH\tMEDIUM\tLOW\tUNKNOWN\tFIXABLE\tRUNNING"
			if g.wide() {
				head += "\tPUSHED\tSCANNED\tDATABASE"
			}
			fmt.Fprintln(tw, head+"\tERROR")
			for _, im := range imgs {
				running := "-"
				if im.Tasks > 0 {
					running = fmt.Sprintf("%d (%s)", im.Tasks, strings.Join(im.Services, ","))
				}
				digest := shortDigest(im.Digest)
				if g.wide() {
					digest = im.Digest
				}
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%d\t%d\t%d\t%d\t%d\t%d\t%s", im.Repository, orDash(strings.Join(im.Tags, ",")),
					digest, im.ScanStatus, im.Summary.Critical, im.Summary.High, im.Summary.Medium, im.Summary.Low, im.Summary.Unknown, im.Fixable.Total, running)
				if g.wide() {
					fmt.Fprintf(tw, "\t%s\t%s\t%s", im.PushedAt.UTC().Format(time.RFC3339), whenPtr(im.ScannedAt), orDash(shortDigest(im.VulnDBDigest)))
				}
				// Why a scan failed is what a user asks next: say it here.
				fmt.Fprintf(tw, "\t%s\n", orDash(oneLine(im.ScanError, 120)))
			}
			return tw.Flush()
		},
	}
	list.Flags().StringVar(&repository, "repository", "", "only this repository")
	cmd.AddCommand(list)
	return cmd
}

// images lists the registry's images with the tasks that run them.
func (c *apiClient) images(cmd *cobra.Command, repository string) ([]deploy.ImageUse, error) {
	q := url.Values{}
	if repository != "" {
		q.Set("repository", repository)
	}
	var out struct {
		Images []deploy.ImageUse `json:"images"`
	}
	err := c.call(cmd.Context(), http.MethodGet, pathOf("images"), q, nil, &out)
	return out.Images, err
}

func shortDigest(d string) string {
	if len(d) > 19 {
		return d[:19]
	}
	return d
}

// repositoryOf takes an image name as docker push wrote it
// (127.0.0.1:5000/shop/api:1) and returns the repository in scangate's
// registry with its tag or digest (shop/api:1): the host part names the
// registry, which is the server's.
func repositoryOf(name string) string {
	if host, rest, ok := strings.Cut(name, "/"); ok && (strings.ContainsAny(host, ".:") || host == "localhost") {
		return rest
	}
	return name
}

func newFindingsCmd(g *globals) *cobra.Command {
	var sf serverFlags
	var f scanFlags
	cmd := &cobra.Command{
		Use:   "findings IMAGE",
		Short: "Show the latest findings of an image in the registry; --fail-on gates it",
		Long: `Findings prints the latest scan report of an image pushed to scangate's
registry, named REPOSITORY@DIGEST or REPOSITORY:TAG, with or without the
registry's host (as docker push named it), in any --format scan writes
(table, json, yaml, sarif, cyclonedx, spdx). It reads the stored result: no
pull, no new scan.

With --fail-on (and --ignore-unfixed, --ignore-file, --vex) it is scan's gate
for an image already stored: exit 1, with the reasons, when the policy
fails; CI's "may this digest go on?".` + clientHelp,
		Example: "  scangate findings 127.0.0.1:5000/shop/api:1\n  scangate findings shop/api@sha256:4f1c... --fail-on CRITICAL=0,HIGH=0",
		Args:    args(cobra.ExactArgs(1)),
		RunE: func(cmd *cobra.Command, a []string) error {
			format, err := g.reportFormat()
			if err != nil {
				return err
			}
			pol, gate, err := f.policy()
			if err != nil {
				return usageError{err}
			}
			c, err := sf.client(g.stderr)
			if err != nil {
				return err
			}
			name := repositoryOf(a[0])
			var r scan.Report
			if err := c.call(cmd.Context(), http.MethodGet, pathOf("findings"), url.Values{"image": {name}}, nil, &r); err != nil {
				return err
			}
			decision := policy.Evaluate(&r, pol, time.Now()) // marks the suppressed findings in r
			err = g.writeReport(&r, format, f.output)
			if err != nil {
				return err
			}
			if format == report.Table && f.output == "" {
				// Which running tasks this image's findings concern.
				repo, _, _ := strings.Cut(strings.SplitN(name, "@", 2)[0], ":")
				imgs, err := c.images(cmd, repo)
				if err != nil {
					return err
				}
				for _, im := range imgs {
					if im.Digest == r.Image.Digest && im.Tasks > 0 {
						fmt.Fprintf(g.stdout, "\nIn use by %d running tasks of %s.\n", im.Tasks, strings.Join(im.Services, ", "))
					}
				}
			}
			return g.gate(decision, gate, f.suppresses())
		},
	}
	sf.add(cmd)
	fl := cmd.Flags()
	fl.StringVarP(&f.output, "output", "o", "", "write the report to this file instead of standard output")
	fl.StringVar(&f.failOn, "fail-on", "", "fail (exit 1) when more findings than allowed: CRITICAL=0,HIGH=0,MEDIUM=5")
	fl.BoolVar(&f.ignoreUnfixed, "ignore-unfixed", false, "do not count findings without a fixed version")
	fl.StringVar(&f.ignoreFile, "ignore-file", "", "YAML file of findings to ignore (id, package or purl, image, reason, expires)")
	fl.StringVar(&f.vexFile, "vex", "", "OpenVEX document: not_affected and fixed statements suppress findings")
	return cmd
}
