package cli

// What a user of `scangate scan` sees for hostile images and failing
// registries: the exit code (2 bad input, 3 scan or environment error,
// never 0 for an image that could not be read), a message naming the
// image, and no temporary files left behind.

import (
	"archive/tar"
	"encoding/json"
	"fmt"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"runtime/debug"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/registry"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/scangate/scangate/internal/imagetest"
)

// isolate gives the test its own temporary folder, so that what a scan
// leaves there is its own doing, stops the garbage collector, whose
// finalizers would hide an abandoned file by removing it at some later
// moment (the scangate process exits before any runs), and keeps registry
// credentials out of reach: the keychain finds an empty home. It returns
// the temporary folder.
func isolate(t *testing.T) string {
	t.Helper()
	home := t.TempDir()
	tmp := t.TempDir()
	t.Setenv("TMPDIR", tmp)
	t.Setenv("HOME", home)
	t.Setenv("DOCKER_CONFIG", filepath.Join(home, ".docker"))
	t.Setenv("REGISTRY_AUTH_FILE", "")
	t.Setenv("XDG_RUNTIME_DIR", home)
	old := debug.SetGCPercent(-1)
	t.Cleanup(func() { debug.SetGCPercent(old) })
	return tmp
}

func checkNothingLeft(t *testing.T, tmp string) {
	t.Helper()
	ents, err := os.ReadDir(tmp)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range ents {
		t.Errorf("left in the temporary folder: %s", e.Name())
		os.RemoveAll(filepath.Join(tmp, e.Name()))
	}
}

// exit2or3 stands for "exit 2 or 3": either is right.
const exit2or3 = -1

func codeName(code int) string {
	if code == exit2or3 {
		return "2 or 3"
	}
	return fmt.Sprint(code)
}

func hostileEntry(name, body string) imagetest.RawEntry {
	return imagetest.RawEntry{Header: tar.Header{Name: name}, Body: body}
}

// TestScanHostileImages runs `scangate scan` on hostile archives and
// layouts and checks the exit code, the message and the temporary folder.
func TestScanHostileImages(t *testing.T) {
	dir, _ := scanSetup(t)
	tmp := isolate(t)
	files := t.TempDir()
	host := imagetest.HostCanaries(t)
	base := imagetest.BookwormBase(t)

	archive := func(file string, layers ...v1.Layer) string {
		return "docker-archive:" + imagetest.WriteDockerArchive(t, filepath.Join(files, file), "127.0.0.1:5000/hostile:1", imagetest.Build(t, layers...))
	}
	ociArchive := func(file string, entries ...imagetest.RawEntry) string {
		p := filepath.Join(files, file)
		if err := os.WriteFile(p, imagetest.Tar(t, entries...), 0o644); err != nil {
			t.Fatal(err)
		}
		return "oci-archive:" + p
	}
	// An OCI layout of BookwormApp with its base layer's blob removed.
	missingBlob := filepath.Join(files, "missing-blob")
	lp, err := layout.Write(missingBlob, empty.Index)
	if err != nil {
		t.Fatal(err)
	}
	app, layers := imagetest.BookwormApp(t)
	if err := lp.AppendImage(app); err != nil {
		t.Fatal(err)
	}
	d, err := layers[0].Digest()
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Remove(filepath.Join(missingBlob, "blobs", "sha256", d.Hex)); err != nil {
		t.Fatal(err)
	}
	noIndex := t.TempDir()
	garbage := filepath.Join(files, "garbage.tar")
	if err := os.WriteFile(garbage, []byte(strings.Repeat("garbage ", 500)), 0o644); err != nil {
		t.Fatal(err)
	}
	// A layer with two entries whose tar lacks its end-of-archive blocks.
	noTrailer := imagetest.Tar(t, hostileEntry("a", "a"), imagetest.RawEntry{Header: tar.Header{Name: "b"}})
	noTrailer = noTrailer[:len(noTrailer)-1024]
	// The base layer's blob cut in half inside a well-formed archive.
	rc, err := base.Compressed()
	if err != nil {
		t.Fatal(err)
	}
	gz, err := io.ReadAll(rc)
	if err != nil {
		t.Fatal(err)
	}
	cutBlob := filepath.Join(files, "cut-blob")
	if err := os.MkdirAll(filepath.Join(cutBlob, "blobs", "sha256"), 0o755); err != nil {
		t.Fatal(err)
	}
	lp2, err := layout.Write(cutBlob, empty.Index)
	if err != nil {
		t.Fatal(err)
	}
	if err := lp2.AppendImage(app); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(cutBlob, "blobs", "sha256", d.Hex), gz[:len(gz)/2], 0o644); err != nil {
		t.Fatal(err)
	}

	tests := []struct {
		name string
		ref  string
		args []string
		code int    // or, where either is right, exit2or3
		msg  string // besides the image, which every message names
	}{
		{"escaping-links", archive("escaping.tar", base, imagetest.EscapingLayer(t, host)), nil, ExitOK, ""},
		{"gzip-bomb", archive("bomb.tar", base, imagetest.LayerFromBytes(t, imagetest.GzipBomb(t, 64<<20, 1<<20))),
			[]string{"--max-layer-bytes", "4194304"}, ExitBadInput, "more than 4194304 bytes uncompressed: over the scan limit"},
		{"many-files", archive("many.tar", base, imagetest.LayerFromBytes(t, imagetest.GzipTar(t, imagetest.ManyFiles(t, 20_000)))),
			[]string{"--max-layer-files", "5000"}, ExitBadInput, "more than 5000 files: over the scan limit"},
		{"garbage-archive", "docker-archive:" + garbage, nil, ExitBadInput, ""},
		{"oci-archive-dotdot", ociArchive("dotdot.tar", hostileEntry("../../escape", "x")), nil, ExitBadInput, "../../escape"},
		{"oci-archive-symlink", ociArchive("symlink.tar", imagetest.RawEntry{Header: tar.Header{Name: "index.json", Linkname: "/etc/passwd", Typeflag: tar.TypeSymlink}}),
			nil, ExitBadInput, "only files and folders"},
		{"oci-no-index", "oci:" + noIndex, nil, ExitBadInput, "index.json"},
		// A layout that names a blob it lacks, or holds half of one, is a
		// broken image, but the failure shows only when the scan reads the
		// layer: exit 3, from the scan.
		{"oci-missing-layer-blob", "oci:" + missingBlob, nil, ExitInternal, d.Hex},
		{"oci-cut-layer-blob", "oci:" + cutBlob, nil, ExitInternal, "unexpected EOF"},
		// A limit passed after the unpacker read the whole layer (see
		// TestLimitLeavesNoTempFile in internal/scan; it left image-blob-NNN
		// in $TMPDIR for good before 165f8d9).
		{"late-limit", archive("late-limit.tar", imagetest.LayerFromBytes(t, noTrailer)), []string{"--max-layer-files", "1"}, ExitBadInput, "over the scan limit"},
		// A dpkg status over --max-file-bytes cannot be read: the scan must
		// fail naming it, never exit 0 with Debian 12 and no packages (see
		// TestUnreadablePackageDatabase in internal/scan).
		{"dpkg-status-too-large", archive("huge-status.tar", base), []string{"--max-file-bytes", "65536"}, exit2or3, "var/lib/dpkg/status"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			args := append(append([]string{"--format", "json", "scan"}, tt.args...), tt.ref)
			r := run(t, dir, args...)
			defer checkNothingLeft(t, tmp)
			if r.code != tt.code && (tt.code != exit2or3 || r.code != ExitBadInput && r.code != ExitInternal) {
				t.Fatalf("scangate %s: exit %d, want %s\nstderr: %s", strings.Join(args, " "), r.code, codeName(tt.code), r.stderr)
			}
			if tt.code == ExitOK {
				var rep struct {
					OS       struct{ ID, Ecosystem string }
					Packages []struct{ Name, Path string }
				}
				if err := json.Unmarshal([]byte(r.stdout), &rep); err != nil {
					t.Fatal(err)
				}
				if rep.OS.Ecosystem != "Debian:12" || len(rep.Packages) != 88 || strings.Contains(r.stdout, "evil") {
					t.Errorf("OS %+v, %d packages; want Debian 12's 88 and nothing from the host (evil)", rep.OS, len(rep.Packages))
				}
				return
			}
			image := strings.SplitN(tt.ref, ":", 2)[1]
			if !strings.Contains(r.stderr, image) || !strings.Contains(r.stderr, tt.msg) {
				t.Errorf("stderr %q: want the image (%s) and %q", r.stderr, image, tt.msg)
			}
			if strings.Contains(r.stderr, "panic") || strings.Count(strings.TrimSpace(r.stderr), "\n") > 2 {
				t.Errorf("stderr is not one clear message:\n%s", r.stderr)
			}
		})
	}
}

// faultyRegistry is go-containerregistry's in-memory registry behind a
// handler that can fail requests and counts them.
type faultyRegistry struct {
	mu     sync.Mutex
	fault  func(w http.ResponseWriter, r *http.Request, n int) bool
	counts map[string]int // by method and kind: "GET manifests", "HEAD blobs", "GET ping"
	inner  http.Handler
}

func kind(path string) string {
	switch {
	case strings.Contains(path, "/manifests/"):
		return "manifests"
	case strings.Contains(path, "/blobs/"):
		return "blobs"
	case path == "/v2/" || path == "/v2":
		return "ping"
	}
	return "other"
}

func (f *faultyRegistry) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	f.mu.Lock()
	key := r.Method + " " + kind(r.URL.Path)
	f.counts[key]++
	n, fault := f.counts[key], f.fault
	f.mu.Unlock()
	if fault != nil && fault(w, r, n) {
		return
	}
	f.inner.ServeHTTP(w, r)
}

// set installs a fault (nil: none) and zeroes the counts.
func (f *faultyRegistry) set(fault func(w http.ResponseWriter, r *http.Request, n int) bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.fault, f.counts = fault, map[string]int{}
}

func (f *faultyRegistry) count(key string) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.counts[key]
}

func (f *faultyRegistry) String() string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return fmt.Sprint(f.counts)
}

func registryError(w http.ResponseWriter, status int, code, msg string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	fmt.Fprintf(w, `{"errors":[{"code":%q,"message":%q}]}`, code, msg)
}

// TestScanRegistry scans from a registry on 127.0.0.1 that answers, then
// fails in the ways registries fail.
func TestScanRegistry(t *testing.T) {
	dir, _ := scanSetup(t)
	tmp := isolate(t)
	reg := &faultyRegistry{inner: registry.New(registry.Logger(log.New(io.Discard, "", 0))), counts: map[string]int{}}
	srv := httptest.NewServer(reg)
	defer srv.Close()
	host := strings.TrimPrefix(srv.URL, "http://")
	if !strings.HasPrefix(host, "127.0.0.1:") {
		t.Fatalf("registry at %s, want 127.0.0.1", host)
	}
	img, _ := imagetest.BookwormApp(t)
	ref := host + "/app:1"
	tag, err := name.NewTag(ref)
	if err != nil {
		t.Fatal(err)
	}
	if err := remote.Write(tag, img); err != nil {
		t.Fatal(err)
	}
	digest, err := img.Digest()
	if err != nil {
		t.Fatal(err)
	}
	// A port on 127.0.0.1 where nothing listens any more.
	closed := httptest.NewServer(http.NotFoundHandler())
	closedHost := strings.TrimPrefix(closed.URL, "http://")
	closed.Close()

	always := func(status int, code string) func(http.ResponseWriter, *http.Request, int) bool {
		return func(w http.ResponseWriter, r *http.Request, n int) bool {
			registryError(w, status, code, http.StatusText(status))
			return true
		}
	}
	tests := []struct {
		name  string
		ref   string
		fault func(w http.ResponseWriter, r *http.Request, n int) bool
		code  int
		msgs  []string // one of them
		check func(t *testing.T)
	}{
		{name: "ok", ref: ref, code: ExitOK},
		{name: "by-digest", ref: host + "/app@" + digest.String(), code: ExitOK},
		{name: "missing-tag", ref: host + "/app:2", code: ExitBadInput, msgs: []string{"MANIFEST_UNKNOWN", "not found"}},
		{name: "missing-repository", ref: host + "/nope:1", code: ExitBadInput, msgs: []string{"NAME_UNKNOWN", "MANIFEST_UNKNOWN", "not found"}},
		{name: "bad-reference", ref: host + "/App:1", code: ExitBadInput, msgs: []string{"bad image reference"}},
		{name: "unauthorized", ref: ref, code: ExitBadInput, msgs: []string{"UNAUTHORIZED", "401", "auth"},
			fault: func(w http.ResponseWriter, r *http.Request, n int) bool {
				w.Header().Set("WWW-Authenticate", `Basic realm="scangate-test"`)
				registryError(w, http.StatusUnauthorized, "UNAUTHORIZED", "authentication required")
				return true
			},
			check: func(t *testing.T) {
				if n := reg.count("GET manifests") + reg.count("HEAD manifests"); n > 3 {
					t.Errorf("%d manifest requests for a 401: asked again and again (%s)", n, reg)
				}
			}},
		{name: "forbidden", ref: ref, code: ExitBadInput, msgs: []string{"DENIED", "403"}, fault: always(http.StatusForbidden, "DENIED")},
		{name: "not-found-everywhere", ref: ref, code: ExitBadInput, msgs: []string{"404", "NOT_FOUND", "not found"}, fault: always(http.StatusNotFound, "NOT_FOUND")},
		{name: "too-many-requests", ref: ref, code: ExitInternal, msgs: []string{"TOOMANYREQUESTS", "429"}, fault: always(http.StatusTooManyRequests, "TOOMANYREQUESTS")},
		{name: "500-then-ok", ref: ref, code: ExitOK,
			fault: func(w http.ResponseWriter, r *http.Request, n int) bool {
				if kind(r.URL.Path) == "manifests" && n == 1 {
					registryError(w, http.StatusInternalServerError, "UNKNOWN", "try again")
					return true
				}
				return false
			},
			check: func(t *testing.T) {
				if n := reg.count("GET manifests"); n < 2 {
					t.Errorf("%d manifest GETs: the 500 was not retried (%s)", n, reg)
				}
			}},
		{name: "blob-500-then-ok", ref: ref, code: ExitOK,
			fault: func(w http.ResponseWriter, r *http.Request, n int) bool {
				if kind(r.URL.Path) == "blobs" && n == 1 {
					registryError(w, http.StatusInternalServerError, "UNKNOWN", "try again")
					return true
				}
				return false
			}},
		// The registry's blobs fail for good: the manifest was read, the
		// layers cannot be: a scan error, exit 3, after retries.
		//
		// Fixed in 3272f92: the message did not name the image ("scan
		// failed: config: GET http://…/v2/app/blobs/…"), the config blob
		// being read in describe(), whose errors Catalog wrapped without
		// info.Ref.
		{name: "blobs-503", ref: ref, code: ExitInternal, msgs: []string{"503"},
			fault: func(w http.ResponseWriter, r *http.Request, n int) bool {
				if kind(r.URL.Path) == "blobs" {
					registryError(w, http.StatusServiceUnavailable, "UNAVAILABLE", "down")
					return true
				}
				return false
			},
			check: func(t *testing.T) {
				if n := reg.count("GET blobs"); n < 3 || n > 30 {
					t.Errorf("%d blob GETs for a registry down for good; want a few retries (%s)", n, reg)
				}
			}},
		// A registry that answers 5xx to everything, or is not there at
		// all, is the environment failing: exit 3, after retries (3 tries
		// per request, at 100 and 300 ms, counted below); 401/403/404 and
		// bad references stay exit 2. Fixed in 3272f92: all of these
		// exited 2, as scanImage made every image.Open error a usageError.
		{name: "503-everywhere", ref: ref, code: ExitInternal, msgs: []string{"503"}, fault: always(http.StatusServiceUnavailable, "UNAVAILABLE"),
			check: func(t *testing.T) {
				if n := reg.count("GET ping") + reg.count("GET manifests") + reg.count("HEAD manifests"); n < 3 || n > 30 {
					t.Errorf("%d requests to a registry down for good; want a few retries (%s)", n, reg)
				}
			}},
		{name: "500-everywhere", ref: ref, code: ExitInternal, msgs: []string{"500"}, fault: always(http.StatusInternalServerError, "UNKNOWN")},
		{name: "connection-refused", ref: closedHost + "/app:1", code: ExitInternal, msgs: []string{"connection refused"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			reg.set(tt.fault)
			defer checkNothingLeft(t, tmp)
			start := time.Now()
			r := run(t, dir, "--format", "json", "scan", tt.ref)
			took := time.Since(start)
			t.Logf("exit %d after %v; requests %s; stderr: %s", r.code, took.Round(time.Millisecond), reg, strings.TrimSpace(r.stderr))
			if tt.check != nil {
				tt.check(t)
			}
			if r.code != tt.code {
				t.Fatalf("scangate scan %s: exit %d, want %d; requests %s\nstderr: %s", tt.ref, r.code, tt.code, reg, r.stderr)
			}
			if tt.code == ExitOK {
				var rep struct {
					Image struct {
						Repository string
						Digest     string
					}
					Packages []struct{ Name string }
				}
				if err := json.Unmarshal([]byte(r.stdout), &rep); err != nil {
					t.Fatal(err)
				}
				if rep.Image.Repository != host+"/app" || rep.Image.Digest != digest.String() || len(rep.Packages) != 89 {
					t.Errorf("report: image %+v, %d packages; want %s/app at %s with 88 debs and lodash", rep.Image, len(rep.Packages), host, digest)
				}
				return
			}
			if !strings.Contains(r.stderr, tt.ref) {
				t.Errorf("stderr %q does not name the image", r.stderr)
			}
			found := false
			for _, m := range tt.msgs {
				found = found || strings.Contains(r.stderr, m)
			}
			if !found {
				t.Errorf("stderr %q: want one of %q", r.stderr, tt.msgs)
			}
		})
	}
}
