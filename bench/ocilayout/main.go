// Command ocilayout writes an image as an OCI image layout with gzip
// layers and OCI media types, as a registry or `crane`/`skopeo copy` would
// store it, or pushes it so to a registry (the token, if any, from
// SCANGATE_TOKEN):
//
//	go run ./bench/ocilayout docker-archive:big.tar big.oci
//	go run ./bench/ocilayout -push 127.0.0.1:5000/bench/big:1 docker-archive:big.tar
package main

import (
	"context"
	"flag"
	"fmt"
	"os"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"github.com/google/go-containerregistry/pkg/v1/types"

	"github.com/scangate/scangate/internal/image"
)

func main() {
	push := flag.String("push", "", "push to this registry reference instead of writing a layout")
	flag.Parse()
	if (*push == "" && flag.NArg() != 2) || (*push != "" && flag.NArg() != 1) {
		fmt.Fprintln(os.Stderr, "usage: ocilayout IMAGE DIR, or ocilayout -push REF IMAGE")
		os.Exit(2)
	}
	if err := run(context.Background(), flag.Arg(0), flag.Arg(1), *push); err != nil {
		fmt.Fprintln(os.Stderr, "ocilayout:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, ref, dir, push string) error {
	src, err := image.Open(ctx, ref, image.Options{})
	if err != nil {
		return err
	}
	defer src.Close()
	layers, err := src.Layers()
	if err != nil {
		return err
	}
	cf, err := src.ConfigFile()
	if err != nil {
		return err
	}
	img := mutate.MediaType(empty.Image, types.OCIManifestSchema1)
	img = mutate.ConfigMediaType(img, types.OCIConfigJSON)
	for _, l := range layers {
		// A layer of the tar, compressed by go-containerregistry as it is
		// written (gzip, default level).
		gz, err := tarball.LayerFromOpener(l.Uncompressed, tarball.WithMediaType(types.OCILayer))
		if err != nil {
			return err
		}
		if img, err = mutate.Append(img, mutate.Addendum{Layer: gz, MediaType: types.OCILayer}); err != nil {
			return err
		}
	}
	// The source's config, with the new layers' DiffIDs (the same tars).
	newCF, err := img.ConfigFile()
	if err != nil {
		return err
	}
	out := cf.DeepCopy()
	out.RootFS = newCF.RootFS
	img, err = mutate.ConfigFile(img, out)
	if err != nil {
		return err
	}
	if push != "" {
		tag, err := name.NewTag(push, name.Insecure)
		if err != nil {
			return err
		}
		auth := authn.Anonymous
		if tok := os.Getenv("SCANGATE_TOKEN"); tok != "" {
			auth = &authn.Basic{Username: "bench", Password: tok}
		}
		return remote.Write(tag, img, remote.WithAuth(auth), remote.WithContext(ctx))
	}
	p, err := layout.Write(dir, empty.Index)
	if err != nil {
		return err
	}
	return p.AppendImage(img, layout.WithAnnotations(map[string]string{"org.opencontainers.image.ref.name": "1"}))
}
