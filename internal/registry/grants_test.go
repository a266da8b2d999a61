package registry_test

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/scangate/scangate/internal/auth"
	"github.com/scangate/scangate/internal/registry"
	"github.com/scangate/scangate/internal/registry/registrytest"
	"github.com/scangate/scangate/internal/store"
)

// scopedRegistry serves a registry with guard over httptest and returns
// its base URL and a function that makes tokens.
func scopedRegistry(t *testing.T, guard registry.TagGuard) (string, func(name string, role auth.Role, scope string) string) {
	t.Helper()
	ctx := context.Background()
	dir := t.TempDir()
	st, err := store.Open(ctx, filepath.Join(dir, store.FileName))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	tokens := auth.NewTokens(st)
	reg, err := registry.New(ctx, registry.Config{Root: filepath.Join(dir, "registry"), Tokens: tokens, Hooks: &hooks{}, TagGuard: guard,
		MaxCatalog: 100})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { reg.Close() })
	srv := httptest.NewServer(reg)
	t.Cleanup(srv.Close)
	mk := func(name string, role auth.Role, scope string) string {
		sc, err := auth.ParseScope(scope)
		if err != nil {
			t.Fatal(err)
		}
		secret, _, err := tokens.CreateToken(ctx, auth.Spec{Name: name, Role: role, Repositories: sc})
		if err != nil {
			t.Fatal(err)
		}
		return secret
	}
	return srv.URL, mk
}

func pull(t *testing.T, base, secret, ref string) error {
	t.Helper()
	r, err := name.ParseReference(strings.TrimPrefix(base, "http://")+"/"+ref, name.Insecure)
	if err != nil {
		t.Fatal(err)
	}
	_, err = remote.Image(r, remote.WithAuth(&authn.Basic{Username: "x", Password: secret}))
	return err
}

// A token scoped to shop/* pushes and pulls there only; the catalog it
// reads names only shop/* repositories; it cannot mount a blob from a
// repository outside its scope.
func TestRepositoryScope(t *testing.T) {
	base, mk := scopedRegistry(t, nil)
	admin := mk("admin", auth.RoleAdmin, "")
	shop := mk("shop-ci", auth.RolePusher, "shop/*")
	img := registrytest.SmallImage(t)
	if err := pushTo(t, base, admin, "billing/api:1", img); err != nil {
		t.Fatal(err)
	}
	if err := pushTo(t, base, shop, "shop/api:1", registrytest.SmallImage(t)); err != nil {
		t.Fatalf("scoped push inside its scope: %v", err)
	}
	registrytest.WantTransportStatus(t, "push outside the scope", pushTo(t, base, shop, "billing/api:2", registrytest.SmallImage(t)), http.StatusForbidden)
	r := registrytest.Do(t, http.MethodPost, base+"/v2/billing/api/blobs/uploads/", "basic:"+shop, nil, nil)
	registrytest.WantDenied(t, "upload outside the scope", r)
	if !strings.Contains(string(r.Body), "not granted repository billing/api") {
		t.Errorf("refusal %s does not name the repository", r.Body)
	}
	registrytest.WantTransportStatus(t, "pull outside the scope", pull(t, base, shop, "billing/api:1"), http.StatusForbidden)
	registrytest.WantDenied(t, "tag list outside the scope", registrytest.Do(t, http.MethodGet, base+"/v2/billing/api/tags/list", "basic:"+shop, nil, nil))
	if err := pull(t, base, shop, "shop/api:1"); err != nil {
		t.Fatalf("pull inside the scope: %v", err)
	}
	// Mounting billing/api's layer into shop/web would copy it where the
	// token may read it.
	layers, _ := img.Layers()
	d, _ := layers[0].Digest()
	registrytest.WantDenied(t, "mount from outside the scope", registrytest.Do(t, http.MethodPost, base+"/v2/shop/web/blobs/uploads/?mount="+d.String()+"&from=billing/api", "basic:"+shop, nil, nil))

	catalog := func(secret string) []string {
		r := registrytest.Do(t, http.MethodGet, base+"/v2/_catalog", "basic:"+secret, nil, nil)
		if r.Status != http.StatusOK {
			t.Fatalf("catalog: %d %s", r.Status, r.Body)
		}
		var page struct{ Repositories []string }
		if err := json.Unmarshal(r.Body, &page); err != nil {
			t.Fatal(err)
		}
		return page.Repositories
	}
	if got := catalog(shop); !slices.Equal(got, []string{"shop/api"}) {
		t.Errorf("scoped catalog: %q, want only shop/api", got)
	}
	if got := catalog(admin); !slices.Equal(got, []string{"billing/api", "shop/api"}) {
		t.Errorf("admin catalog: %q", got)
	}
}

// guard keeps tag "latest" and 40-hex tags of repository for the token
// owner, as the server's pipeline guard does.
type guard struct{ repository, owner string }

func (g guard) MayMoveTag(_ context.Context, who registry.Puller, repository, tag string) error {
	if repository != g.repository || who.Token == g.owner || (tag != "latest" && len(tag) != 40) {
		return nil
	}
	return errors.New(repository + ":" + tag + " is immutable: only its pipeline moves it")
}

// A kept tag cannot be pushed over or deleted by anyone but its owner, an
// admin included; other tags, and the digest, stay as they were.
func TestTagGuard(t *testing.T) {
	base, mk := scopedRegistry(t, guard{repository: "shop/api", owner: "builder"})
	builder := mk("builder", auth.RolePusher, "")
	admin := mk("admin", auth.RoleAdmin, "")
	pusher := mk("dev", auth.RolePusher, "shop/*")
	sha := strings.Repeat("ab", 20)
	if err := pushTo(t, base, builder, "shop/api:"+sha, registrytest.SmallImage(t)); err != nil {
		t.Fatalf("the owner pushes its tag: %v", err)
	}
	if err := pushTo(t, base, builder, "shop/api:latest", registrytest.SmallImage(t)); err != nil {
		t.Fatalf("the owner moves its tag: %v", err)
	}
	for _, tag := range []string{sha, "latest"} {
		err := pushTo(t, base, pusher, "shop/api:"+tag, registrytest.SmallImage(t))
		registrytest.WantTransportStatus(t, "push over "+tag, err, http.StatusForbidden)
		if !strings.Contains(err.Error(), "immutable") {
			t.Errorf("refusal %q does not name the rule", err)
		}
		r := registrytest.Do(t, http.MethodDelete, base+"/v2/shop/api/manifests/"+tag, "basic:"+admin, nil, nil)
		registrytest.WantDenied(t, "admin deletes "+tag, r)
	}
	if err := pushTo(t, base, pusher, "shop/api:feature", registrytest.SmallImage(t)); err != nil {
		t.Fatalf("another tag: %v", err)
	}
}
