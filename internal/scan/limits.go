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
// normalised on the way (see walk), and keeps the first failure.
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
	totals layerTotals // what a counting walk counted, for the layer cache
}

// DiffID is the config's: computing it would decompress the whole layer,
// and walk checks the content against it.
func (l *limitedLayer) DiffID() (v1.Hash, error) { return l.diffID, nil }

// walk reads a layer's tar stream entry by entry and hands fn each header
// as clean rewrites it, with the entry's content, so that what the
// unpacker sees has been counted against the limits by the sizes it would
// write (sparse files included) and is checked against the layer's DiffID
// at the end; hard links are absolute symlinks: a tar names hard link
// targets from the archive's root. With count false the entries are not
// counted again (a second read of a layer already counted).
func (l *limitedLayer) walk(raw io.Reader, count bool, fn func(hdr *tar.Header, r io.Reader) error) error {
	h := sha256.New()
	tr := tar.NewReader(io.TeeReader(raw, h))
	var bytes, largest int64
	var largestName string
	var files int
	for {
		hdr, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return fmt.Errorf("layer %d: %w: %w", l.index+1, ErrCorrupt, err)
		}
		if count {
			if max := l.img.limits.MaxFileBytes; max > 0 && hdr.Size >= max {
				// Skipping it would be worse: a package database skipped is
				// a clean result that is not true.
				return fmt.Errorf("layer %d: %s is %d bytes, the limit is less than %d: %w", l.index+1, hdr.Name, hdr.Size, max, ErrLimit)
			}
			bytes += hdr.Size
			files++
			if hdr.Size > largest || largestName == "" {
				largest, largestName = hdr.Size, hdr.Name
			}
			if err := l.img.addFile(l.index, hdr.Size, bytes, files); err != nil {
				return err
			}
		}
		ch := clean(hdr)
		var body io.Reader = eofReader{}
		if ch.Typeflag == tar.TypeReg {
			body = tr
		}
		if err := fn(ch, body); err != nil {
			return err
		}
		if ch.Typeflag == tar.TypeReg {
			// Read the rest, so that a file cut short is an error here.
			if _, err := io.Copy(io.Discard, tr); err != nil {
				return fmt.Errorf("layer %d: %s: %w: %w", l.index+1, hdr.Name, ErrCorrupt, err)
			}
		}
	}
	// The tar ends before its padding; the DiffID covers every byte, and a
	// gzip checksum is checked only at the stream's end.
	if _, err := io.Copy(io.Discard, io.TeeReader(raw, h)); err != nil {
		return fmt.Errorf("layer %d: %w: %w", l.index+1, ErrCorrupt, err)
	}
	if err := checkDigest(l.index, l.diffID, h); err != nil {
		return err
	}
	if count {
		l.totals = layerTotals{bytes: bytes, files: int64(files), largest: largest, largestName: largestName}
	}
	return nil
}

type eofReader struct{}

func (eofReader) Read([]byte) (int, error) { return 0, io.EOF }

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
