package registry

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"github.com/distribution/distribution/v3"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/partial"
	"github.com/google/go-containerregistry/pkg/v1/types"
	"github.com/opencontainers/go-digest"
)

// RawManifest returns a stored manifest's bytes and media type.
func (r *Registry) RawManifest(ctx context.Context, repository, dgst string) ([]byte, string, error) {
	repo, err := r.repository(ctx, repository)
	if err != nil {
		return nil, "", err
	}
	d, err := digest.Parse(dgst)
	if err != nil {
		return nil, "", fmt.Errorf("manifest %s@%s: %w", repository, dgst, err)
	}
	ms, err := repo.Manifests(ctx)
	if err != nil {
		return nil, "", err
	}
	m, err := ms.Get(ctx, d)
	if err != nil {
		return nil, "", fmt.Errorf("manifest %s@%s: %w", repository, dgst, err)
	}
	mt, payload, err := m.Payload()
	if err != nil {
		return nil, "", fmt.Errorf("manifest %s@%s: %w", repository, dgst, err)
	}
	return payload, mt, nil
}

// Image returns the image whose manifest is dgst in repository, reading
// blobs straight from storage: the scanner needs no HTTP round trip and no
// token to read what was pushed.
func (r *Registry) Image(ctx context.Context, repository, dgst string) (v1.Image, error) {
	raw, mt, err := r.RawManifest(ctx, repository, dgst)
	if err != nil {
		return nil, err
	}
	if types.MediaType(mt).IsIndex() {
		return nil, fmt.Errorf("%s@%s is an index, not an image", repository, dgst)
	}
	repo, err := r.repository(ctx, repository)
	if err != nil {
		return nil, err
	}
	return partial.CompressedToImage(&storedImage{ctx: ctx, blobs: repo.Blobs(ctx), manifest: raw, mediaType: types.MediaType(mt)})
}

// Index returns the manifests an index lists.
func (r *Registry) Index(ctx context.Context, repository, dgst string) ([]v1.Descriptor, error) {
	raw, mt, err := r.RawManifest(ctx, repository, dgst)
	if err != nil {
		return nil, err
	}
	if !types.MediaType(mt).IsIndex() {
		return nil, fmt.Errorf("%s@%s is not an index", repository, dgst)
	}
	im, err := v1.ParseIndexManifest(bytes.NewReader(raw))
	if err != nil {
		return nil, fmt.Errorf("index %s@%s: %w", repository, dgst, err)
	}
	return im.Manifests, nil
}

// storedImage is an image read from the registry's blob store, in the shape
// go-containerregistry builds a v1.Image from.
type storedImage struct {
	ctx       context.Context
	blobs     distribution.BlobStore
	manifest  []byte
	mediaType types.MediaType
	parsed    *v1.Manifest
}

func (s *storedImage) RawManifest() ([]byte, error)        { return s.manifest, nil }
func (s *storedImage) MediaType() (types.MediaType, error) { return s.mediaType, nil }

func (s *storedImage) parsedManifest() (*v1.Manifest, error) {
	if s.parsed == nil {
		m, err := v1.ParseManifest(bytes.NewReader(s.manifest))
		if err != nil {
			return nil, err
		}
		s.parsed = m
	}
	return s.parsed, nil
}

func (s *storedImage) RawConfigFile() ([]byte, error) {
	m, err := s.parsedManifest()
	if err != nil {
		return nil, err
	}
	d, err := digest.Parse(m.Config.Digest.String())
	if err != nil {
		return nil, err
	}
	return s.blobs.Get(s.ctx, d)
}

func (s *storedImage) LayerByDigest(h v1.Hash) (partial.CompressedLayer, error) {
	m, err := s.parsedManifest()
	if err != nil {
		return nil, err
	}
	for _, l := range m.Layers {
		if l.Digest == h {
			return &storedLayer{img: s, desc: l}, nil
		}
	}
	if m.Config.Digest == h {
		return &storedLayer{img: s, desc: m.Config}, nil
	}
	return nil, fmt.Errorf("blob %s is not in the manifest", h)
}

// storedLayer is one blob of a stored image.
type storedLayer struct {
	img  *storedImage
	desc v1.Descriptor
}

func (l *storedLayer) Digest() (v1.Hash, error)            { return l.desc.Digest, nil }
func (l *storedLayer) Size() (int64, error)                { return l.desc.Size, nil }
func (l *storedLayer) MediaType() (types.MediaType, error) { return l.desc.MediaType, nil }

func (l *storedLayer) Compressed() (io.ReadCloser, error) {
	d, err := digest.Parse(l.desc.Digest.String())
	if err != nil {
		return nil, err
	}
	rc, err := l.img.blobs.Open(l.img.ctx, d)
	if err != nil {
		return nil, fmt.Errorf("blob %s: %w", d, err)
	}
	return rc, nil
}

// BlobFile returns the file a blob is stored in when the registry is on a
// filesystem (the data folder or a shared folder), and false on S3 or when
// the blob is not there. It is for readers for whom a file is a real
// speed-up (a file they can seek in or map); everyone else, and these
// readers when it returns false, read through Image, which works on every
// driver. The file is the registry's: read it, never change it.
func (r *Registry) BlobFile(dgst string) (string, bool) {
	if r.storage.Kind == StorageS3 {
		return "", false
	}
	d, err := digest.Parse(dgst)
	if err != nil {
		return "", false
	}
	hex := d.Encoded()
	// distribution's blob layout (registry/storage/paths.go, blobDataPathSpec).
	p := filepath.Join(r.storage.Path, "docker", "registry", "v2", "blobs", d.Algorithm().String(), hex[:2], hex, "data")
	if fi, err := os.Stat(p); err != nil || !fi.Mode().IsRegular() {
		return "", false
	}
	return p, true
}
