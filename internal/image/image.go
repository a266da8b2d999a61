// Package image opens container images wherever they are (a registry, a
// docker save archive, an OCI layout or archive) as go-containerregistry
// images, choosing one platform from an index.
package image

import (
	"archive/tar"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/scangate/scangate/internal/layercache"
)

// An Image is an opened image with what its reference said about it.
type Image struct {
	v1.Image
	// Ref is the reference as given.
	Ref string
	// Repository and Tags, where the source names them.
	Repository string
	Tags       []string
	// Digest is the manifest digest, where the source has one.
	Digest   string
	Platform string
	cleanup  func() error
	// archive marks a docker save archive, whose manifest is made up
	// from its config: there is no stored manifest to check.
	archive bool
}

// Close removes what opening the image left on disk.
func (img *Image) Close() error {
	if img.cleanup == nil {
		return nil
	}
	return img.cleanup()
}

// Options tune Open.
type Options struct {
	// Platform picks the image from an index; the default is linux/amd64.
	Platform *v1.Platform
	// Keychain resolves registry credentials; the default reads
	// ~/.docker/config.json and its credential helpers.
	Keychain authn.Keychain
	// TempDir holds unpacked OCI archives.
	TempDir string
	// MaxArchiveBytes bounds an OCI archive's unpacked size.
	MaxArchiveBytes int64
	// MaxLayers, if positive, refuses an image of more layers, before its
	// manifest is checked: go-containerregistry makes a docker-archive's
	// manifest in time quadratic in its layers (it parses the config
	// again for each), 8 s for 1,200 layers.
	MaxLayers int
	// Cache, if set, keeps what a scan needs of a Docker Engine image
	// besides its layers' content, so that opening the same image again
	// exports it only if a layer is read (docker.go).
	Cache *layercache.Cache
}

// ErrBadReference reports a reference scangate cannot read.
var ErrBadReference = errors.New("bad image reference")

// Transports are the reference prefixes Open understands; a reference with
// none is a registry reference.
var Transports = []string{"docker-archive:", "oci-archive:", "oci:", "docker:", "dir:", "registry:"}

// Open opens the image ref names:
//
//	127.0.0.1:5000/app:1, host/repo@sha256:…   a registry (also "registry:…")
//	docker-archive:PATH                        a `docker save` tarball
//	oci-archive:PATH                           a tar of an OCI layout
//	oci:DIR[:TAG]                              an OCI layout folder
//	docker:NAME                                an image in the local Docker Engine
//	dir:PATH                                   a root filesystem on disk
func Open(ctx context.Context, ref string, opts Options) (*Image, error) {
	if opts.Platform == nil {
		opts.Platform = &v1.Platform{OS: "linux", Architecture: "amd64"}
	}
	kind, rest := splitTransport(ref)
	var (
		img *Image
		err error
	)
	switch kind {
	case "docker-archive:":
		img, err = openDockerArchive(rest)
	case "oci-archive:":
		img, err = openOCIArchive(rest, opts)
	case "oci:":
		img, err = openLayout(rest, opts)
	case "docker:":
		img, err = openDocker(ctx, rest, opts)
	case "dir:":
		img, err = openDir(rest)
	default:
		img, err = openRemote(ctx, rest, opts)
	}
	if err == nil {
		if err = checkLayers(img, opts.MaxLayers); err == nil {
			err = verify(img)
		}
		if err != nil {
			err = errors.Join(err, img.Close())
		}
	}
	if err != nil {
		return nil, fmt.Errorf("open %s: %w", ref, err)
	}
	img.Ref = ref
	return img, nil
}

// ErrTooManyLayers reports an image of more layers than Options.MaxLayers.
var ErrTooManyLayers = errors.New("too many layers")

// checkLayers counts the layers the config names, if max is positive.
func checkLayers(img *Image, max int) error {
	if max <= 0 {
		return nil
	}
	cf, err := img.ConfigFile()
	if err != nil {
		return err
	}
	if n := len(cf.RootFS.DiffIDs); n > max {
		return fmt.Errorf("%d layers, more than %d: %w", n, max, ErrTooManyLayers)
	}
	return nil
}

// ErrDigest reports an image whose manifest or config is not what its
// digest says: a tampered or broken archive.
var ErrDigest = errors.New("digest mismatch")

// verify checks that the manifest hashes to the digest the image was found
// by, and the config to the digest the manifest names. Registries check
// blobs as they serve them; archives and layouts on disk do not.
func verify(img *Image) error {
	if img.archive {
		return nil // the config was hashed when read; the layers are checked against its DiffIDs as they are read
	}
	if img.Digest != "" {
		raw, err := img.RawManifest()
		if err != nil {
			return err
		}
		if got := sha256Of(raw); got != img.Digest {
			return fmt.Errorf("manifest is %s, not %s: %w", got, img.Digest, ErrDigest)
		}
	}
	m, err := img.Manifest()
	if err != nil {
		return err
	}
	raw, err := img.RawConfigFile()
	if err != nil {
		return err
	}
	if got := sha256Of(raw); m.Config.Digest.Algorithm == "sha256" && got != m.Config.Digest.String() {
		return fmt.Errorf("config is %s, not %s: %w", got, m.Config.Digest, ErrDigest)
	}
	return nil
}

func sha256Of(data []byte) string {
	sum := sha256.Sum256(data)
	return "sha256:" + hex.EncodeToString(sum[:])
}

func splitTransport(ref string) (string, string) {
	for _, t := range Transports {
		if strings.HasPrefix(ref, t) {
			return t, strings.TrimPrefix(ref, t)
		}
	}
	return "registry:", ref
}

func openRemote(ctx context.Context, ref string, opts Options) (*Image, error) {
	r, err := name.ParseReference(ref)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrBadReference, err)
	}
	kc := opts.Keychain
	if kc == nil {
		kc = authn.DefaultKeychain
	}
	v1img, err := remote.Image(r, remote.WithContext(ctx), remote.WithAuthFromKeychain(kc), remote.WithPlatform(*opts.Platform))
	if err != nil {
		return nil, err
	}
	d, err := v1img.Digest()
	if err != nil {
		return nil, err
	}
	img := &Image{Image: v1img, Repository: r.Context().RepositoryStr(), Digest: d.String(), Platform: opts.Platform.String()}
	if t, ok := r.(name.Tag); ok {
		img.Repository = t.Context().Name()
		img.Tags = []string{t.TagStr()}
	} else {
		img.Repository = r.Context().Name()
	}
	return img, nil
}

// openLayout reads an OCI layout folder; DIR:TAG picks the manifest whose
// org.opencontainers.image.ref.name annotation is TAG.
func openLayout(ref string, opts Options) (*Image, error) {
	dir, tag := ref, ""
	if i := strings.LastIndexByte(ref, ':'); i > 0 {
		if _, err := os.Stat(ref); err != nil {
			dir, tag = ref[:i], ref[i+1:]
		}
	}
	p, err := layout.FromPath(dir)
	if err != nil {
		return nil, err
	}
	idx, err := p.ImageIndex()
	if err != nil {
		return nil, err
	}
	return pickFromIndex(idx, tag, *opts.Platform, 0, map[v1.Hash]bool{})
}

var errTooDeep = fmt.Errorf("%w: indexes nested more than %d deep", ErrBadReference, maxIndexDepth)

// maxIndexDepth bounds nested indexes; real layouts nest one or two deep,
// and a cycle must not recurse forever.
const maxIndexDepth = 4

// pickFromIndex finds the image in an index by tag annotation and
// platform, descending into nested indexes.
// seen holds the indexes already searched: an index listed many times over
// several levels must be read once, not once per path to it.
func pickFromIndex(idx v1.ImageIndex, tag string, platform v1.Platform, depth int, seen map[v1.Hash]bool) (*Image, error) {
	if depth > maxIndexDepth {
		return nil, errTooDeep
	}
	m, err := idx.IndexManifest()
	if err != nil {
		return nil, err
	}
	var candidates []v1.Descriptor
	for _, d := range m.Manifests {
		if tag != "" && d.Annotations["org.opencontainers.image.ref.name"] != tag {
			continue
		}
		candidates = append(candidates, d)
	}
	if len(candidates) == 0 {
		return nil, fmt.Errorf("%w: no image tagged %q in the layout", ErrBadReference, tag)
	}
	for _, d := range candidates {
		switch {
		case d.MediaType.IsIndex():
			if seen[d.Digest] {
				continue
			}
			seen[d.Digest] = true
			child, err := idx.ImageIndex(d.Digest)
			if err != nil {
				return nil, err
			}
			img, err := pickFromIndex(child, "", platform, depth+1, seen)
			if err == nil {
				return img, nil
			}
			if depth+1 > maxIndexDepth || errors.Is(err, errTooDeep) {
				return nil, errTooDeep
			}
		case d.MediaType.IsImage():
			if d.Platform != nil && !d.Platform.Satisfies(platform) {
				continue
			}
			v1img, err := idx.Image(d.Digest)
			if err != nil {
				return nil, err
			}
			img := &Image{Image: v1img, Digest: d.Digest.String(), Platform: platform.String()}
			if t := d.Annotations["org.opencontainers.image.ref.name"]; t != "" {
				img.Tags = []string{t}
			}
			return img, nil
		}
	}
	return nil, fmt.Errorf("%w: no image for platform %s", ErrBadReference, platform)
}

// defaultMaxArchiveBytes bounds an unpacked OCI archive.
const defaultMaxArchiveBytes = 16 << 30

// openOCIArchive unpacks a tar of an OCI layout into a temporary folder,
// refusing entries that would land outside it.
func openOCIArchive(ref string, opts Options) (*Image, error) {
	path, tag := ref, ""
	if i := strings.LastIndexByte(ref, ':'); i > 0 {
		if _, err := os.Stat(ref); err != nil {
			path, tag = ref[:i], ref[i+1:]
		}
	}
	dir, err := os.MkdirTemp(opts.TempDir, "scangate-oci-")
	if err != nil {
		return nil, err
	}
	cleanup := func() error { return os.RemoveAll(dir) }
	max := opts.MaxArchiveBytes
	if max <= 0 {
		max = defaultMaxArchiveBytes
	}
	if err := untar(path, dir, max); err != nil {
		return nil, errors.Join(err, cleanup())
	}
	suffix := ""
	if tag != "" {
		suffix = ":" + tag
	}
	img, err := openLayout(dir+suffix, opts)
	if err != nil {
		return nil, errors.Join(err, cleanup())
	}
	img.cleanup = cleanup
	return img, nil
}

// untar extracts regular files and folders of the tar at path into dir.
// Links are refused: an OCI layout has none.
func untar(path, dir string, max int64) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	root, err := os.OpenRoot(dir)
	if err != nil {
		return err
	}
	defer root.Close()
	tr := tar.NewReader(f)
	var total int64
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return fmt.Errorf("read %s: %w", path, err)
		}
		name := filepath.Clean(strings.TrimPrefix(h.Name, "./"))
		if name == "." {
			continue
		}
		switch h.Typeflag {
		case tar.TypeDir:
			if err := root.MkdirAll(name, 0o700); err != nil {
				return fmt.Errorf("%s: %s: %w", path, h.Name, err)
			}
		case tar.TypeReg:
			total += h.Size
			if total > max {
				return fmt.Errorf("%s: more than %d bytes unpacked", path, max)
			}
			if err := writeIn(root, name, tr); err != nil {
				return fmt.Errorf("%s: %s: %w", path, h.Name, err)
			}
		default:
			return fmt.Errorf("%s: %s: %w: an OCI layout holds only files and folders", path, h.Name, ErrBadReference)
		}
	}
}

// writeIn writes one file inside root; os.Root refuses paths that escape.
func writeIn(root *os.Root, name string, r io.Reader) error {
	if d := filepath.Dir(name); d != "." {
		if err := root.MkdirAll(d, 0o700); err != nil {
			return err
		}
	}
	out, err := root.OpenFile(name, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return err
	}
	_, err = io.Copy(out, r)
	return errors.Join(err, out.Close())
}
