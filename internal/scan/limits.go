package scan

import (
	"archive/tar"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"io"
	"path"
	"sync"

	v1 "github.com/google/go-containerregistry/pkg/v1"
)

// ErrLimit reports an image beyond Limits.
var ErrLimit = errors.New("over the scan limit")

// ErrCorrupt reports a layer whose content is not what the image's config
// says it is (its DiffID), or that is not a readable tar.
var ErrCorrupt = errors.New("corrupt layer")

// limitedImage hands the unpacker layers whose tar streams are checked and
// normalised on the way (see normalize), and keeps the first failure.
type limitedImage struct {
	v1.Image
	limits Limits
	mu     sync.Mutex
	bytes  int64
	files  int
	first  error
}

func newLimitedImage(img v1.Image, limits Limits) *limitedImage {
	return &limitedImage{Image: img, limits: limits}
}

func (img *limitedImage) Layers() ([]v1.Layer, error) {
	ls, err := img.Image.Layers()
	if err != nil {
		return nil, err
	}
	// The config's DiffIDs are what the image claims; a layer's own
	// DiffID may be computed from the very content it should vouch for.
	cf, err := img.Image.ConfigFile()
	if err != nil {
		return nil, err
	}
	if len(cf.RootFS.DiffIDs) != len(ls) {
		return nil, fmt.Errorf("%d layers but %d DiffIDs in the config: %w", len(ls), len(cf.RootFS.DiffIDs), ErrCorrupt)
	}
	out := make([]v1.Layer, len(ls))
	for i, l := range ls {
		out[i] = &limitedLayer{Layer: l, img: img, index: i, diffID: cf.RootFS.DiffIDs[i]}
	}
	return out, nil
}

// err returns the first failure, if any.
func (img *limitedImage) err() error {
	img.mu.Lock()
	defer img.mu.Unlock()
	return img.first
}

func (img *limitedImage) fail(err error) error {
	img.mu.Lock()
	defer img.mu.Unlock()
	if img.first == nil {
		img.first = err
	}
	return img.first
}

// addFile counts one entry of size bytes, from the layer's running totals.
func (img *limitedImage) addFile(index int, size int64, layerBytes int64, layerFiles int) error {
	img.mu.Lock()
	img.bytes += size
	img.files++
	bytes, files := img.bytes, img.files
	img.mu.Unlock()
	lim := img.limits
	switch {
	case lim.MaxLayerBytes > 0 && layerBytes > lim.MaxLayerBytes:
		return fmt.Errorf("layer %d: more than %d bytes uncompressed: %w", index+1, lim.MaxLayerBytes, ErrLimit)
	case lim.MaxImageBytes > 0 && bytes > lim.MaxImageBytes:
		return fmt.Errorf("image: more than %d bytes uncompressed: %w", lim.MaxImageBytes, ErrLimit)
	case lim.MaxLayerFiles > 0 && layerFiles > lim.MaxLayerFiles:
		return fmt.Errorf("layer %d: more than %d files: %w", index+1, lim.MaxLayerFiles, ErrLimit)
	case lim.MaxImageFiles > 0 && files > lim.MaxImageFiles:
		return fmt.Errorf("image: more than %d files: %w", lim.MaxImageFiles, ErrLimit)
	}
	return nil
}

type limitedLayer struct {
	v1.Layer
	img    *limitedImage
	index  int
	diffID v1.Hash
}

// DiffID is the config's: computing it would decompress the whole layer,
// and the unpacker asks for it twice before reading. normalize checks the
// content against it.
func (l *limitedLayer) DiffID() (v1.Hash, error) { return l.diffID, nil }

// Uncompressed returns the layer's tar stream as normalize rewrites it.
func (l *limitedLayer) Uncompressed() (io.ReadCloser, error) {
	rc, err := l.Layer.Uncompressed()
	if err != nil {
		return nil, err
	}
	pr, pw := io.Pipe()
	out := &normalized{pr: pr, rc: rc, done: make(chan struct{})}
	go func() {
		defer close(out.done)
		err := l.normalize(rc, pw)
		if err != nil {
			err = l.img.fail(err)
		}
		pw.CloseWithError(err)
	}()
	return out, nil
}

// normalize copies a layer's tar stream entry by entry, so that what the
// unpacker sees has been counted against the limits by the sizes it will
// write (sparse files included), checked against the layer's DiffID, and
// has its hard links as absolute symlinks: the unpacker resolves link
// targets from the link's folder, but a tar names hard link targets from
// the archive's root.
func (l *limitedLayer) normalize(raw io.Reader, w io.Writer) error {
	h := sha256.New()
	tr := tar.NewReader(io.TeeReader(raw, h))
	tw := tar.NewWriter(w)
	var bytes int64
	var files int
	for {
		hdr, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return fmt.Errorf("layer %d: %w: %w", l.index+1, ErrCorrupt, err)
		}
		if max := l.img.limits.MaxFileBytes; max > 0 && hdr.Size >= max {
			// The unpacker would skip it, and a package database skipped is
			// a clean result that is not true.
			return fmt.Errorf("layer %d: %s is %d bytes, the limit is less than %d: %w", l.index+1, hdr.Name, hdr.Size, max, ErrLimit)
		}
		bytes += hdr.Size
		files++
		if err := l.img.addFile(l.index, hdr.Size, bytes, files); err != nil {
			return err
		}
		if err := tw.WriteHeader(clean(hdr)); err != nil {
			return fmt.Errorf("layer %d: %s: %w", l.index+1, hdr.Name, err)
		}
		if hdr.Typeflag == tar.TypeReg {
			if _, err := io.CopyN(tw, tr, hdr.Size); err != nil {
				return fmt.Errorf("layer %d: %s: %w: %w", l.index+1, hdr.Name, ErrCorrupt, err)
			}
		}
	}
	if err := tw.Close(); err != nil {
		return err
	}
	// The tar ends before its padding; the DiffID covers every byte, and a
	// gzip checksum is checked only at the stream's end.
	if _, err := io.Copy(io.Discard, io.TeeReader(raw, h)); err != nil {
		return fmt.Errorf("layer %d: %w: %w", l.index+1, ErrCorrupt, err)
	}
	return checkDigest(l.index, l.diffID, h)
}

func checkDigest(index int, want v1.Hash, h hash.Hash) error {
	if want.Algorithm != "sha256" {
		return nil
	}
	if got := hex.EncodeToString(h.Sum(nil)); got != want.Hex {
		return fmt.Errorf("layer %d: content is sha256:%s, not %s as the image says: %w", index+1, got, want, ErrCorrupt)
	}
	return nil
}

// clean keeps what the unpacker uses of a header: no sparse maps, PAX
// records or extended attributes, which a rewritten stream cannot carry.
func clean(h *tar.Header) *tar.Header {
	out := &tar.Header{
		Typeflag: h.Typeflag, Name: h.Name, Linkname: h.Linkname, Size: h.Size, Mode: h.Mode,
		Uid: h.Uid, Gid: h.Gid, Uname: h.Uname, Gname: h.Gname, ModTime: h.ModTime,
		Devmajor: h.Devmajor, Devminor: h.Devminor,
	}
	switch h.Typeflag {
	case tar.TypeLink:
		out.Typeflag, out.Linkname = tar.TypeSymlink, path.Clean("/"+h.Linkname)
	case tar.TypeReg, tar.TypeDir, tar.TypeSymlink:
	default:
		out.Size = 0 // devices, FIFOs: no content
	}
	return out
}

// normalized is the unpacker's end of the rewritten stream.
type normalized struct {
	pr   *io.PipeReader
	rc   io.ReadCloser
	done chan struct{}
}

func (n *normalized) Read(p []byte) (int, error) { return n.pr.Read(p) }

// Close lets the rewriting goroutine finish: it reads the rest of the layer
// (its trailing blocks) to check the digest, unless the reader has gone.
func (n *normalized) Close() error {
	go io.Copy(io.Discard, n.pr) // the writer may still hold the tar's trailer
	<-n.done
	n.pr.Close()
	return n.rc.Close()
}
