package cli

// What a user of `scangate scan` sees for hostile images and failing
// registries: the exit code (2 bad input, 3 scan or environment error,
// never 0 for an image that could not be read), a message naming the
// image, and no temporary files left behind.

import (
	"archive/tar"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"log"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"runtime/debug"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/registry"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/scangate/scangate/internal/auth"
	"github.com/scangate/scangate/internal/image"
	"github.com/scangate/scangate/internal/imagetest"
	embedded "github.com/scangate/scangate/internal/registry"
	"github.com/scangate/scangate/internal/store"
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
		// Names with ../ that climb out of the root: Docker refuses to
		// load the layer, and the scan is refused too (it exited 0 before).
		{"escaping-names", archive("escaping.tar", base, imagetest.EscapingLayer(t, host)), nil, ExitBadInput, "climbs out of the image root"},
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

// embeddedRegistry runs scangate's own registry on 127.0.0.1 behind wrap
// (nil: none), anonymous pulls allowed, and returns its host and a push
// function using a pusher token.
func embeddedRegistry(t *testing.T, wrap func(http.Handler) http.Handler) (string, func(ref string, img v1.Image)) {
	t.Helper()
	ctx := context.Background()
	dir := t.TempDir()
	st, err := store.Open(ctx, filepath.Join(dir, store.FileName))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	tokens := auth.NewTokens(st)
	secret, _, err := tokens.Create(ctx, "ci", auth.RolePusher)
	if err != nil {
		t.Fatal(err)
	}
	reg, err := embedded.New(ctx, embedded.Config{Root: filepath.Join(dir, "registry"), Tokens: tokens, AnonymousPull: true,
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { reg.Close() })
	var h http.Handler = reg
	if wrap != nil {
		h = wrap(reg)
	}
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	host := strings.TrimPrefix(srv.URL, "http://")
	push := func(ref string, img v1.Image) {
		t.Helper()
		tag, err := name.NewTag(host+"/"+ref, name.Insecure)
		if err != nil {
			t.Fatal(err)
		}
		if err := remote.Write(tag, img, remote.WithAuth(&authn.Basic{Username: "ci", Password: secret})); err != nil {
			t.Fatalf("push %s: %v", ref, err)
		}
	}
	return host, push
}

// blobGets counts the registry's GETs of each blob.
type blobGets struct {
	mu sync.Mutex
	n  map[string]int // by digest
}

func (b *blobGets) wrap(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if i := strings.Index(r.URL.Path, "/blobs/"); i >= 0 && r.Method == http.MethodGet {
			b.mu.Lock()
			b.n[r.URL.Path[i+len("/blobs/"):]]++
			b.mu.Unlock()
		}
		h.ServeHTTP(w, r)
	})
}

func (b *blobGets) get(d v1.Hash) int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.n[d.String()]
}

// ociLayoutByHand writes an OCI layout of one image, file by file as the
// image spec describes it: a layer blob under the descriptor media type
// mt, its config and manifest, index.json and oci-layout.
func ociLayoutByHand(t *testing.T, dir string, layerBlob []byte, diffID string, mt string) string {
	t.Helper()
	put := func(data []byte) (string, int) {
		sum := sha256.Sum256(data)
		d := hex.EncodeToString(sum[:])
		p := filepath.Join(dir, "blobs", "sha256", d)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, data, 0o644); err != nil {
			t.Fatal(err)
		}
		return "sha256:" + d, len(data)
	}
	layerDigest, layerSize := put(layerBlob)
	config := fmt.Sprintf(`{"architecture":"amd64","os":"linux","config":{},"rootfs":{"type":"layers","diff_ids":[%q]}}`, diffID)
	configDigest, configSize := put([]byte(config))
	manifest := fmt.Sprintf(`{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json",`+
		`"config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":%q,"size":%d},`+
		`"layers":[{"mediaType":%q,"digest":%q,"size":%d}]}`, configDigest, configSize, mt, layerDigest, layerSize)
	manifestDigest, manifestSize := put([]byte(manifest))
	index := fmt.Sprintf(`{"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json","manifests":[`+
		`{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":%q,"size":%d,"annotations":{"org.opencontainers.image.ref.name":"1"}}]}`,
		manifestDigest, manifestSize)
	for name, body := range map[string]string{"index.json": index, "oci-layout": `{"imageLayoutVersion":"1.0.0"}`} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

// zerosTar is a tar of a Debian os-release and n bytes of zeros in files
// of 512 KiB at most, followed by extra zero bytes after the tar's end.
func zerosTar(t *testing.T, n, extra int) []byte {
	t.Helper()
	entries := []imagetest.RawEntry{hostileEntry("etc/os-release", imagetest.ReadFixture(t, "debian", "os-release"))}
	for i := 0; n > 0; i++ {
		size := min(n, 512<<10)
		entries = append(entries, imagetest.RawEntry{Header: tar.Header{Name: fmt.Sprintf("zeros/%04d", i), Size: int64(size)}, Body: string(make([]byte, size))})
		n -= size
	}
	return append(imagetest.Tar(t, entries...), make([]byte, extra)...)
}

// repeated stacks layer n times.
func repeated(t *testing.T, l v1.Layer, n int) v1.Image {
	t.Helper()
	layers := make([]v1.Layer, n)
	for i := range layers {
		layers[i] = l
	}
	return imagetest.Build(t, layers...)
}

// TestScanFailsClosed: `scangate scan` on hostile images, built as an
// attacker would (a docker-archive, an OCI layout written by hand, pushes
// to scangate's own registry), exits 2 with a message naming the image
// and the reason, and leaves nothing in $TMPDIR. Each of these exited 0
// before its fix.
func TestScanFailsClosed(t *testing.T) {
	dir, _ := scanSetup(t)
	tmp := isolate(t)
	files := t.TempDir()
	gets := &blobGets{n: map[string]int{}}
	host, push := embeddedRegistry(t, gets.wrap)

	// A layer with an entry that climbs out of the root. Docker refuses to
	// load it since moby/go-archive v0.3.0 (df55fdf, "Reject traversal
	// entries instead of clamping them"); Debian's 20.10 engine here still
	// clamps it inside its chroot.
	climbing := imagetest.Build(t, imagetest.LayerFromBytes(t, imagetest.Tar(t,
		hostileEntry("etc/os-release", imagetest.ReadFixture(t, "debian", "os-release")), hostileEntry("../../../tmp/escaped", "x"))))
	climbingArchive := imagetest.WriteDockerArchive(t, filepath.Join(files, "climbing.tar"), "scangate-test/climbing:1", climbing)

	// A Helm chart (a gzip tar, as a layer is) under its own media type,
	// in an OCI layout written by hand and pushed to the registry.
	chartTar := imagetest.Tar(t, hostileEntry("etc/os-release", imagetest.ReadFixture(t, "debian", "os-release")),
		hostileEntry("var/lib/dpkg/status", "Package: zlib1g\nStatus: install ok installed\nVersion: 1:1.2.13.dfsg-1\nSource: zlib\n\n"))
	diff := sha256.Sum256(chartTar)
	const helm = "application/vnd.cncf.helm.chart.content.v1.tar+gzip"
	helmLayout := ociLayoutByHand(t, filepath.Join(files, "helm"), imagetest.GzipTar(t, chartTar), "sha256:"+hex.EncodeToString(diff[:]), helm)
	opened, err := image.Open(context.Background(), "oci:"+helmLayout, image.Options{})
	if err != nil {
		t.Fatal(err)
	}
	push("charts/app:1", opened.Image)
	opened.Close()

	// 600 layers, each one blob of 1 MiB of zeros (a few kB of gzip).
	blob := imagetest.LayerFromBytes(t, imagetest.GzipTar(t, zerosTar(t, 1<<20, 0)))
	many := repeated(t, blob, 600)
	manyArchive := imagetest.WriteDockerArchive(t, filepath.Join(files, "many.tar"), "scangate-test/many:1", many)
	push("many/layers:1", many)
	blobDigest, err := blob.Digest()
	if err != nil {
		t.Fatal(err)
	}

	// One small file, then 64 MiB of zeros after the tar's end.
	trailing := imagetest.WriteDockerArchive(t, filepath.Join(files, "trailing.tar"), "scangate-test/trailing:1",
		imagetest.Build(t, imagetest.LayerFromBytes(t, imagetest.GzipTar(t, zerosTar(t, 0, 64<<20)))))

	tests := []struct {
		name  string
		ref   string
		args  []string
		code  int
		msg   string
		check func(t *testing.T, stdout string)
	}{
		{name: "climbing-entry", ref: "docker-archive:" + climbingArchive, code: ExitBadInput,
			msg: `layer 1: entry "../../../tmp/escaped" climbs out of the image root`},
		{name: "unknown-media-type-layout", ref: "oci:" + helmLayout, code: ExitBadInput,
			msg: `layer 1: media type "` + helm + `" is not one of a container image's layers`},
		{name: "unknown-media-type-registry", ref: host + "/charts/app:1", code: ExitBadInput,
			msg: `layer 1: media type "` + helm + `" is not one of a container image's layers`},
		{name: "600-layers-archive", ref: "docker-archive:" + manyArchive, code: ExitBadInput,
			msg: "600 layers, more than 500"},
		{name: "600-layers-registry", ref: host + "/many/layers:1", code: ExitBadInput,
			msg: "600 layers, more than 500",
			check: func(t *testing.T, _ string) {
				if n := gets.get(blobDigest); n != 0 {
					t.Errorf("%d GETs of the layer blob before refusing 600 layers; want none", n)
				}
			}},
		// Under a higher bound the blob is read once: one GET, not 600.
		{name: "600-layers-registry-allowed", ref: host + "/many/layers:1", args: []string{"--max-layers", "600", "--max-image-bytes", "4194304"}, code: ExitOK,
			check: func(t *testing.T, stdout string) {
				if n := gets.get(blobDigest); n != 1 {
					t.Errorf("%d GETs of a layer blob the image repeats 600 times; want 1", n)
				}
				var rep struct {
					OS    struct{ Ecosystem string }
					Image struct{ Layers []string }
				}
				if err := json.Unmarshal([]byte(stdout), &rep); err != nil {
					t.Fatal(err)
				}
				if rep.OS.Ecosystem != "Debian:12" || len(rep.Image.Layers) != 600 {
					t.Errorf("report: OS %s, %d layers; want Debian 12 and 600 layers", rep.OS.Ecosystem, len(rep.Image.Layers))
				}
			}},
		{name: "trailing-zeros", ref: "docker-archive:" + trailing, args: []string{"--max-layer-bytes", "4194304"}, code: ExitBadInput,
			msg: "layer 1: more than 4194304 bytes uncompressed: over the scan limit"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			defer checkNothingLeft(t, tmp)
			gets.mu.Lock()
			clear(gets.n)
			gets.mu.Unlock()
			args := append(append([]string{"--format", "json", "scan"}, tt.args...), tt.ref)
			r := run(t, dir, args...)
			if r.code != tt.code {
				t.Fatalf("scangate %s: exit %d, want %d\nstderr: %s", strings.Join(args, " "), r.code, tt.code, r.stderr)
			}
			if tt.check != nil {
				tt.check(t, r.stdout)
			}
			if tt.code == ExitOK {
				return
			}
			if !strings.Contains(r.stderr, tt.ref) || !strings.Contains(r.stderr, tt.msg) {
				t.Errorf("stderr %q: want the image (%s) and %q", r.stderr, tt.ref, tt.msg)
			}
		})
	}
}

// killChildEnv holds, in the child process of TestScanKilled, the
// arguments to run scangate with (JSON).
const killChildEnv = "SCANGATE_CLI_TEST_SCAN_CHILD"

// runScanChild runs scangate as cmd/scangate's main does, when this test
// binary is TestScanKilled's child.
func runScanChild() {
	var args []string
	if err := json.Unmarshal([]byte(os.Getenv(killChildEnv)), &args); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(99)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := Main(ctx, args, os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

// heldContentFile reports whether process pid holds the scan's content
// file open in tmp, with no name, as /proc shows it: made with O_TMPFILE
// ("tmp/#INODE (deleted)"), or, where the filesystem cannot, a
// scangate-content-NNN already unlinked.
func heldContentFile(pid int, tmp string) bool {
	fds, _ := os.ReadDir(fmt.Sprintf("/proc/%d/fd", pid))
	for _, fd := range fds {
		if target, err := os.Readlink(fmt.Sprintf("/proc/%d/fd/%s", pid, fd.Name())); err == nil &&
			strings.HasPrefix(target, tmp+"/") && strings.HasSuffix(target, " (deleted)") {
			return true
		}
	}
	return false
}

// TestScanKilled: a `scangate scan` killed in the middle of a scan, with
// SIGKILL (no cleanup runs) or SIGTERM (the scan is cancelled), leaves
// nothing in $TMPDIR. The scan is held mid-way by the registry, which
// stalls the top layer's blob while the base layer's dpkg status sits in
// the scan's content file.
//
// Fixed here: after SIGKILL the content file, scangate-content-NNN, stayed
// in $TMPDIR for good.
func TestScanKilled(t *testing.T) {
	if os.Getenv(killChildEnv) != "" {
		runScanChild()
	}
	dir, _ := scanSetup(t)
	img, layers := imagetest.BookwormApp(t)
	stalled, err := layers[1].Digest()
	if err != nil {
		t.Fatal(err)
	}
	hit := make(chan struct{}, 8)
	release := make(chan struct{})
	defer close(release)
	host, push := embeddedRegistry(t, func(h http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.Method == http.MethodGet && strings.HasSuffix(r.URL.Path, "/blobs/"+stalled.String()) {
				hit <- struct{}{}
				select {
				case <-release:
				case <-r.Context().Done():
					return
				}
			}
			h.ServeHTTP(w, r)
		})
	})
	push("app/stalled:1", img)

	for _, sig := range []syscall.Signal{syscall.SIGKILL, syscall.SIGTERM} {
		t.Run(sig.String(), func(t *testing.T) {
			tmp, home := t.TempDir(), t.TempDir()
			args, err := json.Marshal([]string{"--data-dir", dir, "--format", "json", "scan", host + "/app/stalled:1"})
			if err != nil {
				t.Fatal(err)
			}
			cmd := exec.Command(os.Args[0], "-test.run=^TestScanKilled$")
			// GOMAXPROCS 4: every layer is read at once, so the base layer's
			// never waits behind the stalled one.
			cmd.Env = append(os.Environ(), killChildEnv+"="+string(args), "TMPDIR="+tmp, "HOME="+home, "DOCKER_CONFIG="+filepath.Join(home, ".docker"), "GOMAXPROCS=4")
			var stderr strings.Builder
			cmd.Stderr = &stderr
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			exited := make(chan error, 1)
			go func() { exited <- cmd.Wait() }()
			select {
			case <-hit:
			case err := <-exited:
				t.Fatalf("scangate scan ended (%v) before asking for the stalled layer: %s", err, stderr.String())
			}
			giveUp := time.After(2 * time.Minute) // a hang, not a timing
			for !heldContentFile(cmd.Process.Pid, tmp) {
				select {
				case err := <-exited:
					t.Fatalf("scangate scan ended (%v) before it held its content file: %s", err, stderr.String())
				case <-giveUp:
					cmd.Process.Kill()
					t.Fatalf("scangate scan never held its content file: %s", stderr.String())
				case <-time.After(5 * time.Millisecond):
				}
			}
			if err := cmd.Process.Signal(sig); err != nil {
				t.Fatal(err)
			}
			err = <-exited
			t.Logf("after %s: %v; stderr: %s", sig, err, strings.TrimSpace(stderr.String()))
			if err == nil {
				t.Errorf("scangate scan exited 0 after %s mid-scan", sig)
			}
			ents, err := os.ReadDir(tmp)
			if err != nil {
				t.Fatal(err)
			}
			for _, e := range ents {
				t.Errorf("left in $TMPDIR after %s mid-scan: %s", sig, e.Name())
			}
		})
	}
}
