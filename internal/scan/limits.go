package scan

import (
	"archive/tar"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"io"
	"sync"

	v1 "github.com/google/go-containerregistry/pkg/v1"
)

// ErrLimit reports an image beyond Limits.
var ErrLimit = errors.New("over the scan limit")

// ErrCorrupt reports a layer whose content is not what the image's config
// says it is (its DiffID), or that is not a readable tar.
var ErrCorrupt = errors.New("corrupt layer")

// limitedImage counts what its layers' uncompressed streams deliver and
// cuts a stream off with ErrLimit once a limit is passed.
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

// err returns the first limit passed, if any.
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
	return err
}

// add counts n bytes and files of a layer that has delivered layerBytes and
// layerFiles so far.
func (img *limitedImage) add(index int, n int64, files int, layerBytes int64, layerFiles int) error {
	img.mu.Lock()
	img.bytes += n
	img.files += files
	bytes, total := img.bytes, img.files
	img.mu.Unlock()
	lim := img.limits
	switch {
	case lim.MaxLayerBytes > 0 && layerBytes > lim.MaxLayerBytes:
		return img.fail(fmt.Errorf("layer %d: more than %d bytes uncompressed: %w", index+1, lim.MaxLayerBytes, ErrLimit))
	case lim.MaxImageBytes > 0 && bytes > lim.MaxImageBytes:
		return img.fail(fmt.Errorf("image: more than %d bytes uncompressed: %w", lim.MaxImageBytes, ErrLimit))
	case lim.MaxLayerFiles > 0 && layerFiles > lim.MaxLayerFiles:
		return img.fail(fmt.Errorf("layer %d: more than %d files: %w", index+1, lim.MaxLayerFiles, ErrLimit))
	case lim.MaxImageFiles > 0 && total > lim.MaxImageFiles:
		return img.fail(fmt.Errorf("image: more than %d files: %w", lim.MaxImageFiles, ErrLimit))
	}
	return nil
}

type limitedLayer struct {
	v1.Layer
	img    *limitedImage
	index  int
	diffID v1.Hash
}

// Uncompressed tees the layer's tar stream to a tar reader that counts its
// entries, so files are counted without unpacking anything twice.
func (l *limitedLayer) Uncompressed() (io.ReadCloser, error) {
	rc, err := l.Layer.Uncompressed()
	if err != nil {
		return nil, err
	}
	pr, pw := io.Pipe()
	c := &countingReader{rc: rc, pw: pw, layer: l, done: make(chan struct{}), want: l.diffID, hash: sha256.New()}
	go c.countEntries(pr)
	return c, nil
}

type countingReader struct {
	rc    io.ReadCloser
	want  v1.Hash   // the DiffID the content must hash to
	hash  hash.Hash // of what was read so far
	eof   bool
	pw    *io.PipeWriter
	layer *limitedLayer
	done  chan struct{}
	mu    sync.Mutex
	bytes int64
	files int
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.rc.Read(p)
	if errors.Is(err, io.EOF) {
		c.eof = true
	}
	if n > 0 {
		c.hash.Write(p[:n])
		c.mu.Lock()
		c.bytes += int64(n)
		bytes, files := c.bytes, c.files
		c.mu.Unlock()
		if lerr := c.layer.img.add(c.layer.index, int64(n), 0, bytes, files); lerr != nil {
			return 0, lerr
		}
		if _, werr := c.pw.Write(p[:n]); werr != nil {
			return 0, werr
		}
	}
	return n, err
}

func (c *countingReader) countEntries(pr *io.PipeReader) {
	defer close(c.done)
	tr := tar.NewReader(pr)
	for {
		h, err := tr.Next()
		if err != nil {
			// The unpacker reports a broken tar itself; here only the
			// count matters. Drain so the writer never blocks.
			io.Copy(io.Discard, pr)
			return
		}
		if max := c.layer.img.limits.MaxFileBytes; max > 0 && h.Size > max {
			// The unpacker would skip it, and a package database skipped
			// is a clean result that is not true.
			pr.CloseWithError(c.layer.img.fail(fmt.Errorf("layer %d: %s is %d bytes, more than %d: %w", c.layer.index+1, h.Name, h.Size, max, ErrLimit)))
			return
		}
		c.mu.Lock()
		c.files++
		bytes, files := c.bytes, c.files
		c.mu.Unlock()
		if err := c.layer.img.add(c.layer.index, 0, 1, bytes, files); err != nil {
			pr.CloseWithError(err)
			return
		}
	}
}

// Close reads what the unpacker left (a tar's trailing blocks) so the whole
// layer is hashed, then checks it against its DiffID. The unpacker ignores
// Close's error, so a mismatch is also recorded on the image.
func (c *countingReader) Close() error {
	var err error
	if !c.eof && c.layer.img.err() == nil {
		// A gzip checksum is checked only at the stream's end.
		if _, cerr := io.Copy(io.Discard, c); cerr != nil && c.layer.img.err() == nil {
			err = c.layer.img.fail(fmt.Errorf("layer %d: %w: %w", c.layer.index+1, ErrCorrupt, cerr))
		}
	}
	c.pw.Close()
	<-c.done
	if err == nil && c.eof && c.layer.img.err() == nil {
		if got := "sha256:" + hex.EncodeToString(c.hash.Sum(nil)); c.want.Algorithm == "sha256" && got != c.want.String() {
			err = c.layer.img.fail(fmt.Errorf("layer %d: content is %s, not %s as the image says: %w", c.layer.index+1, got, c.want, ErrCorrupt))
		}
	}
	return errors.Join(err, c.rc.Close())
}
