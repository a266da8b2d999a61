package cli

import (
	"archive/tar"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote/transport"
	"github.com/schollz/progressbar/v3"
	"github.com/spf13/cobra"

	"github.com/scangate/scangate/internal/image"
	"github.com/scangate/scangate/internal/layercache"
	"github.com/scangate/scangate/internal/policy"
	"github.com/scangate/scangate/internal/report"
	"github.com/scangate/scangate/internal/scan"
	"github.com/scangate/scangate/internal/store"
	"github.com/scangate/scangate/internal/vulndb"
)

type scanFlags struct {
	platform       string
	output         string
	failOn         string
	ignoreUnfixed  bool
	ignoreFile     string
	vexFile        string
	severitySource string
	limits         scan.Limits
	layerCache     int64
}

func newScanCmd(g *globals) *cobra.Command {
	f := scanFlags{limits: scan.DefaultLimits}
	cmd := &cobra.Command{
		Use:   "scan IMAGE",
		Short: "Catalog an image's packages, match them against the database, and gate (local)",
		Long: `Scan lists the packages in an image (Debian, Alpine and Red Hat packages, Go
binaries, npm, Python, Java and Rust packages), matches them against the local
vulnerability database, and reports the findings. With --fail-on it is a gate:
exit 1 when the policy fails.

IMAGE is one of:
  127.0.0.1:5000/app:1, host/repo@sha256:...   a registry (credentials from ~/.docker/config.json)
  docker-archive:PATH                          a docker save tarball
  oci-archive:PATH                             a tar of an OCI layout
  oci:DIR[:TAG]                                an OCI layout folder
  docker:NAME                                  an image in the local Docker Engine
  dir:PATH                                     a root filesystem on disk` + localHelp,
		Example: "  scangate scan docker-archive:app.tar --fail-on CRITICAL=0,HIGH=0\n  scangate scan --format sarif --output app.sarif 127.0.0.1:5000/app:1",
		Args:    args(cobra.ExactArgs(1)),
		RunE: func(cmd *cobra.Command, a []string) error {
			return g.scan(cmd.Context(), a[0], f)
		},
	}
	fl := cmd.Flags()
	fl.StringVar(&f.platform, "platform", "linux/amd64", "platform to pick from a multi-platform image")
	fl.StringVarP(&f.output, "output", "o", "", "write the report to this file instead of standard output")
	fl.StringVar(&f.failOn, "fail-on", "", "fail (exit 1) when more findings than allowed: CRITICAL=0,HIGH=0,MEDIUM=5")
	fl.BoolVar(&f.ignoreUnfixed, "ignore-unfixed", false, "do not count findings without a fixed version")
	fl.StringVar(&f.ignoreFile, "ignore-file", "", "YAML file of findings to ignore (id, package or purl, image, reason, expires)")
	fl.StringVar(&f.vexFile, "vex", "", "OpenVEX document: not_affected and fixed statements suppress findings")
	fl.StringVar(&f.severitySource, "severity-source", "nvd", "whose rating counts first: nvd (NVD's CVSS, then GitHub's, then the distribution's) or vendor (the distribution's first)")
	fl.Int64Var(&f.limits.MaxFileBytes, "max-file-bytes", f.limits.MaxFileBytes, "largest file in a layer to unpack")
	fl.Int64Var(&f.limits.MaxLayerBytes, "max-layer-bytes", f.limits.MaxLayerBytes, "most bytes inflated from one layer, and most its files may add up to")
	fl.Int64Var(&f.limits.MaxImageBytes, "max-image-bytes", f.limits.MaxImageBytes, "most bytes inflated from the image's layers (a repeated layer counts once), and most its files may add up to")
	fl.IntVar(&f.limits.MaxLayerFiles, "max-layer-files", f.limits.MaxLayerFiles, "most files in one layer")
	fl.IntVar(&f.limits.MaxImageFiles, "max-image-files", f.limits.MaxImageFiles, "most files in the image")
	fl.IntVar(&f.limits.MaxLayers, "max-layers", f.limits.MaxLayers, "most layers in the image")
	layerCacheFlag(cmd, &f.layerCache)
	return cmd
}

func (g *globals) scan(ctx context.Context, ref string, f scanFlags) error {
	if err := checkScanInput(ref); err != nil {
		return usageError{err}
	}
	format, err := g.reportFormat()
	if err != nil {
		return err
	}
	order, err := scan.ParseSeverityOrder(f.severitySource)
	if err != nil {
		return usageError{err}
	}
	pol, gate, err := f.policy()
	if err != nil {
		return usageError{err}
	}
	platform, err := v1.ParsePlatform(f.platform)
	if err != nil {
		return usageError{fmt.Errorf("--platform: %w", err)}
	}
	return g.withStore(ctx, func(st *store.Store) error {
		db := vulndb.New(st)
		if v, err := db.Version(ctx); err != nil {
			return internalError{err}
		} else if v.Digest == "" {
			return usageError{errors.New("the vulnerability database is empty: run `scangate db update`, or `scangate db import PATH` offline")}
		}
		cache, err := g.openLayerCache(f.layerCache)
		if err != nil {
			return err
		}
		r, err := g.scanImage(ctx, ref, platform, f.limits, cache, st, order)
		if err != nil {
			return err
		}
		decision := policy.Evaluate(r, pol, time.Now()) // marks the suppressed findings in r
		if err := g.writeReport(r, format, f.output); err != nil {
			return err
		}
		return g.gate(decision, gate, f.suppresses())
	})
}

// gate says what a decision of the flags' policy (policy.Evaluate) means:
// exit 1 (policyFailed) with the reasons when it failed. Without
// thresholds it only notes what the suppressions did.
func (g *globals) gate(decision policy.Decision, gate, suppresses bool) error {
	if !gate && !suppresses {
		return nil // no policy to speak of
	}
	for _, n := range decision.Notes {
		fmt.Fprintf(g.stderr, "note: %s\n", n)
	}
	if !gate {
		return nil
	}
	fmt.Fprintln(g.stderr, decision.Summary())
	if !decision.Passed {
		for _, reason := range decision.Reasons {
			fmt.Fprintf(g.stderr, "  %s\n", reason)
		}
		return policyFailed{}
	}
	return nil
}

// policy builds the gate's policy from the flags; gate says whether any
// threshold was asked for.
func (f scanFlags) policy() (policy.Policy, bool, error) {
	p := policy.Policy{IgnoreUnfixed: f.ignoreUnfixed}
	var err error
	if f.failOn != "" {
		if p.Thresholds, err = policy.ParseThresholds(f.failOn); err != nil {
			return p, false, fmt.Errorf("--fail-on: %w", err)
		}
	}
	if f.ignoreFile != "" {
		data, err := readSmallFile(f.ignoreFile)
		if err != nil {
			return p, false, fmt.Errorf("--ignore-file: %w", err)
		}
		if p.Ignores, err = policy.ParseIgnoreFile(data); err != nil {
			return p, false, fmt.Errorf("--ignore-file %s: %w", f.ignoreFile, err)
		}
	}
	if f.vexFile != "" {
		data, err := readSmallFile(f.vexFile)
		if err != nil {
			return p, false, fmt.Errorf("--vex: %w", err)
		}
		if p.VEX, err = policy.ParseVEX(data); err != nil {
			return p, false, fmt.Errorf("--vex %s: %w", f.vexFile, err)
		}
	}
	return p, f.failOn != "", nil
}

// suppresses reports whether any flag can suppress findings.
func (f scanFlags) suppresses() bool {
	return f.ignoreUnfixed || f.ignoreFile != "" || f.vexFile != ""
}

// maxPolicyFile bounds an ignore file or VEX document.
const maxPolicyFile = 8 << 20

func readSmallFile(path string) ([]byte, error) {
	fh, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer fh.Close()
	data, err := io.ReadAll(io.LimitReader(fh, maxPolicyFile+1))
	if err != nil {
		return nil, err
	}
	if len(data) > maxPolicyFile {
		return nil, fmt.Errorf("%s is larger than %d bytes", path, maxPolicyFile)
	}
	return data, nil
}

func (g *globals) scanImage(ctx context.Context, ref string, platform *v1.Platform, limits scan.Limits, cache *layercache.Cache, st *store.Store, order scan.SeverityOrder) (*scan.Report, error) {
	img, err := image.Open(ctx, ref, image.Options{Platform: platform, TempDir: os.TempDir(), MaxLayers: limits.MaxLayers, Cache: cache})
	if err != nil {
		if unavailable(err) {
			return nil, internalError{err}
		}
		return nil, usageError{err}
	}
	defer img.Close()
	info := scan.ImageInfo{Ref: ref, Repository: img.Repository, Tags: img.Tags, Digest: img.Digest, Platform: img.Platform}
	start := time.Now()
	var v1img v1.Image = img.Image
	if isTerminal(g.stderr) {
		bar := progressbar.NewOptions64(-1, progressbar.OptionSetWriter(g.stderr), progressbar.OptionSetDescription("reading "+ref),
			progressbar.OptionShowBytes(true), progressbar.OptionClearOnFinish())
		defer bar.Finish()
		v1img = image.WithProgress(img.Image, func(n int64) { bar.Add64(n) })
	}
	r, err := scan.CatalogWithCache(ctx, v1img, info, limits, cache)
	if errors.Is(err, scan.ErrLimit) || errors.Is(err, scan.ErrInvalid) {
		return nil, usageError{err} // the image's doing: exit 2
	}
	if err != nil {
		return nil, internalError{err}
	}
	r.CreatedAt = start.UTC()
	if err := scan.Match(ctx, r, vulndb.New(st), order); err != nil {
		return nil, internalError{err}
	}
	if err := scan.SaveInventory(ctx, st.Writer(), r); err != nil {
		return nil, internalError{err}
	}
	g.log.Debug("scanned", "image", ref, "packages", len(r.Packages), "findings", len(r.Findings), "took", time.Since(start))
	return r, nil
}

func (g *globals) writeReport(r *scan.Report, format report.Format, output string) error {
	opts := reportOptions{Options: report.Options{Color: output == "" && isTerminal(g.stdout), ToolVersion: version()}}
	opts.YAML = g.format == formatYAML
	if output == "" {
		return writeFormat(g.stdout, r, format, opts)
	}
	if fi, err := os.Stat(output); err == nil && !fi.Mode().IsRegular() {
		// /dev/null, a pipe: write to it, never rename over it.
		return writeTo(output, r, format, opts)
	}
	// Write beside the target and rename, so a failed write leaves no
	// half a report behind.
	tmp, err := os.CreateTemp(filepath.Dir(output), "."+filepath.Base(output)+".*")
	if err != nil {
		return usageError{fmt.Errorf("--output: %w", err)}
	}
	defer os.Remove(tmp.Name())
	if err := writeFormat(tmp, r, format, opts); err != nil {
		tmp.Close()
		return internalError{err}
	}
	if err := tmp.Close(); err != nil {
		return internalError{err}
	}
	if err := os.Rename(tmp.Name(), output); err != nil {
		return internalError{err}
	}
	return nil
}

// reportOptions are report.Options and whether the JSON report is written
// as YAML (--format yaml).
type reportOptions struct {
	report.Options
	YAML bool
}

// reportFormat is the report format of --format: yaml is the JSON report
// as YAML, wide the table.
func (g *globals) reportFormat() (report.Format, error) {
	switch g.format {
	case formatYAML:
		return report.JSON, nil
	case formatWide:
		return report.Table, nil
	}
	f, err := report.ParseFormat(g.format)
	if err != nil {
		return f, usageError{err}
	}
	return f, nil
}

// writeFormat writes r in format, the JSON one as YAML if opts say so.
func writeFormat(w io.Writer, r *scan.Report, format report.Format, opts reportOptions) error {
	if !opts.YAML {
		return report.Write(w, r, format, opts.Options)
	}
	var b bytes.Buffer
	if err := report.Write(&b, r, report.JSON, opts.Options); err != nil {
		return err
	}
	return writeYAML(w, json.RawMessage(b.Bytes()))
}

func writeTo(path string, r *scan.Report, format report.Format, opts reportOptions) error {
	f, err := os.OpenFile(path, os.O_WRONLY, 0)
	if err != nil {
		return usageError{fmt.Errorf("--output: %w", err)}
	}
	if err := writeFormat(f, r, format, opts); err != nil {
		f.Close()
		return internalError{err}
	}
	if err := f.Close(); err != nil {
		return internalError{err}
	}
	return nil
}

// unavailable reports an error of the registry's or the network's making
// (5xx, 429, no connection), as against a reference that is wrong (404) or
// credentials that are (401): exit 3, not 2.
func unavailable(err error) bool {
	var te *transport.Error
	if errors.As(err, &te) {
		return te.StatusCode >= 500 || te.StatusCode == http.StatusTooManyRequests
	}
	// Not net.Error: syscall.Errno satisfies it, so a missing file would
	// count as the network's fault.
	var oe *net.OpError
	var de *net.DNSError
	return errors.As(err, &oe) || errors.As(err, &de)
}

// policyFailed is the gate's verdict: exit 1.
type policyFailed struct{}

func (policyFailed) Error() string { return "policy failed" }

// checkScanInput catches the mistakes a new user makes before the image
// is opened, where they would end in an error about something else: a
// local file or folder named without its kind (which would be looked up
// in a registry), and a docker save tar given as an OCI archive.
func checkScanInput(ref string) error {
	for _, p := range image.Transports {
		if path, ok := strings.CutPrefix(ref, p); ok {
			if p == "oci-archive:" && isDockerSave(path) {
				return fmt.Errorf("%s is a docker save archive, not an OCI one: scan docker-archive:%s", path, path)
			}
			return nil
		}
	}
	fi, err := os.Stat(ref)
	if err != nil {
		return nil // a registry reference
	}
	if fi.IsDir() {
		if _, err := os.Stat(filepath.Join(ref, "oci-layout")); err == nil {
			return fmt.Errorf("%s is a folder on disk: scan oci:%s (an OCI layout)", ref, ref)
		}
		return fmt.Errorf("%s is a folder on disk: scan dir:%s (a root filesystem), or oci:%s (an OCI layout)", ref, ref, ref)
	}
	if isDockerSave(ref) {
		return fmt.Errorf("%s is a file on disk: scan docker-archive:%s (docker save)", ref, ref)
	}
	return fmt.Errorf("%s is a file on disk: scan docker-archive:%s (docker save) or oci-archive:%s (a tar of an OCI layout)", ref, ref, ref)
}

// maxTarProbe bounds the entries isDockerSave reads.
const maxTarProbe = 4096

// isDockerSave reports whether path is a tar with docker save's
// manifest.json and no OCI layout marker.
func isDockerSave(path string) bool {
	f, err := os.Open(path)
	if err != nil {
		return false
	}
	defer f.Close()
	tr := tar.NewReader(f)
	manifest, layout := false, false
	for i := 0; i < maxTarProbe; i++ {
		h, err := tr.Next()
		if err != nil {
			break
		}
		switch strings.TrimPrefix(h.Name, "./") {
		case "manifest.json":
			manifest = true
		case "oci-layout":
			layout = true
		}
	}
	return manifest && !layout
}
