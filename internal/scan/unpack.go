package scan

import (
	"archive/tar"
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"runtime"
	"slices"
	"strings"
	"sync"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/types"
	"github.com/google/osv-scalibr/extractor/filesystem"
	"github.com/google/osv-scalibr/plugin"
)

// inMemoryMax is the largest kept file held in memory; larger ones go to
// the scan's content file.
const inMemoryMax = 64 << 10

// entry is one tar entry the unpacker keeps: its metadata and, for a
// regular file an extractor reads, its content.
type entry struct {
	name  string // cleaned, relative to the root, never ""
	kind  byte   // tar.TypeDir, tar.TypeSymlink, tar.TypeReg, kindWhiteout, kindOpaque, kindOther
	mode  fs.FileMode
	size  int64
	mtime time.Time
	link  string
	body  content
}

const (
	kindWhiteout = 'W'
	kindOpaque   = 'O'
	kindOther    = 'X'
)

// content locates a kept file's bytes: in data, or at off in the blob. A
// regular file no extractor reads has kept false.
type content struct {
	kept bool
	data []byte
	off  int64
	size int64
}

// blob is the scan's one content file; layers reserve ranges of it and
// write them concurrently.
type blob struct {
	mu   sync.Mutex
	f    *os.File
	next int64
}

func (b *blob) file() (*os.File, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.f == nil {
		f, err := os.CreateTemp("", "scangate-content-")
		if err != nil {
			return nil, err
		}
		b.f = f
	}
	return b.f, nil
}

func (b *blob) reserve(n int64) int64 {
	b.mu.Lock()
	defer b.mu.Unlock()
	off := b.next
	b.next += n
	return off
}

func (b *blob) close() {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.f != nil {
		name := b.f.Name()
		b.f.Close()
		os.Remove(name)
		b.f = nil
	}
}

// store keeps n bytes of r.
func (b *blob) store(r io.Reader, n int64) (content, error) {
	if n <= inMemoryMax {
		data := make([]byte, n)
		if _, err := io.ReadFull(r, data); err != nil {
			return content{}, err
		}
		return content{kept: true, data: data, size: n}, nil
	}
	f, err := b.file()
	if err != nil {
		return content{}, err
	}
	off := b.reserve(n)
	if _, err := io.CopyN(io.NewOffsetWriter(f, off), r, n); err != nil {
		return content{}, err
	}
	return content{kept: true, off: off, size: n}, nil
}

// wanted decides which regular files the unpacker keeps.
type wanted struct {
	extractors []filesystem.Extractor
}

func newWanted(plugins []plugin.Plugin) *wanted {
	w := &wanted{}
	for _, p := range plugins {
		if e, ok := p.(filesystem.Extractor); ok {
			w.extractors = append(w.extractors, e)
		}
	}
	return w
}

type headerAPI struct {
	path string
	info fs.FileInfo
}

func (a headerAPI) Path() string               { return a.path }
func (a headerAPI) Stat() (fs.FileInfo, error) { return a.info, nil }

func (w *wanted) file(name string, info fs.FileInfo) bool {
	if slices.Contains(knownDatabases, name) {
		return true
	}
	api := headerAPI{path: name, info: info}
	for _, e := range w.extractors {
		if !e.Requirements().ExtractFromDirs && e.FileRequired(api) {
			return true
		}
	}
	return false
}

// openLayer returns the layer's uncompressed tar stream, inflating a gzip
// blob itself with a faster inflater (newGzipReader) where the blob surely
// is one.
func openLayer(l *limitedLayer) (io.ReadCloser, error) {
	if mt, err := l.Layer.MediaType(); err == nil && (mt == types.DockerLayer || mt == types.OCILayer) && compressedIsStored(l) {
		rc, err := l.Layer.Compressed()
		if err != nil {
			return nil, err
		}
		br := bufio.NewReaderSize(rc, 1<<20)
		if magic, err := br.Peek(2); err == nil && magic[0] == 0x1f && magic[1] == 0x8b {
			zr, err := newGzipReader(br)
			if err != nil {
				rc.Close()
				return nil, fmt.Errorf("%w: %w", ErrCorrupt, err)
			}
			return readCloser{Reader: zr, close: func() error { zr.Close(); return rc.Close() }}, nil
		}
		rc.Close()
	}
	return l.Layer.Uncompressed()
}

// compressedIsStored tells whether Compressed reads a stored blob rather
// than compressing the layer on the fly: go-containerregistry's layers of
// a docker-archive stored uncompressed, or built from an opener, compress
// in Compressed. Only its extender of stored blobs (OCI layouts,
// docker-archives of compressed layers) is known to read one; any other
// layer, a wrapper included, is read through Uncompressed.
// Wrappers that say what they wrap (Unwrap) are looked through.
func compressedIsStored(l *limitedLayer) bool {
	var inner v1.Layer = l.Layer
	for {
		u, ok := inner.(interface{ Unwrap() v1.Layer })
		if !ok {
			break
		}
		inner = u.Unwrap()
	}
	return fmt.Sprintf("%T", inner) == "*partial.compressedLayerExtender"
}

type readCloser struct {
	io.Reader
	close func() error
}

func (r readCloser) Close() error { return r.close() }

// unpackLayer reads one layer and keeps what the extractors need. only,
// if not nil, names the regular files to keep (a second read).
func unpackLayer(ctx context.Context, l *limitedLayer, w *wanted, b *blob, only map[string]bool) ([]entry, error) {
	raw, err := openLayer(l)
	if err != nil {
		return nil, fmt.Errorf("layer %d: %w", l.index+1, err)
	}
	rc := newReadAhead(raw)
	defer rc.Close()
	var out []entry
	// Targets of links the walk will read as package files, seen before
	// the target: a tar lists libz.so.1 before libz.so.1.2.13. A target
	// met before its link is read again later (see linkedTargets).
	linked := map[string]bool{}
	err = l.walk(rc, only == nil, func(hdr *tar.Header, r io.Reader) error {
		if err := ctx.Err(); err != nil {
			return err
		}
		name := strings.TrimPrefix(path.Clean("/"+hdr.Name), "/")
		if name == "" {
			return nil
		}
		dir, base := path.Split(name)
		dir = strings.TrimSuffix(dir, "/")
		if base == ".wh..wh..opq" {
			if only == nil && dir != "" {
				out = append(out, entry{name: dir, kind: kindOpaque})
			}
			return nil
		}
		if strings.HasPrefix(base, ".wh.") {
			if only == nil {
				out = append(out, entry{name: path.Join(dir, strings.TrimPrefix(base, ".wh.")), kind: kindWhiteout})
			}
			return nil
		}
		info := hdr.FileInfo()
		e := entry{name: name, kind: hdr.Typeflag, mode: info.Mode(), size: hdr.Size, mtime: hdr.ModTime, link: hdr.Linkname}
		switch hdr.Typeflag {
		case tar.TypeDir:
		case tar.TypeSymlink:
			if climbsOut(dir, hdr.Linkname) {
				return nil // as the unpacker before: a link out of the root is dropped
			}
			if only == nil && (linked[name] || w.file(name, linkInfo(name))) {
				target := path.Join(dir, hdr.Linkname)
				if strings.HasPrefix(hdr.Linkname, "/") {
					target = strings.TrimPrefix(path.Clean(hdr.Linkname), "/")
				}
				linked[target] = true
			}
		case tar.TypeReg:
			keep := false
			if only != nil {
				keep = only[name]
			} else {
				keep = linked[name] || w.file(name, info)
			}
			if keep {
				c, err := b.store(r, hdr.Size)
				if err != nil {
					return fmt.Errorf("layer %d: %s: %w: %w", l.index+1, hdr.Name, ErrCorrupt, err)
				}
				e.body = c
			}
		default:
			e.kind, e.size = kindOther, 0
		}
		if only == nil || e.body.kept {
			out = append(out, e)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// unpack reads every layer, concurrently, and merges them in order; a
// layer in the cache (if not nil) is taken from there.
func unpack(ctx context.Context, img *limitedImage, w *wanted, b *blob, cache *layerCache) (*treeFS, error) {
	ls, err := img.Layers()
	if err != nil {
		return nil, fmt.Errorf("layers: %w", err)
	}
	layers := make([]*limitedLayer, len(ls))
	for i, l := range ls {
		layers[i] = l.(*limitedLayer)
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	results := make([][]entry, len(layers))
	errs := make([]error, len(layers))
	sem := make(chan struct{}, runtime.GOMAXPROCS(0))
	var wg sync.WaitGroup
	for i, l := range layers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			sem <- struct{}{}
			defer func() { <-sem }()
			if ctx.Err() != nil {
				errs[i] = ctx.Err()
				return
			}
			var cached bool
			if results[i], cached, errs[i] = cache.load(l); !cached && errs[i] == nil {
				results[i], errs[i] = unpackLayer(ctx, l, w, b, nil)
			}
			if errs[i] != nil {
				img.fail(errs[i])
				cancel()
			}
		}()
	}
	wg.Wait()
	if err := img.err(); err != nil {
		return nil, err
	}
	for _, err := range errs {
		if err != nil {
			return nil, err
		}
	}
	t := newTree(layers)
	t.blob = b
	for i, es := range results {
		t.apply(i, es)
	}
	// A link the walk reads as a package file, or as a known database,
	// whose target no extractor wanted under its own name: read the
	// layers again for those targets.
	need := t.linkedTargets(w)
	extra := make([][]entry, len(layers))
	for i, names := range need {
		es, ok := cache.extra(i, names)
		if !ok {
			if es, err = unpackLayer(ctx, layers[i], w, b, names); err != nil {
				return nil, err
			}
		}
		extra[i] = es
		t.fill(i, es)
	}
	cache.saveAll(ctx, layers, results, extra, b)
	return t, nil
}

// section returns a reader of c.
func (t *treeFS) section(c content) *io.SectionReader {
	if c.data != nil || c.size == 0 {
		return io.NewSectionReader(bytes.NewReader(c.data), 0, c.size)
	}
	return io.NewSectionReader(t.blob.f, c.off, c.size)
}

// errNotKept reports a file whose content the unpacker did not keep: no
// extractor asked for it.
var errNotKept = errors.New("content not unpacked")

// climbsOut tells whether a link in dir to target goes above the root on
// the way: such a link is dropped, not clamped at the root.
func climbsOut(dir, target string) bool {
	depth := 0
	if !strings.HasPrefix(target, "/") && dir != "" {
		depth = strings.Count(dir, "/") + 1
	}
	for _, part := range strings.Split(target, "/") {
		switch part {
		case "", ".":
		case "..":
			depth--
			if depth < 0 {
				return true
			}
		default:
			depth++
		}
	}
	return false
}

// linkInfo stands for the unknown target of a link: a plain file.
func linkInfo(name string) fs.FileInfo {
	return (&tar.Header{Name: name, Typeflag: tar.TypeReg, Mode: 0o644}).FileInfo()
}

// readAhead reads r in its own goroutine, a few chunks ahead of the
// reader, so that inflating a layer overlaps with hashing and parsing it.
// It stops at the first error, or when closed; Close waits for the read
// under way and then closes r.
type readAhead struct {
	rc     io.ReadCloser
	ch     chan []byte
	free   chan []byte
	stop   chan struct{}
	done   chan struct{}
	err    error // set before ch is closed
	cur    []byte
	buf    []byte
	closed bool // by the reader: Read and Close are not concurrent
	close  sync.Once
}

const readAheadChunk = 256 << 10

var errReadAheadClosed = errors.New("layer reader closed")

func newReadAhead(rc io.ReadCloser) *readAhead {
	const depth = 4
	ra := &readAhead{rc: rc, ch: make(chan []byte, depth), free: make(chan []byte, depth+2), stop: make(chan struct{}), done: make(chan struct{})}
	for range depth + 2 {
		ra.free <- make([]byte, readAheadChunk)
	}
	go ra.run()
	return ra
}

func (ra *readAhead) run() {
	defer close(ra.done)
	defer close(ra.ch)
	for {
		var buf []byte
		select {
		case buf = <-ra.free:
		case <-ra.stop:
			ra.err = errReadAheadClosed
			return
		}
		// Fill the chunk, keeping the reader's own error as it is (a
		// truncated stream's io.ErrUnexpectedEOF included).
		n := 0
		var err error
		for n < len(buf) && err == nil {
			var k int
			k, err = ra.rc.Read(buf[n:])
			n += k
		}
		if n > 0 {
			select {
			case ra.ch <- buf[:n]:
			case <-ra.stop:
				ra.err = errReadAheadClosed
				return
			}
		}
		if err != nil {
			ra.err = err
			return
		}
	}
}

func (ra *readAhead) Read(p []byte) (int, error) {
	if ra.closed {
		return 0, errReadAheadClosed
	}
	if len(ra.cur) == 0 {
		if ra.buf != nil {
			ra.free <- ra.buf[:cap(ra.buf)]
			ra.buf = nil
		}
		b, ok := <-ra.ch
		if !ok {
			return 0, ra.err
		}
		ra.buf, ra.cur = b, b
	}
	n := copy(p, ra.cur)
	ra.cur = ra.cur[n:]
	return n, nil
}

func (ra *readAhead) Close() error {
	var err error
	ra.close.Do(func() {
		ra.closed = true
		close(ra.stop)
		<-ra.done
		err = ra.rc.Close()
	})
	return err
}
