package registry_test

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/scangate/scangate/internal/auth"
	"github.com/scangate/scangate/internal/redistest"
	"github.com/scangate/scangate/internal/registry"
	"github.com/scangate/scangate/internal/registry/registrytest"
	"github.com/scangate/scangate/internal/s3test"
)

// replica serves one registry on storage with secret and cache, as one
// replica of several would; its Root (the data folder's) is its own. The
// replicas share a token store: here they stand for the registry layer
// only (a database shared by replicas is package store's concern).
func replica(t *testing.T, tokens *auth.Tokens, storage, secret, cache string) string {
	t.Helper()
	reg, err := registry.New(context.Background(), registry.Config{
		Root: filepath.Join(t.TempDir(), "registry"), Storage: storage, Secret: secret, Cache: cache, Tokens: tokens,
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { reg.Close() })
	if err := reg.Ping(context.Background()); err != nil {
		t.Fatalf("ping: %v", err)
	}
	srv := httptest.NewServer(reg)
	t.Cleanup(srv.Close)
	return srv.URL
}

func adminTokens(t testing.TB) (*auth.Tokens, string) {
	t.Helper()
	tokens, secret := registrytest.AdminTokens(t)
	return tokens, "basic:" + secret
}

// startUpload begins a blob upload on base and returns its Location.
func startUpload(t *testing.T, base, creds, repo string) *url.URL {
	t.Helper()
	r := registrytest.Do(t, http.MethodPost, base+"/v2/"+repo+"/blobs/uploads/", creds, nil, nil)
	if r.Status != http.StatusAccepted {
		t.Fatalf("start upload: %d %s", r.Status, r.Body)
	}
	loc, err := url.Parse(r.Header.Get("Location"))
	if err != nil {
		t.Fatal(err)
	}
	return loc
}

// finishOn sends the upload's one PUT to the replica at base.
func finishOn(t *testing.T, base string, loc *url.URL, creds string, blob []byte) registrytest.Result {
	t.Helper()
	b, err := url.Parse(base)
	if err != nil {
		t.Fatal(err)
	}
	u := *loc
	u.Scheme, u.Host = b.Scheme, b.Host
	q := u.Query()
	q.Set("digest", blobDigest(blob))
	u.RawQuery = q.Encode()
	return registrytest.Do(t, http.MethodPut, u.String(), creds, blob, map[string]string{"Content-Type": "application/octet-stream"})
}

func blobDigest(b []byte) string {
	sum := sha256.Sum256(b)
	return "sha256:" + hex.EncodeToString(sum[:])
}

const sharedSecret = "one-secret-for-every-replica-0123"

// Two replicas on one S3 bucket: an upload started on one finishes on the
// other when both have the same HTTP secret, and fails with
// BLOB_UPLOAD_INVALID when they do not (the reason the secret is one
// setting).
func TestS3ReplicasShareUploads(t *testing.T) {
	s3 := s3test.Start(t)
	replicasShareUploads(t, s3.Storage(t, s3.Bucket(t), "registry"))
}

// The same on a shared folder (the filesystem driver at an absolute path).
func TestSharedFolderReplicasShareUploads(t *testing.T) {
	replicasShareUploads(t, t.TempDir())
}

func replicasShareUploads(t *testing.T, storage string) {
	tokens, creds := adminTokens(t)
	a := replica(t, tokens, storage, sharedSecret, "none")
	b := replica(t, tokens, storage, sharedSecret, "none")
	other := replica(t, tokens, storage, "another-secret-0123456789abcdef", "none")

	repo := registrytest.Unique("shared/upload")
	blob := []byte("a blob uploaded across replicas " + repo)
	loc := startUpload(t, a, creds, repo)
	if r := finishOn(t, b, loc, creds, blob); r.Status != http.StatusCreated {
		t.Fatalf("upload started on A, finished on B: %d %s", r.Status, r.Body)
	}
	if r := registrytest.Do(t, http.MethodGet, a+"/v2/"+repo+"/blobs/"+blobDigest(blob), creds, nil, nil); r.Status != http.StatusOK || string(r.Body) != string(blob) {
		t.Fatalf("blob read back on A: %d %q", r.Status, r.Body)
	}

	blob2 := []byte("a blob whose upload moves to a replica with another secret " + repo)
	loc = startUpload(t, a, creds, repo)
	r := finishOn(t, other, loc, creds, blob2)
	if r.Status < 400 || r.Code(t) != "BLOB_UPLOAD_INVALID" {
		t.Fatalf("upload finished on a replica with another secret: %d %s; want BLOB_UPLOAD_INVALID", r.Status, r.Body)
	}
}

// A blob deleted through one replica is not served by the other, with the
// blob-descriptor cache off or in Redis.
func TestS3ReplicasSeeDeletes(t *testing.T) {
	s3 := s3test.Start(t)
	redis := redistest.Start(t)
	tokens, creds := adminTokens(t)
	for _, cache := range []string{"none", "redis://" + redis + "/0"} {
		t.Run(strings.SplitN(cache, ":", 2)[0], func(t *testing.T) {
			storage := s3.Storage(t, s3.Bucket(t), "")
			a := replica(t, tokens, storage, sharedSecret, cache)
			b := replica(t, tokens, storage, sharedSecret, cache)
			repo := registrytest.Unique("shared/delete")
			blob := []byte("a blob deleted on one replica " + repo)
			if r := finishOn(t, a, startUpload(t, a, creds, repo), creds, blob); r.Status != http.StatusCreated {
				t.Fatalf("upload: %d %s", r.Status, r.Body)
			}
			blobURL := "/v2/" + repo + "/blobs/" + blobDigest(blob)
			// B reads it first, so that a cache would hold its descriptor.
			for range 2 {
				if r := registrytest.Do(t, http.MethodHead, b+blobURL, creds, nil, nil); r.Status != http.StatusOK {
					t.Fatalf("HEAD on B before the delete: %d", r.Status)
				}
			}
			if r := registrytest.Do(t, http.MethodDelete, a+blobURL, creds, nil, nil); r.Status != http.StatusAccepted {
				t.Fatalf("DELETE on A: %d %s", r.Status, r.Body)
			}
			if r := registrytest.Do(t, http.MethodGet, b+blobURL, creds, nil, nil); r.Status != http.StatusNotFound {
				t.Fatalf("GET on B after the delete on A: %d %q; want 404", r.Status, r.Body)
			}
			if r := registrytest.Do(t, http.MethodHead, b+blobURL, creds, nil, nil); r.Status != http.StatusNotFound {
				t.Fatalf("HEAD on B after the delete on A: %d; want 404", r.Status)
			}
		})
	}
}

// Shared storage needs the secret given, and refuses an in-memory cache.
func TestSharedStorageSettings(t *testing.T) {
	ctx := context.Background()
	shared := t.TempDir()
	for _, c := range []struct{ secret, cache, want string }{
		{"", "none", "registry secret: required"},
		{"short", "none", "at least"},
		{sharedSecret, "inmemory", "inmemory is refused"},
	} {
		_, err := registry.New(ctx, registry.Config{Root: filepath.Join(t.TempDir(), "registry"), Storage: shared, Secret: c.secret, Cache: c.cache})
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("secret %q cache %q: %v; want %q", c.secret, c.cache, err, c.want)
		}
	}
}

// BlobFile names a stored blob's file on a filesystem, holding its bytes,
// and nothing on S3 or for a blob that is not stored.
func TestBlobFile(t *testing.T) {
	tokens, creds := adminTokens(t)
	s3 := s3test.Start(t)
	for _, c := range []struct {
		name, storage string
		file          bool
	}{
		{"local", "", true},
		{"folder", t.TempDir(), true},
		{"s3", s3.Storage(t, s3.Bucket(t), ""), false},
	} {
		t.Run(c.name, func(t *testing.T) {
			reg, err := registry.New(context.Background(), registry.Config{
				Root: filepath.Join(t.TempDir(), "registry"), Storage: c.storage, Secret: sharedSecret, Tokens: tokens,
			})
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { reg.Close() })
			srv := httptest.NewServer(reg)
			t.Cleanup(srv.Close)
			blob := []byte("a blob read from its file " + c.name)
			if r := finishOn(t, srv.URL, startUpload(t, srv.URL, creds, "blobfile/"+c.name), creds, blob); r.Status != http.StatusCreated {
				t.Fatalf("upload: %d %s", r.Status, r.Body)
			}
			p, ok := reg.BlobFile(blobDigest(blob))
			if ok != c.file {
				t.Fatalf("BlobFile: %q %v; want a file: %v", p, ok, c.file)
			}
			if ok {
				if got, err := os.ReadFile(p); err != nil || string(got) != string(blob) {
					t.Fatalf("BlobFile's file holds %q, %v", got, err)
				}
			}
			if _, ok := reg.BlobFile(blobDigest([]byte("never stored"))); ok {
				t.Error("BlobFile names a file for a blob never stored")
			}
		})
	}
}
