package scan

import (
	"archive/tar"
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"hash"
	"io"
	"io/fs"
	"maps"
	"os"
	"path"
	"runtime"
	"runtime/debug"
	"slices"
	"strings"
	"sync"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/osv-scalibr/extractor/filesystem"
	"github.com/google/osv-scalibr/plugin"
	"github.com/klauspost/compress/zstd"
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

// content locates a kept file's bytes: in data, or at off in the blob's
// content file, or at off in at, the layer itself (see inPlace). A
// regular file no extractor reads has kept false. A file taken from a
// layer cache record that holds only what the extractors found in it
// (see nothingFound) has dropped set and no bytes.
type content struct {
	kept    bool
	data    []byte
	at      inPlace
	off     int64
	size    int64
	dropped *dropped
}

// file is where c's bytes are when they are not in memory: the layer read
// in place, or the content file.
func (c content) file(b *blob) io.ReaderAt {
	if c.at != nil {
		return c.at
	}
	return b.f
}

// inPlace is a layer's stream that the scan may read again at offsets: a
// stored uncompressed tar (a docker save archive's layer.tar, read from
// the archive file). The files the extractors read are not copied out of
// such a layer as it is read, only located in it, and read where they are
// after the layer's DiffID was checked: on a docker save layer, the copy
// (into memory or the content file, fresh pages each) cost as much as
// parsing the tar. Unchanged fails if the bytes may have changed since:
// the scan asks it before it reports, and before it keeps a layer cache
// record, so that both are of the bytes whose DiffID it checked.
type inPlace interface {
	io.ReaderAt
	Unchanged() error
}

// dropped stands for content a record did not keep: the extractors of
// none found nothing in it. It is allocated once per file, so that two
// dropped contents are the same only if they are one.
type dropped struct {
	none memoSet
}

// blob is the scan's one content file; layers reserve ranges of it and
// write them concurrently.
type blob struct {
	mu      sync.Mutex
	f       *os.File
	next    int64
	inPlace []inPlace // the layers read in place (see unchanged)
}

// readInPlace notes a layer whose files are read in place.
func (b *blob) readInPlace(l inPlace) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.inPlace = append(b.inPlace, l)
}

// unchanged fails if a layer read in place may have changed since it was
// read (see inPlace).
func (b *blob) unchanged() error {
	b.mu.Lock()
	defer b.mu.Unlock()
	for _, l := range b.inPlace {
		if err := l.Unchanged(); err != nil {
			return err
		}
	}
	return nil
}

// file returns the content file, made on first use without a name (or,
// where the filesystem cannot, unlinked at once): the scan reads and
// writes it through its descriptor only, so that no name in $TMPDIR
// outlives the scan, even one killed with SIGKILL, which runs no cleanup.
func (b *blob) file() (*os.File, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.f == nil {
		if f, err := unnamedTemp(os.TempDir()); err == nil {
			b.f = f
			return f, nil
		}
		f, err := os.CreateTemp("", "scangate-content-")
		if err != nil {
			return nil, err
		}
		if err := os.Remove(f.Name()); err != nil {
			f.Close()
			return nil, fmt.Errorf("unlink the scan's content file: %w", err)
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
		b.f.Close() // unlinked when made: closing frees it
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

// wanted decides which regular files the unpacker keeps. It is asked
// about every entry of every layer read (and, for a cached image, every
// file of the tree): what does not change per file, whether an extractor
// runs on folders, its memo bit, whether it opens companion files, is
// read from each extractor once (Requirements allocates).
type wanted struct {
	extractors []wantedExtractor
}

type wantedExtractor struct {
	filesystem.Extractor
	fromDirs  bool      // Requirements().ExtractFromDirs: not run on files
	memo      memoSet   // memoBit(Name())
	companion companion // nil if it opens no files beside the one it reads
}

func newWanted(plugins []plugin.Plugin) *wanted {
	w := &wanted{}
	for _, p := range plugins {
		if e, ok := p.(filesystem.Extractor); ok {
			we := wantedExtractor{Extractor: e, memo: memoBit(e.Name())}
			if r := e.Requirements(); r != nil {
				we.fromDirs = r.ExtractFromDirs
			}
			we.companion, _ = e.(companion)
			w.extractors = append(w.extractors, we)
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
	return slices.Contains(knownDatabases, name) || w.extracted(name, info)
}

// extracted tells whether an extractor the walk runs on files reads name.
func (w *wanted) extracted(name string, info fs.FileInfo) bool {
	api := headerAPI{path: name, info: info}
	for _, e := range w.extractors {
		if !e.fromDirs && e.FileRequired(api) {
			return true
		}
		if e.companion != nil && e.companion.companion(name) {
			return true
		}
	}
	return false
}

// sonameWanted tells whether name, a versioned shared library
// (usr/lib/libz.so.1.2.13), would be read through the link named by its
// SONAME (usr/lib/libz.so.1): osv-scalibr's executable extractors want
// that name whatever the target's mode, and the SONAME is a prefix of the
// library's name, cut at a dot. A tar made by a sorted walk (docker
// build's) lists the link first, and linked keeps the target; one that is
// not (docker import of a tar -c of a debootstrap tree) lists the target
// first, and without this the whole layer was read again for a few
// libraries: a third of the scan of such an image.
func (w *wanted) sonameWanted(name string, info fs.FileInfo) bool {
	dir, base := path.Split(name)
	i := strings.Index(base, ".so.")
	if i < 0 {
		return false
	}
	for j := i + len(".so."); ; {
		k := strings.IndexByte(base[j:], '.')
		if k < 0 {
			return false
		}
		if w.extracted(dir+base[:j+k], info) {
			return true
		}
		j += k + 1
	}
}

// openLayer returns the layer's uncompressed tar stream. A stored blob is
// decompressed as its descriptor's media type says, never as its bytes
// look (go-containerregistry's Uncompressed sniffs them): a blob whose
// bytes are not what the type says is a corrupt layer. A gzip blob is
// inflated with a faster inflater (newGzipReader). Layers made in this
// process, and those of a docker save archive, whose format names no
// media type, are read through Uncompressed.
func openLayer(l *limitedLayer) (io.ReadCloser, error) {
	if !compressedIsStored(l) {
		return l.Layer.Uncompressed()
	}
	comp, _ := compressionOf(l.mediaType) // checked in Layers
	rc, err := l.Layer.Compressed()
	if err != nil {
		return nil, err
	}
	if comp == uncompressed {
		return rc, nil
	}
	br := bufio.NewReaderSize(rc, 1<<20)
	magic, _ := br.Peek(4)
	switch {
	case comp == gzipped && bytes.HasPrefix(magic, []byte{0x1f, 0x8b}):
		zr, err := newGzipReader(br)
		if err != nil {
			rc.Close()
			return nil, fmt.Errorf("%w: %w", ErrCorrupt, err)
		}
		return readCloser{Reader: zr, close: func() error { zr.Close(); return rc.Close() }}, nil
	case comp == zstdCompressed && bytes.HasPrefix(magic, []byte{0x28, 0xb5, 0x2f, 0xfd}):
		zr, err := zstd.NewReader(br, zstd.WithDecoderConcurrency(1), zstd.WithDecoderLowmem(true),
			zstd.WithDecoderMaxWindow(maxZstdWindow), zstd.WithDecoderMaxMemory(maxZstdWindow))
		if err != nil {
			rc.Close()
			return nil, fmt.Errorf("%w: %w", ErrCorrupt, err)
		}
		return readCloser{Reader: zr, close: func() error { zr.Close(); return rc.Close() }}, nil
	}
	rc.Close()
	name := map[compression]string{gzipped: "gzip", zstdCompressed: "zstd"}[comp]
	return nil, fmt.Errorf("media type %s says %s, but the blob is not %s: %w", l.mediaType, name, name, ErrCorrupt)
}

// maxZstdWindow bounds the memory a zstd frame may ask for: 128 MiB, the
// window of zstd --long=27, the largest its own decoder accepts without
// being told.
const maxZstdWindow = 128 << 20

// compressedIsStored tells whether Compressed reads a stored blob rather
// than compressing the layer on the fly: go-containerregistry's layers of
// a docker-archive stored uncompressed, or built from an opener, compress
// in Compressed. Only its extender of stored blobs (OCI layouts,
// docker-archives of compressed layers) is known to read one; any other
// layer, a wrapper included, is read through Uncompressed.
// Wrappers that say what they wrap (Unwrap) are looked through, and so is
// the wrapper of a registry's layers (remote.MountableLayer), whose
// Compressed is the blob as the registry serves it, its digest checked as
// it is read: read through Uncompressed, a registry's layers were
// inflated by compress/gzip (three times ISA-L's time) and sniffed.
func compressedIsStored(l *limitedLayer) bool {
	var inner v1.Layer = l.Layer
	for range 16 {
		if ml, ok := inner.(*remote.MountableLayer); ok {
			inner = ml.Layer
			continue
		}
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
	// The DiffID's SHA-256 runs in the read-ahead's own stage, beside the
	// parsing (see walk).
	h := sha256.New()
	direct, _ := raw.(inPlace)
	if direct != nil {
		b.readInPlace(direct)
	}
	rc := newReadAhead(raw, h)
	defer rc.Close()
	var out []entry
	// Targets of links the walk will read as package files, seen before
	// the target: a sorted tar lists libz.so.1 before libz.so.1.2.13. A
	// target met before its link is read again later (see linkedTargets),
	// unless its name says it is a shared library whose SONAME link the
	// walk reads (see sonameWanted).
	linked := map[string]bool{}
	err = l.walk(rc, h, only == nil, func(hdr *tar.Header, r io.Reader, at int64) error {
		if err := ctx.Err(); err != nil {
			return err
		}
		name := hdr.Name // relative to the root, and never climbing out (see clean)
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
			// Kept as it is, climbing targets included: Docker stores the
			// target verbatim, and it is followed inside the root.
			if only == nil && (linked[name] || w.file(name, linkInfo(name))) {
				linked[linkTarget(dir, hdr.Linkname)] = true
			}
		case tar.TypeReg:
			keep := false
			if only != nil {
				keep = only[name]
			} else {
				keep = linked[name] || w.file(name, info) || w.sonameWanted(name, info)
			}
			if keep && direct != nil && at > 0 {
				// Located, not copied: the walk skips its bytes, which the
				// read-ahead has hashed (see inPlace).
				e.body = content{kept: true, at: direct, off: at, size: hdr.Size}
			} else if keep {
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
// layer in the cache (if not nil) is taken from there. A layer that
// repeats an earlier one's blob (limitedLayer.first) is read, and counted
// against the limits, once: its entries are the first occurrence's.
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
		if l.first != i {
			continue
		}
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
	for i, l := range layers {
		t.apply(i, results[l.first])
	}
	// A link the walk reads as a package file, or as a known database,
	// whose target no extractor wanted under its own name: read the
	// layers again for those targets, each blob once.
	need := t.linkedTargets(w)
	again := map[int]map[string]bool{} // by the first layer of each blob
	for i, names := range need {
		first := layers[i].first
		if again[first] == nil {
			again[first] = map[string]bool{}
		}
		maps.Copy(again[first], names)
	}
	extra := make([][]entry, len(layers))
	for first, names := range again {
		es, ok := cache.extra(first, names)
		if !ok {
			if es, err = unpackLayer(ctx, layers[first], w, b, names); err != nil {
				return nil, err
			}
		}
		extra[first] = es
		for i := range need {
			if layers[i].first == first {
				t.fill(i, es)
			}
		}
	}
	if err := t.checkFolderLinks(w); err != nil {
		return nil, err
	}
	if cache != nil {
		// Kept with what the walk will have found: saved after it (see
		// CatalogWithCache), so that records can say where it found nothing.
		t.save = func() { cache.saveAll(ctx, layers, results, extra, b, w, t.nothingFound()) }
	}
	return t, nil
}

// checkFolderLinks fails when a package database is reached through a
// link to a folder and lands where no extractor looks: scalibr's walk
// does not follow links to folders, so the extractor would never see the
// file under the name it looks for, and the image would scan with no
// packages (var/lib/dpkg -> /srv/dpkg). A link that lands where an
// extractor looks anyway is fine: the file is read there (Fedora's
// var/lib/rpm -> ../../usr/lib/sysimage/rpm). os-release is read by
// readOS, through any link.
func (t *treeFS) checkFolderLinks(w *wanted) error {
	for _, p := range knownDatabases {
		dir := path.Dir(p)
		if strings.HasSuffix(p, "os-release") {
			continue
		}
		real, err := t.resolve(dir, true)
		if err != nil || real == dir {
			continue
		}
		target, err := t.resolve(p, true)
		if err != nil {
			continue // nothing there, or a loop: checkReadable's to judge
		}
		n := t.lookupNoFollow(target)
		if n == nil || n.kind != tar.TypeReg || w.extracted(target, fileInfo{n: n, name: path.Base(target)}) {
			continue
		}
		return fmt.Errorf("/%s is reached through a link to a folder, at /%s, where no extractor looks: the scan cannot read it", p, target)
	}
	return nil
}

// section returns a reader of c. Reading content a record dropped fails.
func (t *treeFS) section(c content) *io.SectionReader {
	if c.dropped != nil {
		return io.NewSectionReader(notKept{}, 0, c.size)
	}
	if c.data != nil || c.size == 0 {
		return io.NewSectionReader(bytes.NewReader(c.data), 0, c.size)
	}
	return io.NewSectionReader(c.file(t.blob), c.off, c.size)
}

// errNotKept reports a file whose content the unpacker did not keep: no
// extractor asked for it.
var errNotKept = errors.New("content not unpacked")

// notKept reads content that is not there.
type notKept struct{}

func (notKept) ReadAt([]byte, int64) (int, error) { return 0, errNotKept }

// linkTarget is the path, relative to the root, that a symlink in dir to
// target names, ".." stopping at the root as it does in a container.
func linkTarget(dir, target string) string {
	if strings.HasPrefix(target, "/") {
		return strings.TrimPrefix(path.Clean(target), "/")
	}
	return strings.TrimPrefix(path.Join("/", dir, target), "/")
}

// linkInfo stands for the unknown target of a link: a plain file.
func linkInfo(name string) fs.FileInfo {
	return (&tar.Header{Name: name, Typeflag: tar.TypeReg, Mode: 0o644}).FileInfo()
}

// readAhead reads r in its own goroutine, a few chunks ahead of the
// reader, so that inflating a layer overlaps with hashing and parsing it.
// With a hash, a second goroutine hashes each chunk between the two: the
// SHA-256 of the DiffID check (as much CPU as parsing a docker save
// layer) then runs on the other core instead of in the parser's. It stops
// at the first error, or when closed; Close waits for the read under way
// and then closes r.
type readAhead struct {
	rc     io.ReadCloser
	h      hash.Hash     // nil: no hashing stage
	filled chan []byte   // filler to hasher, when h is set
	ch     chan []byte   // to the reader
	free   chan []byte   // chunks the reader is done with
	stop   chan struct{} // closed by Close
	done   chan struct{} // closed when the filler (and hasher) returned
	err    error         // set before ch is closed
	cur    []byte
	buf    []byte
	closed bool // by the reader: Read and Close are not concurrent
	close  sync.Once
	made   int   // chunks the filler may still take from chunkPool
	pos    int64 // bytes read or skipped by the reader
	// mapped is the whole stream in memory mapped from a file (see
	// mappedStream): the chunks are slices of it, neither read nor
	// pooled, and every touch of them is guarded.
	mapped []byte
	herr   error // the hasher's, set before it closes ch
}

// mappedStream is a stream whose bytes are mapped from a file: a layer of
// a docker save archive (image's sectionCloser). Taking them in place
// spares copying each layer into fresh chunks, which on a small image
// cost as much as the rest of its unpacking in a new process (the pages
// are new to it). The file may be cut short meanwhile; touching a page
// past its new end then faults, which guard turns into an error. Mapped
// must return a read-only mapping of a file, never other memory: the
// pages read are given back with MADV_DONTNEED (release), which would
// zero anonymous memory.
type mappedStream interface {
	Mapped() []byte
}

// maxMappedStream is the largest mapped stream taken from its mapping. A
// larger one is read into chunks as any other: those are few and used
// again and again along it, so their new pages cost little, and reading
// it from the mapping measured 4% slower on a 179 MB layer (the pages
// mapped and given back, 1 MB at a time), against 15% faster on a 12 MB
// image of five layers.
const maxMappedStream = 32 << 20

// mappedChunk is the size of the slices a mapped stream is passed on in:
// they cost no memory, only the hand-offs between the stages.
const mappedChunk = 1 << 20

// errCutShort reports a mapped file that was cut short while it was read.
var errCutShort = errors.New("the file was cut short while it was read")

// guard runs f, which touches mapped bytes, turning a fault on them into
// errCutShort instead of a crash.
func guard(f func()) (err error) {
	old := debug.SetPanicOnFault(true)
	defer func() {
		debug.SetPanicOnFault(old)
		if r := recover(); r != nil {
			if _, ok := r.(interface{ Addr() uintptr }); !ok {
				panic(r)
			}
			err = errCutShort
		}
	}()
	f()
	return nil
}

// chunkPool holds readAhead chunks (readAheadChunk bytes) between layers.
var chunkPool = sync.Pool{New: func() any { b := make([]byte, readAheadChunk); return &b }}

const readAheadChunk = 256 << 10

var errReadAheadClosed = errors.New("layer reader closed")

// newReadAhead starts reading rc; h, if not nil, is fed every byte the
// reader will get, before the reader gets it: once Read has returned
// io.EOF, h holds the digest of the whole stream.
func newReadAhead(rc io.ReadCloser, h hash.Hash) *readAhead {
	const depth = 4
	ra := &readAhead{rc: rc, h: h, ch: make(chan []byte, depth), free: make(chan []byte, 2*depth+2), stop: make(chan struct{}), done: make(chan struct{})}
	// Chunks are made as the filler needs them, and come from (and go
	// back to) a pool: a small layer needs one, and a scan reads many.
	ra.made = cap(ra.free)
	if m, ok := rc.(mappedStream); ok {
		if data := m.Mapped(); len(data) <= maxMappedStream {
			ra.mapped = data
		}
	}
	if h == nil {
		go func() {
			defer close(ra.done)
			defer close(ra.ch)
			ra.fill(ra.ch)
		}()
		return ra
	}
	ra.filled = make(chan []byte, depth)
	filled := make(chan struct{})
	go func() {
		defer close(filled)
		defer close(ra.filled)
		ra.fill(ra.filled)
	}()
	go func() {
		defer close(ra.done)
		defer func() { <-filled }()
		defer close(ra.ch)
		ra.hash()
	}()
	return ra
}

// fill reads chunks of rc into out until an error, which it keeps in
// ra.err, or until Close.
func (ra *readAhead) fill(out chan<- []byte) {
	if ra.mapped != nil {
		ra.fillMapped(out)
		return
	}
	for {
		var buf []byte
		select {
		case buf = <-ra.free:
		default:
			if ra.made > 0 {
				ra.made--
				buf = *chunkPool.Get().(*[]byte)
				break
			}
			select {
			case buf = <-ra.free:
			case <-ra.stop:
				ra.err = errReadAheadClosed
				return
			}
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
			case out <- buf[:n]:
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

// fillMapped passes the mapping on in slices.
func (ra *readAhead) fillMapped(out chan<- []byte) {
	for off := 0; off < len(ra.mapped); off += mappedChunk {
		end := min(off+mappedChunk, len(ra.mapped))
		populate(ra.mapped[off:end])
		select {
		case out <- ra.mapped[off:end:end]:
		case <-ra.stop:
			ra.err = errReadAheadClosed
			return
		}
	}
	ra.err = io.EOF
}

// hash passes the filler's chunks on to the reader, hashing each. The
// filler's ra.err is set before it closes filled, which is before this
// closes ch.
func (ra *readAhead) hash() {
	for {
		var b []byte
		var ok bool
		select {
		case b, ok = <-ra.filled:
		case <-ra.stop:
			return
		}
		if !ok {
			return
		}
		if ra.mapped == nil {
			ra.h.Write(b)
		} else if err := guard(func() { ra.h.Write(b) }); err != nil {
			// The reader gets this where it would have got the
			// end; the filler may still run, so not in ra.err.
			ra.herr = err
			return
		}
		select {
		case ra.ch <- b:
		case <-ra.stop:
			return
		}
	}
}

func (ra *readAhead) Read(p []byte) (int, error) {
	if ra.closed {
		return 0, errReadAheadClosed
	}
	if len(ra.cur) == 0 {
		ra.done1()
		b, ok := <-ra.ch
		if !ok {
			if ra.herr != nil {
				return 0, ra.herr
			}
			if ra.err == nil {
				// The hasher stopped on Close: not reached, as Read
				// and Close are not concurrent; say so rather than EOF.
				return 0, errReadAheadClosed
			}
			return 0, ra.err
		}
		ra.buf, ra.cur = b, b
	}
	var n int
	if ra.mapped == nil {
		n = copy(p, ra.cur)
	} else if err := guard(func() { n = copy(p, ra.cur) }); err != nil {
		return 0, err
	}
	ra.cur = ra.cur[n:]
	ra.pos += int64(n)
	return n, nil
}

// done1 gives the reader's current chunk back to the filler, or, of a
// mapping, its pages back to the kernel: they stay in the page cache, and
// do not count in the scan's memory as the layer's pages pile up.
func (ra *readAhead) done1() {
	switch {
	case ra.buf == nil:
	case ra.mapped == nil:
		ra.free <- ra.buf[:cap(ra.buf)]
	default:
		release(ra.buf)
	}
	ra.buf = nil
}

// Seek skips offset bytes (whence io.SeekCurrent only), as a tar reader
// skips the content of a file no one reads: the bytes are not copied
// out, and were hashed before the reader got them. Skipping past the end
// stops there; the position returned says how far it went (a tar reader
// then reads the last byte and reports the stream cut short).
func (ra *readAhead) Seek(offset int64, whence int) (int64, error) {
	if whence != io.SeekCurrent || offset < 0 {
		return ra.pos, errors.New("layer reader: seek only forward from here")
	}
	for offset > 0 {
		if len(ra.cur) == 0 {
			if ra.closed {
				return ra.pos, errReadAheadClosed
			}
			ra.done1()
			b, ok := <-ra.ch
			if !ok {
				return ra.pos, nil // the end: Read says why
			}
			ra.buf, ra.cur = b, b
		}
		n := int(min(offset, int64(len(ra.cur))))
		ra.cur = ra.cur[n:]
		ra.pos += int64(n)
		offset -= int64(n)
	}
	return ra.pos, nil
}

func (ra *readAhead) Close() error {
	var err error
	ra.close.Do(func() {
		ra.closed = true
		close(ra.stop)
		<-ra.done
		err = ra.rc.Close()
		// Every goroutine has returned: give the chunks back, the
		// reader's current one and those left in the channels (a
		// mapping's are not chunks).
		if ra.mapped != nil {
			release(ra.mapped)
			ra.buf, ra.cur = nil, nil
			return
		}
		if ra.buf != nil {
			putChunk(ra.buf)
			ra.buf, ra.cur = nil, nil
		}
		for _, c := range []chan []byte{ra.free, ra.filled, ra.ch} {
			drainChunks(c)
		}
	})
	return err
}

// drainChunks gives the chunks waiting in c back to the pool, without
// waiting for more.
func drainChunks(c chan []byte) {
	for c != nil {
		select {
		case b, ok := <-c:
			if !ok {
				return
			}
			putChunk(b)
		default:
			return
		}
	}
}

func putChunk(b []byte) {
	if cap(b) == readAheadChunk {
		b = b[:readAheadChunk]
		chunkPool.Put(&b)
	}
}
