package registry

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/scangate/scangate/internal/auth"
	"github.com/scangate/scangate/internal/imagetest"
	"github.com/scangate/scangate/internal/store"
)

// BenchmarkUsage measures what a repository's quota costs an upload
// request (POST, PATCH and PUT each measure the repository once): "walk"
// measures its linked blobs from storage, as the first request does (and
// one after a delete, or sizeCacheAge later); "known" takes them as the
// uploads keep them, as the others do, and lists the uploads in progress.
// Run it with
//
//	go test -run XXX -bench Usage ./internal/registry/
func BenchmarkUsage(b *testing.B) {
	ctx := context.Background()
	st, err := store.Open(ctx, filepath.Join(b.TempDir(), store.FileName))
	if err != nil {
		b.Fatal(err)
	}
	defer st.Close()
	tokens := auth.NewTokens(st)
	secret, _, err := tokens.Create(ctx, "bench", auth.RoleAdmin)
	if err != nil {
		b.Fatal(err)
	}
	reg, err := New(ctx, Config{Root: filepath.Join(b.TempDir(), "registry"), Tokens: tokens, RepositoryQuota: 1 << 40})
	if err != nil {
		b.Fatal(err)
	}
	defer reg.Close()
	srv := httptest.NewServer(reg)
	defer srv.Close()
	host := strings.TrimPrefix(srv.URL, "http://")
	for _, layers := range []int{10, 200} {
		repo := fmt.Sprintf("bench/layers-%d", layers)
		ls := make([]v1.Layer, layers)
		for i := range ls {
			ls[i] = imagetest.Layer(b, imagetest.Entry{Name: fmt.Sprintf("f%d", i), Body: fmt.Sprint(i)})
		}
		ref, err := name.ParseReference(host+"/"+repo+":1", name.Insecure)
		if err != nil {
			b.Fatal(err)
		}
		if err := remote.Write(ref, imagetest.Build(b, ls...), remote.WithAuth(&authn.Basic{Username: "b", Password: secret})); err != nil {
			b.Fatal(err)
		}
		for _, walk := range []bool{true, false} {
			b.Run(fmt.Sprintf("layers=%d/walk=%t", layers, walk), func(b *testing.B) {
				var n int64
				for b.Loop() {
					if walk {
						reg.quotas.forget(repo)
					}
					if n, err = reg.Usage(ctx, repo); err != nil {
						b.Fatal(err)
					}
				}
				b.ReportMetric(float64(n), "bytes")
			})
		}
	}
}

// The repository and upload id are read from request paths anyone sends:
// the reading must not panic, and a repository it returns is a part of
// the path that leaves no "/blobs/uploads" or "/manifests/" in the name.
func FuzzUploadName(f *testing.F) {
	for _, p := range []string{"/v2/a/b/blobs/uploads/", "/v2/a/blobs/uploads/123-abc", "/v2//blobs/uploads/", "/v2/x/manifests/1",
		"/v2/a/blobs/uploads/x/y", "/v2/a/blobs/sha256:00", "/v2/", "/v3/a/blobs/uploads/"} {
		f.Add(p)
	}
	f.Fuzz(func(t *testing.T, p string) {
		req := httptest.NewRequest(http.MethodPatch, "/", nil)
		req.URL.Path = p
		if name, id, ok := uploadName(req); ok {
			if name == "" || strings.Contains(id, "/") || !strings.HasPrefix(p, "/v2/"+name+"/blobs/uploads") {
				t.Fatalf("%q: name %q id %q", p, name, id)
			}
		}
		if name, ok := repositoryOf(p); ok && (name == "" || !strings.HasPrefix(p, "/v2/"+name+"/")) {
			t.Fatalf("%q: repository %q", p, name)
		}
	})
}
