package registry_test

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"testing"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/scangate/scangate/internal/registry"
	"github.com/scangate/scangate/internal/registry/registrytest"
)

// hooks records what the registry tells, and fails pushes while fail is set.
type hooks struct {
	mu      sync.Mutex
	fail    bool
	pushed  []registry.Manifest
	pulled  []registry.Manifest
	deleted []registry.Manifest
}

func (h *hooks) ManifestPushed(_ context.Context, m registry.Manifest) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.fail {
		return errors.New("database is down")
	}
	h.pushed = append(h.pushed, m)
	return nil
}

func (h *hooks) ManifestPulled(_ context.Context, m registry.Manifest) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.pulled = append(h.pulled, m)
}

func (h *hooks) ManifestDeleted(_ context.Context, m registry.Manifest) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.deleted = append(h.deleted, m)
}

// standalone serves a registry of its own over httptest, with hooks, and
// returns it, its base URL and an admin token.

func pushTo(t *testing.T, base, secret, ref string, img v1.Image) error {
	t.Helper()
	r, err := name.ParseReference(strings.TrimPrefix(base, "http://")+"/"+ref, name.Insecure)
	if err != nil {
		t.Fatal(err)
	}
	return remote.Write(r, img, remote.WithAuth(&authn.Basic{Username: "admin", Password: secret}))
}

// A push that cannot be recorded fails for the client with a 500 in the
// specification's shape, and succeeds once it can be; hooks hear tags, and
// no tag for a digest.
func TestPushHook(t *testing.T) {
	h := &hooks{fail: true}
	_, base, secret := registrytest.Start(t, h)
	img := registrytest.SmallImage(t)
	d, err := img.Digest()
	if err != nil {
		t.Fatal(err)
	}
	raw, err := img.RawManifest()
	if err != nil {
		t.Fatal(err)
	}
	mt, err := img.MediaType()
	if err != nil {
		t.Fatal(err)
	}
	registrytest.WantTransportStatus(t, "push while the hook fails", pushTo(t, base, secret, "hook/app:1", img), http.StatusInternalServerError)
	r := registrytest.Do(t, http.MethodPut, base+"/v2/hook/app/manifests/1", "basic:"+secret, raw, map[string]string{"Content-Type": string(mt)})
	if r.Status != http.StatusInternalServerError {
		t.Fatalf("manifest PUT while the hook fails: %d %s, want 500", r.Status, r.Body)
	}
	if c := r.Code(t); c != "UNKNOWN" {
		t.Errorf("error code %s, want UNKNOWN", c)
	}
	if loc := r.Header.Get("Location"); loc != "" {
		t.Errorf("a failed push names a Location: %s", loc)
	}
	// Nothing of the failed push is served: a client that asks first
	// whether the manifest is there must push it again.
	for _, ref := range []string{"1", d.String()} {
		if r := registrytest.Do(t, http.MethodHead, base+"/v2/hook/app/manifests/"+ref, "basic:"+secret, nil, map[string]string{"Accept": string(mt)}); r.Status != http.StatusNotFound {
			t.Errorf("HEAD %s after a failed push: %d, want 404", ref, r.Status)
		}
	}

	h.mu.Lock()
	h.fail = false
	h.mu.Unlock()
	if err := pushTo(t, base, secret, "hook/app:1", img); err != nil {
		t.Fatalf("push again: %v", err)
	}
	if r := registrytest.Do(t, http.MethodPut, base+"/v2/hook/app/manifests/"+d.String(), "basic:"+secret, raw, map[string]string{"Content-Type": string(mt)}); r.Status != http.StatusCreated {
		t.Fatalf("PUT by digest: %d %s", r.Status, r.Body)
	}
	registrytest.Do(t, http.MethodGet, base+"/v2/hook/app/manifests/1", "basic:"+secret, nil, map[string]string{"Accept": string(mt)})
	registrytest.Do(t, http.MethodGet, base+"/v2/hook/app/manifests/"+d.String(), "basic:"+secret, nil, map[string]string{"Accept": string(mt)})

	// A failed push of another image under the same tag leaves the tag
	// where it was, and does not store the other image.
	h.mu.Lock()
	h.fail = true
	h.mu.Unlock()
	other := registrytest.SmallImage(t)
	od, _ := other.Digest()
	registrytest.WantTransportStatus(t, "push over the tag while the hook fails", pushTo(t, base, secret, "hook/app:1", other), http.StatusInternalServerError)
	if r := registrytest.Do(t, http.MethodHead, base+"/v2/hook/app/manifests/1", "basic:"+secret, nil, map[string]string{"Accept": string(mt)}); r.Status != http.StatusOK || r.Header.Get("Docker-Content-Digest") != d.String() {
		t.Errorf("HEAD 1 after a failed push over it: %d %s, want 200 %s", r.Status, r.Header.Get("Docker-Content-Digest"), d)
	}
	if r := registrytest.Do(t, http.MethodHead, base+"/v2/hook/app/manifests/"+od.String(), "basic:"+secret, nil, map[string]string{"Accept": string(mt)}); r.Status != http.StatusNotFound {
		t.Errorf("HEAD of the image whose push failed: %d, want 404", r.Status)
	}

	h.mu.Lock()
	defer h.mu.Unlock()
	want := []registry.Manifest{
		{Repository: "hook/app", Digest: d.String(), MediaType: string(mt), Tag: "1"},
		{Repository: "hook/app", Digest: d.String(), MediaType: string(mt)},
	}
	if fmt.Sprint(h.pushed) != fmt.Sprint(want) {
		t.Errorf("pushed %+v\nwant %+v", h.pushed, want)
	}
	if fmt.Sprint(h.pulled) != fmt.Sprint(want) {
		t.Errorf("pulled %+v\nwant %+v", h.pulled, want)
	}
}

// Manifests lists nothing, without an error, in an empty registry and in a
// repository that holds blobs and no manifest; then the pushed manifests.
func TestManifests(t *testing.T) {
	reg, base, secret := registrytest.Start(t, nil)
	ctx := context.Background()
	list := func() []registry.Manifest {
		t.Helper()
		var got []registry.Manifest
		if err := reg.Manifests(ctx, func(m registry.Manifest) error { got = append(got, m); return nil }); err != nil {
			t.Fatalf("Manifests: %v", err)
		}
		return got
	}
	if got := list(); len(got) != 0 {
		t.Fatalf("empty registry: %v", got)
	}

	// A blob alone, as an interrupted push leaves.
	up := registrytest.Do(t, http.MethodPost, base+"/v2/blobs/only/blobs/uploads/", "basic:"+secret, nil, nil)
	if up.Status != http.StatusAccepted {
		t.Fatalf("POST upload: %d %s", up.Status, up.Body)
	}
	loc := up.Header.Get("Location")
	if !strings.HasPrefix(loc, "http") {
		loc = base + loc
	}
	sep := "?"
	if strings.Contains(loc, "?") {
		sep = "&"
	}
	blob := []byte("a blob and no manifest")
	if r := registrytest.Do(t, http.MethodPut, loc+sep+"digest=sha256:"+sha256Hex(blob), "basic:"+secret, blob,
		map[string]string{"Content-Type": "application/octet-stream"}); r.Status != http.StatusCreated {
		t.Fatalf("PUT blob: %d %s", r.Status, r.Body)
	}
	if got := list(); len(got) != 0 {
		t.Fatalf("blob-only repository: %v", got)
	}

	img := registrytest.SmallImage(t)
	if err := pushTo(t, base, secret, "listed/app:1", img); err != nil {
		t.Fatal(err)
	}
	d, _ := img.Digest()
	got := list()
	if len(got) != 1 || got[0].Repository != "listed/app" || got[0].Digest != d.String() {
		t.Fatalf("after a push: %+v, want listed/app@%s", got, d)
	}
	// fn's error stops the listing and is returned.
	stop := errors.New("stop")
	if err := reg.Manifests(ctx, func(registry.Manifest) error { return stop }); !errors.Is(err, stop) {
		t.Errorf("Manifests with a failing fn: %v, want %v", err, stop)
	}
}

func sha256Hex(b []byte) string {
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:])
}
