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
	"strings"
	"sync"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// ErrLimit reports an image beyond Limits.
var ErrLimit = errors.New("over the scan limit")

// ErrInvalid reports an image that is not what a container runtime runs:
// a layer whose entries climb out of the image root, which Docker refuses
// to unpack, or a layer of a media type scangate does not know. Scanning
// it anyway would describe something no runtime unpacks.
var ErrInvalid = errors.New("invalid image")

// ErrCorrupt reports a layer whose content is not what the image's config
// says it is (its DiffID), or that is not a readable tar.
var ErrCorrupt = errors.New("corrupt layer")

// limitedImage hands the unpacker layers whose tar streams are checked and
// normalised on the way (see walk), and keeps the first failure.
type limitedImage struct {
	v1.Image
	limits   Limits
	mu       sync.Mutex
	bytes    int64 // the sizes of the files read, sparse files at full size
	inflated int64 // the bytes inflated from the layers read
	files    int
	first    error
}

func newLimitedImage(img v1.Image, limits Limits) *limitedImage {
	return &limitedImage{Image: img, limits: limits}
}

// Layers checks the number of layers and their media types before
// anything is read, and returns them wrapped. A layer whose blob and
// DiffID repeat an earlier layer's is marked as that layer's repeat.
func (img *limitedImage) Layers() ([]v1.Layer, error) {
	// The config's DiffIDs are what the image claims; a layer's own
	// DiffID may be computed from the very content it should vouch for.
	cf, err := img.Image.ConfigFile()
	if err != nil {
		return nil, err
	}
	if max := img.limits.MaxLayers; max > 0 && len(cf.RootFS.DiffIDs) > max {
		return nil, fmt.Errorf("image: %d layers, more than %d: %w", len(cf.RootFS.DiffIDs), max, ErrLimit)
	}
	ls, err := img.Image.Layers()
	if err != nil {
		return nil, err
	}
	if len(cf.RootFS.DiffIDs) != len(ls) {
		return nil, fmt.Errorf("%d layers but %d DiffIDs in the config: %w", len(ls), len(cf.RootFS.DiffIDs), ErrCorrupt)
	}
	// The manifest's descriptors say what each blob is, as a runtime
	// reads them; a layer's own MediaType may be a wrapper's.
	m, err := img.Image.Manifest()
	if err != nil {
		return nil, err
	}
	if len(m.Layers) != len(ls) {
		return nil, fmt.Errorf("%d layers but %d in the manifest: %w", len(ls), len(m.Layers), ErrCorrupt)
	}
	type blobKey struct{ digest, diffID v1.Hash }
	firsts := map[blobKey]int{}
	out := make([]v1.Layer, len(ls))
	for i, l := range ls {
		desc := m.Layers[i]
		if _, ok := compressionOf(desc.MediaType); !ok {
			return nil, fmt.Errorf("layer %d: media type %q is not one of a container image's layers: %w", i+1, desc.MediaType, ErrInvalid)
		}
		ll := &limitedLayer{Layer: l, img: img, index: i, first: i, diffID: cf.RootFS.DiffIDs[i], mediaType: desc.MediaType}
		// A blob of the same digest is the same bytes, and with the same
		// DiffID the one read checks both layers: read it once. Only
		// sha256 is checked (see checkDigest), so only it is trusted.
		if k := (blobKey{desc.Digest, ll.diffID}); k.digest.Algorithm == "sha256" && k.diffID.Algorithm == "sha256" {
			if j, ok := firsts[k]; ok {
				ll.first = j
			} else {
				firsts[k] = i
			}
		}
		out[i] = ll
	}
	return out, nil
}

// compression is how a layer's blob is compressed.
type compression int

const (
	uncompressed compression = iota
	gzipped
	zstdCompressed
)

// compressionOf gives the compression of a layer media type, and whether
// the type is one of an image's layers at all: the OCI image spec's
// (layer.md, "Media Types"; "non-distributable" ones included, which the
// spec deprecates but registries still hold) and Docker's schema 2
// (foreign layers included). Anything else, an artifact's blob (a Helm
// chart, a signature) or an encrypted layer, is no filesystem a runtime
// would unpack, whatever its bytes look like.
func compressionOf(mt types.MediaType) (compression, bool) {
	switch mt {
	case types.OCIUncompressedLayer, types.OCIUncompressedRestrictedLayer, types.DockerUncompressedLayer:
		return uncompressed, true
	case types.OCILayer, types.OCIRestrictedLayer, types.DockerLayer, types.DockerForeignLayer:
		return gzipped, true
	case types.OCILayerZStd, "application/vnd.oci.image.layer.nondistributable.v1.tar+zstd":
		return zstdCompressed, true
	}
	return 0, false
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
		return errLayerBytes(index, lim.MaxLayerBytes)
	case lim.MaxImageBytes > 0 && bytes > lim.MaxImageBytes:
		return errImageBytes(lim.MaxImageBytes)
	case lim.MaxLayerFiles > 0 && layerFiles > lim.MaxLayerFiles:
		return fmt.Errorf("layer %d: more than %d files: %w", index+1, lim.MaxLayerFiles, ErrLimit)
	case lim.MaxImageFiles > 0 && files > lim.MaxImageFiles:
		return fmt.Errorf("image: more than %d files: %w", lim.MaxImageFiles, ErrLimit)
	}
	return nil
}

// addInflated counts n bytes inflated from a layer, whose running total
// is layerBytes.
func (img *limitedImage) addInflated(index int, n, layerBytes int64) error {
	img.mu.Lock()
	img.inflated += n
	inflated := img.inflated
	img.mu.Unlock()
	lim := img.limits
	switch {
	case lim.MaxLayerBytes > 0 && layerBytes > lim.MaxLayerBytes:
		return errLayerBytes(index, lim.MaxLayerBytes)
	case lim.MaxImageBytes > 0 && inflated > lim.MaxImageBytes:
		return errImageBytes(lim.MaxImageBytes)
	}
	return nil
}

func errLayerBytes(index int, max int64) error {
	return fmt.Errorf("layer %d: more than %d bytes uncompressed: %w", index+1, max, ErrLimit)
}

func errImageBytes(max int64) error {
	return fmt.Errorf("image: more than %d bytes uncompressed: %w", max, ErrLimit)
}

type limitedLayer struct {
	v1.Layer
	img       *limitedImage
	index     int
	first     int // the index of the first layer of the same blob, or index
	diffID    v1.Hash
	mediaType types.MediaType
	totals    layerTotals // what a counting walk counted, for the layer cache
}

// inflatedCounter counts the bytes a layer's tar stream yields against
// the limits, and keeps the first error.
type inflatedCounter struct {
	r   io.Reader
	l   *limitedLayer
	n   int64
	err error
}

func (c *inflatedCounter) Read(p []byte) (int, error) {
	if c.err != nil {
		return 0, c.err
	}
	n, err := c.r.Read(p)
	if n > 0 {
		c.n += int64(n)
		if lerr := c.l.img.addInflated(c.l.index, int64(n), c.n); lerr != nil {
			c.err = lerr
			return n, lerr
		}
	}
	return n, err
}

// Seek skips bytes of the stream, counting them as read, if the stream
// can skip (a readAhead, which hashes every byte before handing it out);
// a tar reader skips what no one reads of a file that way.
func (c *inflatedCounter) Seek(offset int64, whence int) (int64, error) {
	s, ok := c.r.(io.Seeker)
	if !ok {
		return 0, errors.New("cannot seek")
	}
	if c.err != nil {
		return 0, c.err
	}
	before, err := s.Seek(0, io.SeekCurrent)
	if err != nil || offset == 0 {
		return before, err
	}
	after, err := s.Seek(offset, whence)
	if n := after - before; n > 0 {
		c.n += n
		if lerr := c.l.img.addInflated(c.l.index, n, c.n); lerr != nil {
			c.err = lerr
			return after, lerr
		}
	}
	return after, err
}

// DiffID is the config's: computing it would decompress the whole layer,
// and walk checks the content against it.
func (l *limitedLayer) DiffID() (v1.Hash, error) { return l.diffID, nil }

// walk reads a layer's tar stream entry by entry and hands fn each header
// as clean rewrites it, with the entry's content, so that what the
// unpacker sees has been counted against the limits by the sizes it would
// write (sparse files included) and the bytes inflated (those after the
// tar's end included), and is checked against the layer's DiffID at the
// end. Names are relative to the image root; hard links are absolute
// symlinks: a tar names hard link targets from the archive's root. A name
// or hard link that climbs out of the root is an error. With count false
// the entries are not counted again (a second read of a layer already
// counted). h, if not nil, is fed every byte of raw by raw itself before
// raw returns them (a readAhead's hashing stage); if nil, walk hashes.
func (l *limitedLayer) walk(raw io.Reader, h hash.Hash, count bool, fn func(hdr *tar.Header, r io.Reader, at int64) error) error {
	var counter *inflatedCounter
	if count {
		counter = &inflatedCounter{r: raw, l: l}
		raw = counter
	}
	// A limit passed while inflating shows as a read error of the tar
	// reader: say which limit, not that the tar is corrupt.
	limitOr := func(err error) error {
		if counter != nil && counter.err != nil {
			return counter.err
		}
		return err
	}
	if h == nil {
		h = sha256.New()
		raw = io.TeeReader(raw, h)
	}
	tr := tar.NewReader(raw)
	var bytes, largest int64
	var largestName string
	var files int
	for {
		hdr, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return limitOr(fmt.Errorf("layer %d: %w: %w", l.index+1, ErrCorrupt, err))
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
		ch, err := clean(hdr)
		if err != nil {
			return fmt.Errorf("layer %d: %w", l.index+1, err)
		}
		var body io.Reader = eofReader{}
		at := int64(-1)
		if ch.Typeflag == tar.TypeReg {
			body = tr
			at = contentOffset(hdr, raw)
		}
		if err := fn(ch, body, at); err != nil {
			return limitOr(err)
		}
		// What fn left of a file is skipped by the next tr.Next: seeking
		// past it when raw can (see readAhead.Seek), and a file cut short
		// is an error there.
	}
	// The tar ends before its padding; the DiffID covers every byte, and a
	// gzip checksum is checked only at the stream's end.
	if _, err := io.Copy(io.Discard, raw); err != nil {
		return limitOr(fmt.Errorf("layer %d: %w: %w", l.index+1, ErrCorrupt, err))
	}
	if err := checkDigest(l.index, l.diffID, h); err != nil {
		return err
	}
	if count {
		l.totals = layerTotals{bytes: bytes, files: int64(files), largest: largest, largestName: largestName}
	}
	return nil
}

// contentOffset is where the content of the file hdr names starts in raw,
// which the tar reader has read up to it, or -1 when its bytes are not all
// there in one piece: a sparse file's (a PAX GNU.sparse one; an old GNU
// sparse entry is no regular file), or raw cannot say where it is.
func contentOffset(hdr *tar.Header, raw io.Reader) int64 {
	for k := range hdr.PAXRecords {
		if strings.HasPrefix(k, "GNU.sparse.") {
			return -1
		}
	}
	s, ok := raw.(io.Seeker)
	if !ok {
		return -1
	}
	at, err := s.Seek(0, io.SeekCurrent)
	if err != nil {
		return -1
	}
	return at
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
// The name is made relative to the image root ("" for the root itself),
// and a hard link becomes a symlink to its target's absolute path.
func clean(h *tar.Header) (*tar.Header, error) {
	name, ok := entryName(h.Name)
	if !ok {
		return nil, fmt.Errorf("entry %q climbs out of the image root (Docker refuses such a layer): %w", h.Name, ErrInvalid)
	}
	out := &tar.Header{
		Typeflag: h.Typeflag, Name: name, Linkname: h.Linkname, Size: h.Size, Mode: h.Mode,
		Uid: h.Uid, Gid: h.Gid, Uname: h.Uname, Gname: h.Gname, ModTime: h.ModTime,
		Devmajor: h.Devmajor, Devminor: h.Devminor,
	}
	switch h.Typeflag {
	case tar.TypeLink:
		target, ok := hardLinkTarget(h.Linkname)
		if !ok {
			return nil, fmt.Errorf("entry %q: hard link to %q climbs out of the image root (Docker refuses such a layer): %w", h.Name, h.Linkname, ErrInvalid)
		}
		out.Typeflag, out.Linkname = tar.TypeSymlink, "/"+target
	case tar.TypeReg, tar.TypeDir, tar.TypeSymlink:
	default:
		out.Size = 0 // devices, FIFOs: no content
	}
	return out, nil
}

// entryName is a tar entry's name relative to the image root, as Docker
// unpacks a layer (moby/go-archive v0.3.0, UnpackLayer: the leading "/"
// stripped, then cleaned, and "invalid entry name" unless the result is
// local): "" for the root itself, and false for a name that climbs out,
// such as "../x", "a/../../x" or "/../x". Before v0.3.0 Docker clamped
// such names at the root; the change (df55fdf, "Reject traversal entries
// instead of clamping them") is what scangate follows.
func entryName(name string) (string, bool) {
	n := path.Clean(strings.TrimLeft(name, "/"))
	switch {
	case n == ".":
		return "", true
	case n == ".." || strings.HasPrefix(n, "../"):
		return "", false
	}
	return n, true
}

// hardLinkTarget is a hard link's target relative to the image root, as
// moby/go-archive's resolveHardlinkTarget reads it: an absolute target
// from the root, with its ".." not collapsed against "/" but refused;
// false for a target that climbs out or is the root itself. (Symlinks
// are kept as they are: they are followed inside the root, as a
// container's kernel follows them; see treeFS.resolve.)
func hardLinkTarget(linkname string) (string, bool) {
	n := path.Clean(linkname)
	if strings.HasPrefix(n, "/") {
		n = path.Clean(strings.TrimLeft(linkname, "/"))
	}
	if n == "." || n == ".." || strings.HasPrefix(n, "../") {
		return "", false
	}
	return n, true
}
