package cli

import (
	"archive/zip"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// upstream plays the feeds' servers on 127.0.0.1: an osv.dev-style zip with
// an ETag, an Alpine secdb file with Last-Modified, and the paged NVD API.
type upstream struct {
	t        *testing.T
	srv      *httptest.Server
	zip      []byte
	secdb    []byte
	cves     []json.RawMessage
	mu       sync.Mutex
	requests []*http.Request
	// failures makes the zip answer 503 this many times first.
	failures atomic.Int32
	// hang makes the zip send half its body, then wait for the client to go.
	hang atomic.Bool
}

func newUpstream(t *testing.T) *upstream {
	u := &upstream{t: t, zip: goZip(t, 3), secdb: mustRead(t, filepath.Join(fixtures, "alpine", "v3.10-main.yaml"))}
	files, err := filepath.Glob(filepath.Join(fixtures, "nvd", "CVE-*.json"))
	if err != nil || len(files) == 0 {
		t.Fatalf("nvd fixtures: %v", err)
	}
	sort.Strings(files)
	for _, f := range files {
		u.cves = append(u.cves, mustRead(t, f))
	}
	u.srv = httptest.NewServer(http.HandlerFunc(u.serve))
	t.Cleanup(u.srv.Close)
	return u
}

const testETag = `"go-zip-v1"`

func (u *upstream) serve(w http.ResponseWriter, r *http.Request) {
	u.mu.Lock()
	u.requests = append(u.requests, r.Clone(context.Background()))
	u.mu.Unlock()
	switch r.URL.Path {
	case "/Go/all.zip":
		if u.failures.Add(-1) >= 0 {
			http.Error(w, "try later", http.StatusServiceUnavailable)
			return
		}
		if r.Header.Get("If-None-Match") == testETag {
			w.WriteHeader(http.StatusNotModified)
			return
		}
		w.Header().Set("ETag", testETag)
		if u.hang.Load() {
			w.Header().Set("Content-Length", strconv.Itoa(len(u.zip)))
			w.Write(u.zip[:len(u.zip)/2])
			w.(http.Flusher).Flush()
			<-r.Context().Done()
			return
		}
		w.Write(u.zip)
	case "/v3.10/main.yaml":
		http.ServeContent(w, r, "main.yaml", time.Date(2020, 6, 8, 0, 0, 0, 0, time.UTC), bytes.NewReader(u.secdb))
	case "/rest/json/cves/2.0":
		u.serveNVD(w, r)
	default:
		http.NotFound(w, r)
	}
}

// serveNVD pages the CVEs ten at a time, whatever the client asks, as NVD
// may; with lastModStartDate it answers only the first CVE, as a delta.
func (u *upstream) serveNVD(w http.ResponseWriter, r *http.Request) {
	cves := u.cves
	if r.URL.Query().Get("lastModStartDate") != "" {
		cves = cves[:1]
	}
	start, _ := strconv.Atoi(r.URL.Query().Get("startIndex"))
	end := min(start+10, len(cves))
	var items []string
	for _, c := range cves[start:end] {
		items = append(items, `{"cve": `+string(c)+`}`)
	}
	fmt.Fprintf(w, `{"resultsPerPage": %d, "startIndex": %d, "totalResults": %d, "format": "NVD_CVE", "version": "2.0",
		"timestamp": "2026-11-27T00:00:00.000", "vulnerabilities": [%s]}`, end-start, start, len(cves), strings.Join(items, ","))
}

func (u *upstream) count(path string) (n int, conditional int) {
	u.mu.Lock()
	defer u.mu.Unlock()
	for _, r := range u.requests {
		if r.URL.Path == path {
			n++
			if r.Header.Get("If-None-Match") != "" || r.Header.Get("If-Modified-Since") != "" {
				conditional++
			}
		}
	}
	return n, conditional
}

func (u *upstream) feedsFile(t *testing.T, extra string) string {
	path := filepath.Join(t.TempDir(), "feeds.yaml")
	text := fmt.Sprintf(`- name: Go vulndb
  url: %[1]s/Go/all.zip
- name: Alpine 3.10 main
  url: %[1]s/v3.10/main.yaml
  format: alpine
- name: NVD
  url: %[1]s/rest/json/cves/2.0
  api: nvd
`, u.srv.URL) + extra
	if err := os.WriteFile(path, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

// goZip zips the first n records of the Go vulndb fixture, as osv.dev does.
func goZip(t *testing.T, n int) []byte {
	zr, err := zip.OpenReader(filepath.Join(fixtures, "go-vulndb.zip"))
	if err != nil {
		t.Fatal(err)
	}
	defer zr.Close()
	var buf bytes.Buffer
	zw := zip.NewWriter(&buf)
	for _, f := range zr.File {
		if n == 0 {
			break
		}
		if !strings.HasPrefix(f.Name, "data/osv/GO-") {
			continue
		}
		n--
		rc, err := f.Open()
		if err != nil {
			t.Fatal(err)
		}
		w, err := zw.Create(filepath.Base(f.Name))
		if err != nil {
			t.Fatal(err)
		}
		io.Copy(w, rc)
		rc.Close()
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func mustRead(t *testing.T, path string) []byte {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return data
}

type feedRow struct {
	Name    string
	Records int
	Source  string
}

func feedStatus(t *testing.T, dir string) (map[string]feedRow, string) {
	t.Helper()
	r := run(t, dir, "--format", "json", "db", "status").must(t)
	var st struct {
		Version struct{ Digest string }
		Feeds   []feedRow
	}
	if err := json.Unmarshal([]byte(r.stdout), &st); err != nil {
		t.Fatal(err)
	}
	out := map[string]feedRow{}
	for _, f := range st.Feeds {
		out[f.Name] = f
	}
	return out, st.Version.Digest
}

func TestUpdateDownloadsThenAsksConditionally(t *testing.T) {
	u := newUpstream(t)
	dir := t.TempDir()
	feeds := u.feedsFile(t, "")
	args := []string{"db", "update", "--feeds", feeds, "--nvd-delay", "0", "--backoff", "1ms"}

	r := run(t, dir, args...).must(t)
	if !strings.Contains(r.stdout, "updated 3 feeds, 0 unchanged") {
		t.Errorf("first update said %q", r.stdout)
	}
	got, digest := feedStatus(t, dir)
	want := map[string]int{"osv:Go": 3, "alpine:v3.10/main": 1110, "nvd": 23}
	for name, n := range want {
		if got[name].Records != n {
			t.Errorf("feed %s has %d records, want %d (%+v)", name, got[name].Records, n, got)
		}
	}
	if src := got["osv:Go"].Source; src != u.srv.URL+"/Go/all.zip" {
		t.Errorf("osv:Go source %q, want the URL", src)
	}
	if n, _ := u.count("/rest/json/cves/2.0"); n != 3 {
		t.Errorf("NVD pages fetched: %d, want 3 (23 CVEs, 10 a page)", n)
	}

	// The second update asks conditionally: the zip and the secdb are
	// unchanged, and NVD is asked only for what changed since.
	r = run(t, dir, args...).must(t)
	if !strings.Contains(r.stdout, "updated 1 feeds, 2 unchanged") {
		t.Errorf("second update said %q", r.stdout)
	}
	if _, cond := u.count("/Go/all.zip"); cond != 1 {
		t.Errorf("conditional zip requests: %d, want 1", cond)
	}
	if _, cond := u.count("/v3.10/main.yaml"); cond != 1 {
		t.Errorf("conditional secdb requests: %d, want 1", cond)
	}
	got, digest2 := feedStatus(t, dir)
	if got["nvd"].Records != 23 {
		t.Errorf("after an incremental NVD update the feed has %d records, want all 23 kept", got["nvd"].Records)
	}
	if digest2 != digest {
		t.Errorf("same data, new digest: %s → %s", digest, digest2)
	}
}

func TestUpdateRetriesServerErrors(t *testing.T) {
	u := newUpstream(t)
	u.failures.Store(2)
	dir := t.TempDir()
	run(t, dir, "db", "update", "--feeds", u.feedsFile(t, ""), "--nvd-delay", "0", "--backoff", "1ms").must(t)
	if n, _ := u.count("/Go/all.zip"); n != 3 {
		t.Errorf("zip requests: %d, want 3 (two 503s, then the file)", n)
	}
}

func TestFailedUpdateChangesNothing(t *testing.T) {
	u := newUpstream(t)
	dir := t.TempDir()
	run(t, dir, "db", "update", "--feeds", u.feedsFile(t, ""), "--nvd-delay", "0", "--backoff", "1ms").must(t)
	before, digest := feedStatus(t, dir)

	// A feed whose server is gone: nothing listens on this port.
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	dead := l.Addr().String()
	l.Close()
	feeds := u.feedsFile(t, fmt.Sprintf("- name: Offline feed\n  url: http://%s/all.zip\n", dead))
	u.srv.Config.Handler = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/Go/all.zip" {
			w.Write(goZip(t, 5)) // new data that must not land
			return
		}
		u.serve(w, r)
	})
	r := run(t, dir, "db", "update", "--feeds", feeds, "--nvd-delay", "0", "--backoff", "1ms", "--attempts", "2")
	if r.code != ExitInternal || !strings.Contains(r.stderr, `feed "Offline feed"`) || !strings.Contains(r.stderr, "not changed") {
		t.Errorf("update with an offline feed: exit %d, stderr %q; want exit 3 naming the feed", r.code, r.stderr)
	}
	after, digest2 := feedStatus(t, dir)
	if digest2 != digest || after["osv:Go"].Records != before["osv:Go"].Records {
		t.Errorf("a failed update changed the database: %v → %v", before, after)
	}
}

func TestInterruptedUpdateChangesNothing(t *testing.T) {
	u := newUpstream(t)
	dir := t.TempDir()
	run(t, dir, "db", "import", filepath.Join(fixtures, "ghsa")).must(t)
	_, digest := feedStatus(t, dir)

	u.hang.Store(true)
	ctx, cancel := context.WithCancel(context.Background())
	go func() {
		// Interrupt once the download is under way, as Ctrl-C would.
		for n := 0; n == 0; n, _ = u.count("/Go/all.zip") {
			time.Sleep(10 * time.Millisecond)
		}
		time.Sleep(100 * time.Millisecond)
		cancel()
	}()
	r := runCtx(ctx, t, dir, "db", "update", "--feeds", u.feedsFile(t, ""), "--nvd-delay", "0", "--backoff", "1ms")
	if r.code == ExitOK {
		t.Fatal("an interrupted update exited 0")
	}
	got, digest2 := feedStatus(t, dir)
	if digest2 != digest || len(got) != 1 {
		t.Errorf("an interrupted update changed the database: %v", got)
	}
	leftovers, _ := filepath.Glob(filepath.Join(dir, ".update-*"))
	if len(leftovers) > 0 {
		t.Errorf("staging left behind: %v", leftovers)
	}
}
