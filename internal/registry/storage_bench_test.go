package registry_test

import (
	"context"
	"crypto/rand"
	"io"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/scangate/scangate/internal/imagetest"
	"github.com/scangate/scangate/internal/registry"
	"github.com/scangate/scangate/internal/s3test"
)

// BenchmarkLayerRead reads a stored 16 MiB layer whole through the
// registry's Image API (what the scanner does) on each storage: the cost of
// S3 against the data folder. go test -run '^$' -bench LayerRead ./internal/registry/
func BenchmarkLayerRead(b *testing.B) {
	gw := s3test.Start(b)
	for _, c := range []struct{ name, storage string }{
		{"local", ""},
		{"s3", gw.Storage(b, gw.Bucket(b), "bench")},
	} {
		b.Run(c.name, func(b *testing.B) {
			ctx := context.Background()
			tokens, creds := adminTokens(b)
			reg, err := registry.New(ctx, registry.Config{
				Root: filepath.Join(b.TempDir(), "registry"), Storage: c.storage, Secret: sharedSecret, Tokens: tokens,
			})
			if err != nil {
				b.Fatal(err)
			}
			b.Cleanup(func() { reg.Close() })
			srv := httptest.NewServer(reg)
			b.Cleanup(srv.Close)
			data := make([]byte, 16<<20)
			if _, err := rand.Read(data); err != nil {
				b.Fatal(err)
			}
			img := imagetest.Build(b, imagetest.Layer(b, imagetest.Entry{Name: "blob", Body: string(data)}))
			ref, err := name.ParseReference(strings.TrimPrefix(srv.URL, "http://")+"/bench/layer:1", name.Insecure)
			if err != nil {
				b.Fatal(err)
			}
			if err := remote.Write(ref, img, remote.WithAuth(&authn.Basic{Username: "a", Password: strings.TrimPrefix(creds, "basic:")})); err != nil {
				b.Fatal(err)
			}
			d, err := img.Digest()
			if err != nil {
				b.Fatal(err)
			}
			stored, err := reg.Image(ctx, "bench/layer", d.String())
			if err != nil {
				b.Fatal(err)
			}
			layers, err := stored.Layers()
			if err != nil {
				b.Fatal(err)
			}
			size, _ := layers[0].Size()
			b.SetBytes(size)
			b.ResetTimer()
			for range b.N {
				rc, err := layers[0].Compressed()
				if err != nil {
					b.Fatal(err)
				}
				if _, err := io.Copy(io.Discard, rc); err != nil {
					b.Fatal(err)
				}
				rc.Close()
			}
		})
	}
}
