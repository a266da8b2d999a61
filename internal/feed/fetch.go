package feed

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"time"

	"github.com/scangate/scangate/internal/vulndb"
)

// A Source is one upstream feed that `scangate db update` downloads.
type Source struct {
	// Name is how messages name the feed: "Go vulndb", "Debian tracker".
	Name string `yaml:"name" json:"name"`
	URL  string `yaml:"url" json:"url"`
	// Format forces a format; empty detects it.
	Format string `yaml:"format,omitempty" json:"format,omitempty"`
	// API is "nvd" for the paged NVD CVE API 2.0, "redhat-vex" for Red Hat's
	// VEX archive named by archive_latest.txt, "amazon" for the updateinfo
	// of a repository's mirror.list, "suse-cvrf" for SUSE's CVRF tar.bz2;
	// empty for one file.
	API string `yaml:"api,omitempty" json:"api,omitempty"`
}

// DefaultSources are the feeds an update downloads unless configured
// otherwise: the language ecosystems from osv.dev and Go's own database,
// the distributions' trackers, and NVD for CVSS.
var DefaultSources = []Source{
	{Name: "Go vulndb", URL: "https://vuln.go.dev/vulndb.zip"},
	{Name: "OSV PyPI", URL: "https://osv-vulnerabilities.storage.googleapis.com/PyPI/all.zip"},
	{Name: "OSV npm", URL: "https://osv-vulnerabilities.storage.googleapis.com/npm/all.zip"},
	{Name: "OSV Maven", URL: "https://osv-vulnerabilities.storage.googleapis.com/Maven/all.zip"},
	{Name: "OSV crates.io", URL: "https://osv-vulnerabilities.storage.googleapis.com/crates.io/all.zip"},
	{Name: "OSV RubyGems", URL: "https://osv-vulnerabilities.storage.googleapis.com/RubyGems/all.zip"},
	{Name: "OSV NuGet", URL: "https://osv-vulnerabilities.storage.googleapis.com/NuGet/all.zip"},
	{Name: "OSV Packagist", URL: "https://osv-vulnerabilities.storage.googleapis.com/Packagist/all.zip"},
	{Name: "Debian tracker", URL: "https://security-tracker.debian.org/tracker/data/json", Format: "debian"},
	{Name: "Alpine 3.20 main", URL: "https://secdb.alpinelinux.org/v3.20/main.json", Format: "alpine"},
	{Name: "Alpine 3.20 community", URL: "https://secdb.alpinelinux.org/v3.20/community.json", Format: "alpine"},
	{Name: "Alpine 3.21 main", URL: "https://secdb.alpinelinux.org/v3.21/main.json", Format: "alpine"},
	{Name: "Alpine 3.21 community", URL: "https://secdb.alpinelinux.org/v3.21/community.json", Format: "alpine"},
	{Name: "Alpine 3.22 main", URL: "https://secdb.alpinelinux.org/v3.22/main.json", Format: "alpine"},
	{Name: "Alpine 3.22 community", URL: "https://secdb.alpinelinux.org/v3.22/community.json", Format: "alpine"},
	{Name: "Ubuntu (Canonical's OSV)", URL: "https://osv-vulnerabilities.storage.googleapis.com/Ubuntu/all.zip"},
	{Name: "Red Hat VEX", URL: "https://security.access.redhat.com/data/csaf/v2/vex/archive_latest.txt", Format: "redhat", API: "redhat-vex"},
	{Name: "AlmaLinux errata", URL: "https://osv-vulnerabilities.storage.googleapis.com/AlmaLinux/all.zip"},
	{Name: "Rocky Linux errata", URL: "https://osv-vulnerabilities.storage.googleapis.com/Rocky%20Linux/all.zip"},
	{Name: "Amazon Linux 2 ALAS", URL: "https://cdn.amazonlinux.com/2/core/latest/x86_64/mirror.list", Format: "amazon", API: "amazon"},
	{Name: "Amazon Linux 2023 ALAS", URL: "https://cdn.amazonlinux.com/al2023/core/mirrors/latest/x86_64/mirror.list", Format: "amazon", API: "amazon"},
	{Name: "Wolfi secdb", URL: "https://packages.wolfi.dev/os/security.json", Format: "alpine"},
	{Name: "Chainguard secdb", URL: "https://packages.cgr.dev/chainguard/security.json", Format: "alpine"},
	{Name: "Bottlerocket BRSA", URL: "https://advisories.bottlerocket.aws/updateinfo.xml.gz", Format: "bottlerocket"},
	{Name: "Oracle Linux ELSA (OVAL)", URL: "https://linux.oracle.com/security/oval/com.oracle.elsa-all.xml.bz2", Format: "oracle"},
	{Name: "SUSE CVRF (SLE and openSUSE)", URL: "https://ftp.suse.com/pub/projects/security/cvrf.tar.bz2", Format: "suse", API: "suse-cvrf"},
	{Name: "NVD", URL: "https://services.nvd.nist.gov/rest/json/cves/2.0", Format: "nvd", API: "nvd"},
}

// A Fetcher downloads feeds into a staging folder.
type Fetcher struct {
	Client *http.Client
	// Dir is the staging folder; the caller removes it.
	Dir string
	// Attempts bounds tries per request; Backoff is the wait before the
	// second, doubling after each failure.
	Attempts int
	Backoff  time.Duration
	// NVDKey is an NVD API key, which raises NVD's rate limit.
	NVDKey string
	// NVDDelay is the pause between NVD pages: NVD asks for 6 s without a
	// key.
	NVDDelay time.Duration
	// Progress, if set, wraps each download's body to show progress.
	Progress func(name string, size int64, body io.Reader) io.Reader
	Now      func() time.Time
}

// A Fetched is one source's download.
type Fetched struct {
	Source Source
	// Paths are the downloaded files; none when the source was unchanged.
	Paths    []string
	Download vulndb.Download
	// Incremental marks an NVD delta to merge into the stored feed.
	Incremental bool
}

// Unchanged reports whether the server said the stored copy is current.
func (f Fetched) Unchanged() bool { return len(f.Paths) == 0 }

// Fetch downloads src, conditional on the validators of the last download.
func (f *Fetcher) Fetch(ctx context.Context, src Source, last vulndb.Download) (Fetched, error) {
	var out Fetched
	var err error
	switch src.API {
	case "nvd":
		out, err = f.fetchNVD(ctx, src, last)
	case "redhat-vex": // fetch_distro.go
		out, err = f.fetchRedHatVEX(ctx, src, last)
	case "amazon":
		out, err = f.fetchAmazon(ctx, src, last)
	case "suse-cvrf":
		out, err = f.fetchSUSECVRF(ctx, src, last)
	default:
		out, err = f.fetchFile(ctx, src, last)
	}
	if err != nil {
		return Fetched{}, fmt.Errorf("feed %q (%s): %w", src.Name, src.URL, err)
	}
	return out, nil
}

func (f *Fetcher) fetchFile(ctx context.Context, src Source, last vulndb.Download) (Fetched, error) {
	h := http.Header{}
	if last.ETag != "" {
		h.Set("If-None-Match", last.ETag)
	}
	if last.LastModified != "" {
		h.Set("If-Modified-Since", last.LastModified)
	}
	path := filepath.Join(f.Dir, fmt.Sprintf("%x-%s", rand.Uint64(), safeName(src.URL)))
	resp, err := f.get(ctx, src.URL, h, path, src.Name)
	if err != nil {
		return Fetched{}, err
	}
	d := vulndb.Download{URL: src.URL, ETag: resp.Header.Get("ETag"), LastModified: resp.Header.Get("Last-Modified")}
	if resp.StatusCode == http.StatusNotModified {
		return Fetched{Source: src, Download: last}, nil
	}
	return Fetched{Source: src, Paths: []string{path}, Download: d}, nil
}

// nvdPageSize is the most CVEs the NVD API returns per page.
const nvdPageSize = 2000

// nvdMaxRange is the longest lastMod window NVD accepts.
const nvdMaxRange = 120 * 24 * time.Hour

func (f *Fetcher) fetchNVD(ctx context.Context, src Source, last vulndb.Download) (Fetched, error) {
	now := f.now().UTC()
	out := Fetched{Source: src, Download: vulndb.Download{URL: src.URL, LastModified: now.Format(time.RFC3339)}}
	q := url.Values{}
	// LastModified holds when the previous update ran; a recent one needs
	// only what changed since.
	if prev, err := time.Parse(time.RFC3339, last.LastModified); err == nil && now.Sub(prev) < nvdMaxRange {
		const layout = "2006-01-02T15:04:05.000Z"
		q.Set("lastModStartDate", prev.UTC().Format(layout))
		q.Set("lastModEndDate", now.Format(layout))
		out.Incremental = true
	}
	h := http.Header{}
	if f.NVDKey != "" {
		h.Set("apiKey", f.NVDKey)
	}
	for start, page := 0, 0; ; page++ {
		q.Set("startIndex", strconv.Itoa(start))
		q.Set("resultsPerPage", strconv.Itoa(nvdPageSize))
		u := src.URL + "?" + q.Encode()
		path := filepath.Join(f.Dir, fmt.Sprintf("nvd-page-%05d.json", page))
		if _, err := f.get(ctx, u, h, path, fmt.Sprintf("%s page %d", src.Name, page+1)); err != nil {
			return Fetched{}, err
		}
		out.Paths = append(out.Paths, path)
		data, err := os.ReadFile(path)
		if err != nil {
			return Fetched{}, err
		}
		p, err := ReadNVDPage(data)
		if err != nil {
			return Fetched{}, fmt.Errorf("page %d: %w", page+1, err)
		}
		start = p.StartIndex + p.Count
		if p.Count == 0 || start >= p.TotalResults {
			return out, nil
		}
		if err := sleep(ctx, f.NVDDelay); err != nil {
			return Fetched{}, err
		}
	}
}

// get downloads u into path, retrying network errors, 429 and 5xx with
// exponential backoff. A 304 leaves path unwritten.
func (f *Fetcher) get(ctx context.Context, u string, h http.Header, path, name string) (*http.Response, error) {
	attempts := max(f.Attempts, 1)
	wait := f.Backoff
	var lastErr error
	for i := range attempts {
		if i > 0 {
			if err := sleep(ctx, wait+time.Duration(rand.Int64N(int64(wait/4)+1))); err != nil {
				return nil, errors.Join(lastErr, err)
			}
			wait *= 2
		}
		resp, retry, err := f.try(ctx, u, h, path, name)
		if err == nil {
			return resp, nil
		}
		lastErr = err
		if !retry {
			break
		}
	}
	return nil, lastErr
}

func (f *Fetcher) try(ctx context.Context, u string, h http.Header, path, name string) (resp *http.Response, retry bool, err error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return nil, false, err
	}
	req.Header = h.Clone()
	req.Header.Set("User-Agent", "scangate (+https://github.com/scangate/scangate)")
	resp, err = f.client().Do(req)
	if err != nil {
		return nil, ctx.Err() == nil, err
	}
	defer resp.Body.Close()
	switch {
	case resp.StatusCode == http.StatusNotModified:
		return resp, false, nil
	case resp.StatusCode == http.StatusTooManyRequests || resp.StatusCode >= 500:
		return nil, true, fmt.Errorf("server answered %s", resp.Status)
	case resp.StatusCode != http.StatusOK:
		return nil, false, fmt.Errorf("server answered %s", resp.Status)
	}
	var body io.Reader = resp.Body
	if f.Progress != nil {
		body = f.Progress(name, resp.ContentLength, body)
	}
	if err := writeFile(path, body); err != nil {
		// A body cut short is worth another try.
		return nil, ctx.Err() == nil, fmt.Errorf("download: %w", err)
	}
	return resp, false, nil
}

func writeFile(path string, r io.Reader) error {
	out, err := os.Create(path)
	if err != nil {
		return err
	}
	_, err = io.Copy(out, r)
	return errors.Join(err, out.Close())
}

func (f *Fetcher) client() *http.Client {
	if f.Client != nil {
		return f.Client
	}
	return http.DefaultClient
}

func (f *Fetcher) now() time.Time {
	if f.Now != nil {
		return f.Now()
	}
	return time.Now()
}

func sleep(ctx context.Context, d time.Duration) error {
	if d <= 0 {
		return ctx.Err()
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

// safeName keeps a URL's last path element as a file name, so that format
// detection sees ".zip" or ".json".
func safeName(u string) string {
	p, err := url.Parse(u)
	if err != nil {
		return "download"
	}
	base := filepath.Base(p.Path)
	if base == "." || base == "/" || base == "" {
		return "download"
	}
	return base
}
