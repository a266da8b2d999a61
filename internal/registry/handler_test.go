package registry_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/remote/transport"

	"github.com/scangate/scangate/internal/auth"
	"github.com/scangate/scangate/internal/imagetest"
	"github.com/scangate/scangate/internal/registry"
	"github.com/scangate/scangate/internal/server"
	"github.com/scangate/scangate/internal/servertest"
	"github.com/scangate/scangate/internal/store"
)

// unique makes repository names and tags no other run, nor another test of
// this run, uses.
func unique(prefix string) string {
	return fmt.Sprintf("%s-%d", prefix, time.Now().UnixNano())
}

// token makes a token with role on the server and returns its secret.
func token(t *testing.T, st *store.Store, role auth.Role) string {
	t.Helper()
	secret, _, err := auth.NewTokens(st).Create(context.Background(), unique(string(role)), role)
	if err != nil {
		t.Fatal(err)
	}
	return secret
}

// specError is a distribution-spec error body.
type specError struct {
	Errors []struct {
		Code    string `json:"code"`
		Message string `json:"message"`
	} `json:"errors"`
}

// result is a registry response read in full.
type result struct {
	status int
	header http.Header
	body   []byte
}

// code returns the first error code of a distribution-spec error body, and
// fails the test when the body is not one.
func (r result) code(t *testing.T) string {
	t.Helper()
	if ct := r.header.Get("Content-Type"); !strings.HasPrefix(ct, "application/json") {
		t.Fatalf("status %d: Content-Type %q, want application/json; body %q", r.status, ct, r.body)
	}
	var e specError
	if err := json.Unmarshal(r.body, &e); err != nil || len(e.Errors) == 0 || e.Errors[0].Code == "" {
		t.Fatalf("status %d: body %q is not a distribution-spec error (%v)", r.status, r.body, err)
	}
	return e.Errors[0].Code
}

// do sends one registry request; auth is "" (none), "basic:SECRET" or
// "bearer:SECRET".
func do(t *testing.T, method, url, creds string, body []byte, header map[string]string) result {
	t.Helper()
	req, err := http.NewRequest(method, url, bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	switch kind, secret, _ := strings.Cut(creds, ":"); kind {
	case "basic":
		req.SetBasicAuth("ci", secret)
	case "bearer":
		req.Header.Set("Authorization", "Bearer "+secret)
	}
	for k, v := range header {
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return result{status: resp.StatusCode, header: resp.Header, body: data}
}

// smallImage is a one-layer image no other test pushes.
func smallImage(t *testing.T) v1.Image {
	t.Helper()
	return imagetest.Build(t, imagetest.Layer(t, imagetest.Entry{Name: "etc/id", Body: unique("image")}))
}

// wantAuthChallenge checks a 401 that asks for Basic credentials.
func wantAuthChallenge(t *testing.T, what string, r result) {
	t.Helper()
	if r.status != http.StatusUnauthorized {
		t.Fatalf("%s: status %d, want 401; body %q", what, r.status, r.body)
	}
	if got := r.header.Get("WWW-Authenticate"); got != `Basic realm="scangate"` {
		t.Errorf("%s: WWW-Authenticate %q, want Basic realm=\"scangate\"", what, got)
	}
	if c := r.code(t); c != "UNAUTHORIZED" {
		t.Errorf("%s: error code %s, want UNAUTHORIZED", what, c)
	}
}

// wantDenied checks a 403 with a DENIED error.
func wantDenied(t *testing.T, what string, r result) {
	t.Helper()
	if r.status != http.StatusForbidden {
		t.Fatalf("%s: status %d, want 403; body %q", what, r.status, r.body)
	}
	if c := r.code(t); c != "DENIED" {
		t.Errorf("%s: error code %s, want DENIED", what, c)
	}
}

// wantTransportStatus checks that a go-containerregistry call failed with
// status.
func wantTransportStatus(t *testing.T, what string, err error, status int) {
	t.Helper()
	var te *transport.Error
	if !errors.As(err, &te) || te.StatusCode != status {
		t.Fatalf("%s: error %v, want HTTP %d", what, err, status)
	}
}

// Without credentials every request, /v2/ included, is asked for them; a
// token that is not one is refused the same way, in Basic and Bearer form.
func TestCredentialsRequired(t *testing.T) {
	s := servertest.Start(t, servertest.Options{Feeds: []string{}})
	base := "http://" + s.Addr
	repo := unique("auth/none")
	for _, path := range []string{"/v2/", "/v2", "/v2/_catalog", "/v2/" + repo + "/tags/list", "/v2/" + repo + "/manifests/1"} {
		wantAuthChallenge(t, "GET "+path, do(t, http.MethodGet, base+path, "", nil, nil))
	}
	wantAuthChallenge(t, "POST upload", do(t, http.MethodPost, base+"/v2/"+repo+"/blobs/uploads/", "", nil, nil))
	wantAuthChallenge(t, "DELETE manifest", do(t, http.MethodDelete, base+"/v2/"+repo+"/manifests/sha256:"+strings.Repeat("0", 64), "", nil, nil))

	for _, creds := range []string{"basic:sgt_not-a-token", "bearer:sgt_not-a-token", "basic:", "bearer:" + s.Token + "x"} {
		wantAuthChallenge(t, "GET /v2/ with "+creds, do(t, http.MethodGet, base+"/v2/", creds, nil, nil))
	}
	// A revoked token is no token.
	secret, tok, err := auth.NewTokens(s.Store).Create(context.Background(), unique("revoked"), auth.RoleAdmin)
	if err != nil {
		t.Fatal(err)
	}
	if r := do(t, http.MethodGet, base+"/v2/", "basic:"+secret, nil, nil); r.status != http.StatusOK {
		t.Fatalf("GET /v2/ with a fresh token: %d %s", r.status, r.body)
	}
	if err := auth.NewTokens(s.Store).Revoke(context.Background(), tok.Name); err != nil {
		t.Fatal(err)
	}
	wantAuthChallenge(t, "GET /v2/ with a revoked token", do(t, http.MethodGet, base+"/v2/", "basic:"+secret, nil, nil))

	// The admin token works as a Basic password and as a Bearer token.
	for _, creds := range []string{"basic:" + s.Token, "bearer:" + s.Token} {
		if r := do(t, http.MethodGet, base+"/v2/", creds, nil, nil); r.status != http.StatusOK {
			t.Errorf("GET /v2/ as %s: %d %s", strings.SplitN(creds, ":", 2)[0], r.status, r.body)
		}
	}
}

// A reader pulls and may not push; a pusher pushes and may not delete; an
// admin deletes.
func TestRoles(t *testing.T) {
	s := servertest.Start(t, servertest.Options{Feeds: []string{}})
	base := "http://" + s.Addr
	reader := token(t, s.Store, auth.RoleReader)
	pusher := token(t, s.Store, auth.RolePusher)
	repo := unique("roles/app")
	img := smallImage(t)
	ref := s.Ref(t, repo+":1")

	// reader: no push, with a 403 in the specification's shape.
	err := remote.Write(ref, img, remote.WithAuth(&authn.Basic{Username: "r", Password: reader}))
	wantTransportStatus(t, "push as reader", err, http.StatusForbidden)
	wantDenied(t, "POST upload as reader", do(t, http.MethodPost, base+"/v2/"+repo+"/blobs/uploads/", "basic:"+reader, nil, nil))
	wantDenied(t, "PUT manifest as reader", do(t, http.MethodPut, base+"/v2/"+repo+"/manifests/1", "bearer:"+reader, []byte("{}"),
		map[string]string{"Content-Type": "application/vnd.oci.image.manifest.v1+json"}))

	// pusher: pushes, and pulls back what it pushed.
	if err := remote.Write(ref, img, remote.WithAuth(&authn.Basic{Username: "p", Password: pusher})); err != nil {
		t.Fatalf("push as pusher: %v", err)
	}
	want, err := img.Digest()
	if err != nil {
		t.Fatal(err)
	}
	for who, secret := range map[string]string{"reader": reader, "pusher": pusher} {
		got, err := remote.Image(ref, remote.WithAuth(&authn.Basic{Username: who, Password: secret}))
		if err != nil {
			t.Fatalf("pull as %s: %v", who, err)
		}
		if d, _ := got.Digest(); d != want {
			t.Errorf("pull as %s: digest %s, want %s", who, d, want)
		}
	}
	// pusher may cancel its own upload (clients do, when they give up)...
	up := do(t, http.MethodPost, base+"/v2/"+repo+"/blobs/uploads/", "basic:"+pusher, nil, nil)
	if up.status != http.StatusAccepted {
		t.Fatalf("POST upload as pusher: %d %s", up.status, up.body)
	}
	loc := up.header.Get("Location")
	if !strings.HasPrefix(loc, "http") {
		loc = base + loc
	}
	if r := do(t, http.MethodDelete, loc, "basic:"+pusher, nil, nil); r.status != http.StatusNoContent {
		t.Errorf("cancel upload as pusher: %d %s, want 204", r.status, r.body)
	}
	// ...but deletes nothing stored.
	manifest := base + "/v2/" + repo + "/manifests/" + want.String()
	wantDenied(t, "DELETE manifest as pusher", do(t, http.MethodDelete, manifest, "basic:"+pusher, nil, nil))
	wantDenied(t, "DELETE tag as pusher", do(t, http.MethodDelete, base+"/v2/"+repo+"/manifests/1", "basic:"+pusher, nil, nil))
	layers, err := img.Layers()
	if err != nil {
		t.Fatal(err)
	}
	ld, err := layers[0].Digest()
	if err != nil {
		t.Fatal(err)
	}
	wantDenied(t, "DELETE blob as pusher", do(t, http.MethodDelete, base+"/v2/"+repo+"/blobs/"+ld.String(), "basic:"+pusher, nil, nil))
	wantDenied(t, "DELETE manifest as reader", do(t, http.MethodDelete, manifest, "basic:"+reader, nil, nil))
	if r := do(t, http.MethodHead, manifest, "basic:"+reader, nil, nil); r.status != http.StatusOK {
		t.Fatalf("the manifest is gone after refused deletes: HEAD %d", r.status)
	}

	// admin: deletes.
	if r := do(t, http.MethodDelete, manifest, "bearer:"+s.Token, nil, nil); r.status != http.StatusAccepted {
		t.Fatalf("DELETE manifest as admin: %d %s, want 202", r.status, r.body)
	}
	if r := do(t, http.MethodHead, manifest, "basic:"+reader, nil, nil); r.status != http.StatusNotFound {
		t.Errorf("HEAD after delete: %d, want 404", r.status)
	}
}

// Anonymous pull lets requests without credentials read, never write, and
// /v2/ still asks for credentials (Docker learns from it how to log in).
func TestAnonymousPull(t *testing.T) {
	for _, on := range []bool{false, true} {
		t.Run(fmt.Sprintf("anonymous-pull=%v", on), func(t *testing.T) {
			s := servertest.Start(t, servertest.Options{Feeds: []string{}, Config: server.Config{AnonymousPull: on}})
			base := "http://" + s.Addr
			repo := unique("anon/app")
			img := smallImage(t)
			d := s.Push(t, repo+":1", img)
			ref := s.Ref(t, repo+":1")

			wantAuthChallenge(t, "GET /v2/", do(t, http.MethodGet, base+"/v2/", "", nil, nil))
			_, err := remote.Image(ref, remote.WithAuth(authn.Anonymous))
			manifest := do(t, http.MethodGet, base+"/v2/"+repo+"/manifests/"+d, "", nil,
				map[string]string{"Accept": "application/vnd.docker.distribution.manifest.v2+json, application/vnd.oci.image.manifest.v1+json"})
			if on {
				if err != nil {
					t.Fatalf("anonymous pull: %v", err)
				}
				if manifest.status != http.StatusOK {
					t.Errorf("anonymous GET manifest: %d %s", manifest.status, manifest.body)
				}
				if r := do(t, http.MethodGet, base+"/v2/"+repo+"/tags/list", "", nil, nil); r.status != http.StatusOK {
					t.Errorf("anonymous tag list: %d %s", r.status, r.body)
				}
				// A token that is wrong is still refused: anonymous
				// means no credentials, not bad ones.
				wantAuthChallenge(t, "GET manifest with a bad token", do(t, http.MethodGet, base+"/v2/"+repo+"/manifests/"+d, "basic:sgt_bad", nil, nil))
			} else {
				wantTransportStatus(t, "anonymous pull", err, http.StatusUnauthorized)
				wantAuthChallenge(t, "anonymous GET manifest", manifest)
			}
			err = remote.Write(s.Ref(t, repo+":2"), smallImage(t), remote.WithAuth(authn.Anonymous))
			wantTransportStatus(t, "anonymous push", err, http.StatusUnauthorized)
			wantAuthChallenge(t, "anonymous POST upload", do(t, http.MethodPost, base+"/v2/"+repo+"/blobs/uploads/", "", nil, nil))
			wantAuthChallenge(t, "anonymous DELETE", do(t, http.MethodDelete, base+"/v2/"+repo+"/manifests/"+d, "", nil, nil))
		})
	}
}

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
func standalone(t *testing.T, h registry.Hooks) (*registry.Registry, string, string) {
	t.Helper()
	ctx := context.Background()
	dir := t.TempDir()
	st, err := store.Open(ctx, filepath.Join(dir, store.FileName))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	tokens := auth.NewTokens(st)
	secret, _, err := tokens.Create(ctx, "admin", auth.RoleAdmin)
	if err != nil {
		t.Fatal(err)
	}
	reg, err := registry.New(ctx, registry.Config{Root: filepath.Join(dir, "registry"), Tokens: tokens, Hooks: h})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { reg.Close() })
	srv := httptest.NewServer(reg)
	t.Cleanup(srv.Close)
	return reg, srv.URL, secret
}

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
	_, base, secret := standalone(t, h)
	img := smallImage(t)
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
	wantTransportStatus(t, "push while the hook fails", pushTo(t, base, secret, "hook/app:1", img), http.StatusInternalServerError)
	r := do(t, http.MethodPut, base+"/v2/hook/app/manifests/1", "basic:"+secret, raw, map[string]string{"Content-Type": string(mt)})
	if r.status != http.StatusInternalServerError {
		t.Fatalf("manifest PUT while the hook fails: %d %s, want 500", r.status, r.body)
	}
	if c := r.code(t); c != "UNKNOWN" {
		t.Errorf("error code %s, want UNKNOWN", c)
	}
	if loc := r.header.Get("Location"); loc != "" {
		t.Errorf("a failed push names a Location: %s", loc)
	}
	// Nothing of the failed push is served: a client that asks first
	// whether the manifest is there must push it again.
	for _, ref := range []string{"1", d.String()} {
		if r := do(t, http.MethodHead, base+"/v2/hook/app/manifests/"+ref, "basic:"+secret, nil, map[string]string{"Accept": string(mt)}); r.status != http.StatusNotFound {
			t.Errorf("HEAD %s after a failed push: %d, want 404", ref, r.status)
		}
	}

	h.mu.Lock()
	h.fail = false
	h.mu.Unlock()
	if err := pushTo(t, base, secret, "hook/app:1", img); err != nil {
		t.Fatalf("push again: %v", err)
	}
	if r := do(t, http.MethodPut, base+"/v2/hook/app/manifests/"+d.String(), "basic:"+secret, raw, map[string]string{"Content-Type": string(mt)}); r.status != http.StatusCreated {
		t.Fatalf("PUT by digest: %d %s", r.status, r.body)
	}
	do(t, http.MethodGet, base+"/v2/hook/app/manifests/1", "basic:"+secret, nil, map[string]string{"Accept": string(mt)})
	do(t, http.MethodGet, base+"/v2/hook/app/manifests/"+d.String(), "basic:"+secret, nil, map[string]string{"Accept": string(mt)})

	// A failed push of another image under the same tag leaves the tag
	// where it was, and does not store the other image.
	h.mu.Lock()
	h.fail = true
	h.mu.Unlock()
	other := smallImage(t)
	od, _ := other.Digest()
	wantTransportStatus(t, "push over the tag while the hook fails", pushTo(t, base, secret, "hook/app:1", other), http.StatusInternalServerError)
	if r := do(t, http.MethodHead, base+"/v2/hook/app/manifests/1", "basic:"+secret, nil, map[string]string{"Accept": string(mt)}); r.status != http.StatusOK || r.header.Get("Docker-Content-Digest") != d.String() {
		t.Errorf("HEAD 1 after a failed push over it: %d %s, want 200 %s", r.status, r.header.Get("Docker-Content-Digest"), d)
	}
	if r := do(t, http.MethodHead, base+"/v2/hook/app/manifests/"+od.String(), "basic:"+secret, nil, map[string]string{"Accept": string(mt)}); r.status != http.StatusNotFound {
		t.Errorf("HEAD of the image whose push failed: %d, want 404", r.status)
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
	reg, base, secret := standalone(t, nil)
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
	up := do(t, http.MethodPost, base+"/v2/blobs/only/blobs/uploads/", "basic:"+secret, nil, nil)
	if up.status != http.StatusAccepted {
		t.Fatalf("POST upload: %d %s", up.status, up.body)
	}
	loc := up.header.Get("Location")
	if !strings.HasPrefix(loc, "http") {
		loc = base + loc
	}
	sep := "?"
	if strings.Contains(loc, "?") {
		sep = "&"
	}
	blob := []byte("a blob and no manifest")
	if r := do(t, http.MethodPut, loc+sep+"digest=sha256:"+sha256Hex(blob), "basic:"+secret, blob,
		map[string]string{"Content-Type": "application/octet-stream"}); r.status != http.StatusCreated {
		t.Fatalf("PUT blob: %d %s", r.status, r.body)
	}
	if got := list(); len(got) != 0 {
		t.Fatalf("blob-only repository: %v", got)
	}

	img := smallImage(t)
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
