package registry_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/scangate/scangate/internal/auth"
	"github.com/scangate/scangate/internal/registry"
	"github.com/scangate/scangate/internal/registry/registrytest"
	"github.com/scangate/scangate/internal/server"
	"github.com/scangate/scangate/internal/servertest"
	"github.com/scangate/scangate/internal/store"
)

// token makes a token with role on the server and returns its secret.
func token(t *testing.T, st *store.Store, role auth.Role) string {
	t.Helper()
	secret, _, err := auth.NewTokens(st).Create(context.Background(), registrytest.Unique(string(role)), role)
	if err != nil {
		t.Fatal(err)
	}
	return secret
}

// Without credentials every request, /v2/ included, is asked for them; a
// token that is not one is refused the same way, in Basic and Bearer form.
func TestCredentialsRequired(t *testing.T) {
	s := servertest.Start(t, servertest.Options{Feeds: []string{}})
	base := "http://" + s.Addr
	repo := registrytest.Unique("auth/none")
	for _, path := range []string{"/v2/", "/v2", "/v2/_catalog", "/v2/" + repo + "/tags/list", "/v2/" + repo + "/manifests/1"} {
		registrytest.WantAuthChallenge(t, "GET "+path, registrytest.Do(t, http.MethodGet, base+path, "", nil, nil))
	}
	registrytest.WantAuthChallenge(t, "POST upload", registrytest.Do(t, http.MethodPost, base+"/v2/"+repo+"/blobs/uploads/", "", nil, nil))
	registrytest.WantAuthChallenge(t, "DELETE manifest", registrytest.Do(t, http.MethodDelete, base+"/v2/"+repo+"/manifests/sha256:"+strings.Repeat("0", 64), "", nil, nil))

	for _, creds := range []string{"basic:sgt_not-a-token", "bearer:sgt_not-a-token", "basic:", "bearer:" + s.Token + "x"} {
		registrytest.WantAuthChallenge(t, "GET /v2/ with "+creds, registrytest.Do(t, http.MethodGet, base+"/v2/", creds, nil, nil))
	}
	// A revoked token is no token.
	secret, tok, err := auth.NewTokens(s.Store).Create(context.Background(), registrytest.Unique("revoked"), auth.RoleAdmin)
	if err != nil {
		t.Fatal(err)
	}
	if r := registrytest.Do(t, http.MethodGet, base+"/v2/", "basic:"+secret, nil, nil); r.Status != http.StatusOK {
		t.Fatalf("GET /v2/ with a fresh token: %d %s", r.Status, r.Body)
	}
	if err := auth.NewTokens(s.Store).Revoke(context.Background(), tok.Name); err != nil {
		t.Fatal(err)
	}
	registrytest.WantAuthChallenge(t, "GET /v2/ with a revoked token", registrytest.Do(t, http.MethodGet, base+"/v2/", "basic:"+secret, nil, nil))

	// The admin token works as a Basic password and as a Bearer token.
	for _, creds := range []string{"basic:" + s.Token, "bearer:" + s.Token} {
		if r := registrytest.Do(t, http.MethodGet, base+"/v2/", creds, nil, nil); r.Status != http.StatusOK {
			t.Errorf("GET /v2/ as %s: %d %s", strings.SplitN(creds, ":", 2)[0], r.Status, r.Body)
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
	repo := registrytest.Unique("roles/app")
	img := registrytest.SmallImage(t)
	ref := s.Ref(t, repo+":1")

	// reader: no push, with a 403 in the specification's shape.
	err := remote.Write(ref, img, remote.WithAuth(&authn.Basic{Username: "r", Password: reader}))
	registrytest.WantTransportStatus(t, "push as reader", err, http.StatusForbidden)
	registrytest.WantDenied(t, "POST upload as reader", registrytest.Do(t, http.MethodPost, base+"/v2/"+repo+"/blobs/uploads/", "basic:"+reader, nil, nil))
	registrytest.WantDenied(t, "PUT manifest as reader", registrytest.Do(t, http.MethodPut, base+"/v2/"+repo+"/manifests/1", "bearer:"+reader, []byte("{}"),
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
	up := registrytest.Do(t, http.MethodPost, base+"/v2/"+repo+"/blobs/uploads/", "basic:"+pusher, nil, nil)
	if up.Status != http.StatusAccepted {
		t.Fatalf("POST upload as pusher: %d %s", up.Status, up.Body)
	}
	loc := up.Header.Get("Location")
	if !strings.HasPrefix(loc, "http") {
		loc = base + loc
	}
	if r := registrytest.Do(t, http.MethodDelete, loc, "basic:"+pusher, nil, nil); r.Status != http.StatusNoContent {
		t.Errorf("cancel upload as pusher: %d %s, want 204", r.Status, r.Body)
	}
	// ...but deletes nothing stored.
	manifest := base + "/v2/" + repo + "/manifests/" + want.String()
	registrytest.WantDenied(t, "DELETE manifest as pusher", registrytest.Do(t, http.MethodDelete, manifest, "basic:"+pusher, nil, nil))
	registrytest.WantDenied(t, "DELETE tag as pusher", registrytest.Do(t, http.MethodDelete, base+"/v2/"+repo+"/manifests/1", "basic:"+pusher, nil, nil))
	layers, err := img.Layers()
	if err != nil {
		t.Fatal(err)
	}
	ld, err := layers[0].Digest()
	if err != nil {
		t.Fatal(err)
	}
	registrytest.WantDenied(t, "DELETE blob as pusher", registrytest.Do(t, http.MethodDelete, base+"/v2/"+repo+"/blobs/"+ld.String(), "basic:"+pusher, nil, nil))
	registrytest.WantDenied(t, "DELETE manifest as reader", registrytest.Do(t, http.MethodDelete, manifest, "basic:"+reader, nil, nil))
	if r := registrytest.Do(t, http.MethodHead, manifest, "basic:"+reader, nil, nil); r.Status != http.StatusOK {
		t.Fatalf("the manifest is gone after refused deletes: HEAD %d", r.Status)
	}

	// admin: deletes.
	if r := registrytest.Do(t, http.MethodDelete, manifest, "bearer:"+s.Token, nil, nil); r.Status != http.StatusAccepted {
		t.Fatalf("DELETE manifest as admin: %d %s, want 202", r.Status, r.Body)
	}
	if r := registrytest.Do(t, http.MethodHead, manifest, "basic:"+reader, nil, nil); r.Status != http.StatusNotFound {
		t.Errorf("HEAD after delete: %d, want 404", r.Status)
	}
}

// Anonymous pull lets requests without credentials read, never write, and
// /v2/ still asks for credentials (Docker learns from it how to log in).
func TestAnonymousPull(t *testing.T) {
	for _, on := range []bool{false, true} {
		t.Run(fmt.Sprintf("anonymous-pull=%v", on), func(t *testing.T) {
			s := servertest.Start(t, servertest.Options{Feeds: []string{}, Config: server.Config{AnonymousPull: on}})
			base := "http://" + s.Addr
			repo := registrytest.Unique("anon/app")
			img := registrytest.SmallImage(t)
			d := s.Push(t, repo+":1", img)
			ref := s.Ref(t, repo+":1")

			// With anonymous pulls the challenge is Bearer, through the
			// token endpoint (Docker asks a Basic realm only with a login).
			challenge := func(what string, r registrytest.Result) {
				t.Helper()
				if on {
					registrytest.WantChallenge(t, what, r, `Bearer realm="`+base+registry.TokenPath+`",service="scangate"`)
				} else {
					registrytest.WantAuthChallenge(t, what, r)
				}
			}
			challenge("GET /v2/", registrytest.Do(t, http.MethodGet, base+"/v2/", "", nil, nil))
			_, err := remote.Image(ref, remote.WithAuth(authn.Anonymous))
			manifest := registrytest.Do(t, http.MethodGet, base+"/v2/"+repo+"/manifests/"+d, "", nil,
				map[string]string{"Accept": "application/vnd.docker.distribution.manifest.v2+json, application/vnd.oci.image.manifest.v1+json"})
			if on {
				if err != nil {
					t.Fatalf("anonymous pull: %v", err)
				}
				if manifest.Status != http.StatusOK {
					t.Errorf("anonymous GET manifest: %d %s", manifest.Status, manifest.Body)
				}
				if r := registrytest.Do(t, http.MethodGet, base+"/v2/"+repo+"/tags/list", "", nil, nil); r.Status != http.StatusOK {
					t.Errorf("anonymous tag list: %d %s", r.Status, r.Body)
				}
				// A token that is wrong is still refused: anonymous
				// means no credentials, not bad ones.
				challenge("GET manifest with a bad token", registrytest.Do(t, http.MethodGet, base+"/v2/"+repo+"/manifests/"+d, "basic:sgt_bad", nil, nil))
				// The token endpoint: none for a bad token, the anonymous
				// one without credentials, the client's own for a good one.
				registrytest.WantAuthChallenge(t, "a token for a bad token", registrytest.Do(t, http.MethodGet, base+registry.TokenPath, "basic:sgt_bad", nil, nil))
				for _, c := range []struct{ creds, want string }{{"", "anonymous"}, {"basic:" + s.Token, s.Token}} {
					r := registrytest.Do(t, http.MethodGet, base+registry.TokenPath+"?service=scangate&scope=repository:"+repo+":pull", c.creds, nil, nil)
					var tok struct{ Token string }
					if err := json.Unmarshal(r.Body, &tok); r.Status != http.StatusOK || err != nil || tok.Token != c.want {
						t.Errorf("token endpoint, credentials %v: %d %s", c.creds != "", r.Status, r.Body)
					}
				}
				// The anonymous token pulls and pushes nothing more.
				if r := registrytest.Do(t, http.MethodGet, base+"/v2/"+repo+"/tags/list", "bearer:anonymous", nil, nil); r.Status != http.StatusOK {
					t.Errorf("tag list with the anonymous token: %d %s", r.Status, r.Body)
				}
				challenge("POST upload with the anonymous token", registrytest.Do(t, http.MethodPost, base+"/v2/"+repo+"/blobs/uploads/", "bearer:anonymous", nil, nil))
			} else {
				registrytest.WantTransportStatus(t, "anonymous pull", err, http.StatusUnauthorized)
				challenge("anonymous GET manifest", manifest)
				registrytest.WantAuthChallenge(t, "a token with no credentials", registrytest.Do(t, http.MethodGet, base+registry.TokenPath, "", nil, nil))
			}
			err = remote.Write(s.Ref(t, repo+":2"), registrytest.SmallImage(t), remote.WithAuth(authn.Anonymous))
			registrytest.WantTransportStatus(t, "anonymous push", err, http.StatusUnauthorized)
			challenge("anonymous POST upload", registrytest.Do(t, http.MethodPost, base+"/v2/"+repo+"/blobs/uploads/", "", nil, nil))
			challenge("anonymous DELETE", registrytest.Do(t, http.MethodDelete, base+"/v2/"+repo+"/manifests/"+d, "", nil, nil))
		})
	}
}
