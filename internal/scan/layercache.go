package scan

// The layer cache: a rebuilt image costs only its new layers.
//
// What is kept of a layer is what the unpacker made of it: every entry's
// metadata (names, kinds, modes, sizes, links, whiteouts, opaque folders)
// and the content of the files the extractors read, keyed by the layer's
// DiffID and the extractor set (osv-scalibr's module version and each
// extractor's name and version: they decide which files are kept). A scan
// that finds a layer in the cache takes its entries from there instead of
// reading, inflating and hashing the layer; the tree is merged, the
// extractors run and packages are attributed exactly as on a first scan,
// so whiteouts, upgrades and attribution come out the same by
// construction. Per-layer package lists merged afterwards, as trivy keeps
// them, would be smaller but not exact: the OS extractors read
// os-release from the merged tree (it names the release in each PURL),
// package-lock.json is passed over when an npm-shrinkwrap.json sits beside
// it in any layer, and a package file can be a link into another layer.
//
// A record is written only after the layer's content was checked against
// its DiffID, so a hit stands for content that was read whole and
// verified once. Its counts (bytes, files, largest file) are kept too and
// checked against each scan's own limits.

import (
	"archive/tar"
	"bufio"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"io/fs"
	"log/slog"
	"maps"
	"runtime/debug"
	"slices"
	"strings"
	"sync"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/scangate/scangate/internal/layercache"
)

// recordFormat changes whenever what the unpacker keeps of a layer, or
// how a record stores it, changes: older records then miss.
const recordFormat = "scangate-layer-2"

// scalibrModule is the module whose version is part of the extractor set.
const scalibrModule = "github.com/google/osv-scalibr"

// A Cataloger says what made an inventory: osv-scalibr's version and each
// package extractor's name and version. Extractors of a new osv-scalibr
// may find other packages with their version unchanged, so both count.
type Cataloger struct {
	Scalibr    string         `json:"scalibr"`
	Extractors map[string]int `json:"extractors"`
}

// Equal reports whether c and o are the same extractor set.
func (c *Cataloger) Equal(o *Cataloger) bool {
	if c == nil || o == nil {
		return c == o
	}
	if c.Scalibr != o.Scalibr || len(c.Extractors) != len(o.Extractors) {
		return false
	}
	for k, v := range c.Extractors {
		if w, ok := o.Extractors[k]; !ok || w != v {
			return false
		}
	}
	return true
}

var current = sync.OnceValues(func() (*Cataloger, error) {
	plugins, err := Extractors()
	if err != nil {
		return nil, err
	}
	c := &Cataloger{Scalibr: "unknown", Extractors: map[string]int{}}
	if bi, ok := debug.ReadBuildInfo(); ok {
		for _, d := range bi.Deps {
			if d.Path == scalibrModule {
				c.Scalibr = d.Version
				if d.Replace != nil {
					c.Scalibr = d.Replace.Path + "@" + d.Replace.Version
				}
			}
		}
	}
	for _, p := range plugins {
		c.Extractors[p.Name()] = p.Version()
	}
	return c, nil
})

// CurrentCataloger is this build's extractor set.
func CurrentCataloger() (*Cataloger, error) {
	c, err := current()
	if err != nil {
		return nil, err
	}
	out := *c
	out.Extractors = maps.Clone(c.Extractors)
	return &out, nil
}

// Outdated reports whether a stored inventory was made by another
// extractor set than this build's (or by a scangate that did not record
// one): cataloging the image again may find other packages.
func Outdated(r *Report) (bool, error) {
	c, err := current()
	if err != nil {
		return false, err
	}
	return !c.Equal(r.Cataloger), nil
}

// fingerprint is the part of a record's key that is not the DiffID.
var fingerprint = sync.OnceValues(func() (string, error) {
	c, err := current()
	if err != nil {
		return "", err
	}
	names := make([]string, 0, len(c.Extractors))
	for n := range c.Extractors {
		names = append(names, n)
	}
	slices.Sort(names)
	var b strings.Builder
	fmt.Fprintf(&b, "%s\nosv-scalibr %s\n", recordFormat, c.Scalibr)
	for _, n := range names {
		fmt.Fprintf(&b, "%s %d\n", n, c.Extractors[n])
	}
	b.WriteString(strings.Join(knownDatabases, " "))
	return b.String(), nil
})

// layerTotals are what walk counted of a layer, for the limits.
type layerTotals struct {
	bytes   int64
	files   int64
	largest int64
	// largestName is the largest file's name as the tar has it, for the
	// message when it is over a scan's MaxFileBytes.
	largestName string
}

// layerCache is the cache as the unpacker uses it, for one scan.
type layerCache struct {
	c      *layercache.Cache
	limits Limits
	fp     string

	mu     sync.Mutex
	loaded map[int]*loadedLayer // by layer index: the layers found in the cache
	mapped [][]byte             // their records, which hold their files' content
}

// close closes the records the scan read from; the tree is no longer
// readable after it.
func (lc *layerCache) close() {
	if lc == nil {
		return
	}
	lc.mu.Lock()
	defer lc.mu.Unlock()
	for _, m := range lc.mapped {
		unmap(m)
	}
	lc.mapped = nil
}

// loadedLayer is what a record held beside the entries: the content of
// files a second read kept for links (see linkedTargets), which a later
// scan's second read may ask for again.
type loadedLayer struct {
	extra  map[string]entry
	missed bool // a second read asked for more than extra holds
}

func newLayerCache(c *layercache.Cache, limits Limits) (*layerCache, error) {
	if c == nil {
		return nil, nil
	}
	fp, err := fingerprint()
	if err != nil {
		return nil, err
	}
	return &layerCache{c: c, limits: limits, fp: fp, loaded: map[int]*loadedLayer{}}, nil
}

func (lc *layerCache) key(diffID v1.Hash) string {
	sum := sha256.Sum256([]byte(lc.fp + "\x00" + diffID.String()))
	return hex.EncodeToString(sum[:])
}

// load returns the layer's entries from the cache, their content in the
// record, and counts them against the image's limits; ok is false on a miss or a
// record that does not read back whole (the layer is then read).
func (lc *layerCache) load(l *limitedLayer) (es []entry, ok bool, err error) {
	if lc == nil {
		return nil, false, nil
	}
	f, err := lc.c.Get(lc.key(l.diffID))
	if err != nil {
		return nil, false, nil // a miss, or a record that cannot be opened: read the layer
	}
	// The record stands for the content; the image must still have it: a
	// blob that is missing or cut short makes this a miss, and reading
	// the layer fails as it would without the cache.
	if !present(l) {
		f.Close()
		return nil, false, nil
	}
	// The record is mapped, not read: it is checked in place, and the
	// files the extractors read are read from the mapping. A record is
	// never changed once written (a new one replaces it by rename), so the
	// mapping stays valid while the scan holds it.
	data, err := mapFile(f)
	f.Close()
	if err != nil {
		return nil, false, nil
	}
	keep := false
	defer func() {
		if !keep {
			unmap(data)
		}
	}()
	// The totals come first in a record: a layer over the limits fails
	// before anything else is read; it is counted once read whole (a
	// record that does not read back is a miss, and the layer's walk
	// counts it).
	var tot layerTotals
	es, extra, err := decodeRecord(data, true, l.diffID, func(t layerTotals) error {
		tot = t
		return l.img.checkLayer(l.index, t, false)
	})
	if errors.Is(err, ErrLimit) {
		return nil, false, err
	}
	if err != nil {
		return nil, false, nil
	}
	if err := l.img.checkLayer(l.index, tot, true); err != nil {
		return nil, false, err
	}
	ll := &loadedLayer{extra: map[string]entry{}}
	for _, e := range extra {
		ll.extra[e.name] = e
	}
	lc.mu.Lock()
	lc.loaded[l.index] = ll
	lc.mapped = append(lc.mapped, data)
	lc.mu.Unlock()
	keep = true
	return es, true, nil
}

// present tells whether the image holds the layer's blob whole, as far as
// can be told without reading it: the blob opens and, where it can be
// sought (a file of a layout or an archive), is as long as the image
// says.
func present(l *limitedLayer) bool {
	var inner v1.Layer = l.Layer
	for {
		u, ok := inner.(interface{ Unwrap() v1.Layer })
		if !ok {
			break
		}
		inner = u.Unwrap()
	}
	size, err := inner.Size()
	if err != nil {
		return false
	}
	rc, err := inner.Compressed()
	if err != nil {
		return false
	}
	defer rc.Close()
	if s, ok := rc.(io.Seeker); ok {
		end, err := s.Seek(0, io.SeekEnd)
		return err == nil && end == size
	}
	return true
}

// extra returns, for a layer taken from the cache, the files a second
// read would keep for links, if its record holds them all.
func (lc *layerCache) extra(index int, names map[string]bool) ([]entry, bool) {
	if lc == nil {
		return nil, false
	}
	lc.mu.Lock()
	defer lc.mu.Unlock()
	ll := lc.loaded[index]
	if ll == nil {
		return nil, false
	}
	out := make([]entry, 0, len(names))
	for n := range names {
		e, ok := ll.extra[n]
		if !ok {
			ll.missed = true
			return nil, false
		}
		out = append(out, e)
	}
	return out, true
}

// saveAll keeps the layers this scan read (they were read whole and
// matched their DiffIDs), and the layers taken from the cache whose second
// read needed more than their record held, with what it kept. A record
// that cannot be written costs the next scan time, not this one its
// result: it is logged and the scan goes on.
//
// A file every extractor that reads it found nothing in is kept as that
// note, without its bytes (see dropContent); found says, by content,
// which memoized extractors found nothing in what.
func (lc *layerCache) saveAll(ctx context.Context, layers []*limitedLayer, results, extra [][]entry, b *blob, w *wanted, found map[contentID]memoSet) {
	if lc == nil {
		return
	}
	var wg sync.WaitGroup
	for i, l := range layers {
		if l.first != i {
			continue // a repeat of an earlier layer's blob, kept with it
		}
		lc.mu.Lock()
		ll := lc.loaded[i]
		lc.mu.Unlock()
		ex := extra[i]
		if ll != nil {
			if !ll.missed {
				continue
			}
			for name, e := range ll.extra {
				if !slices.ContainsFunc(ex, func(o entry) bool { return o.name == name }) {
					ex = append(ex, e)
				}
			}
		}
		es := make([]entry, len(results[i]))
		for j, e := range results[i] {
			es[j] = dropContent(e, w, found)
		}
		if kept := keptBytes(es) + keptBytes(ex); kept > lc.maxRecord() {
			slog.DebugContext(ctx, "layer cache: layer not kept, its package files are too large", "layer", l.diffID.String(), "bytes", kept)
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			err := lc.c.Put(lc.key(l.diffID), func(w io.Writer) error {
				bw := bufio.NewWriterSize(w, 1<<20)
				if err := encodeRecord(bw, l.diffID, es, ex, l.totals, b); err != nil {
					return err
				}
				if err := bw.Flush(); err != nil {
					return err
				}
				// Read in place, the content is kept only if it is still
				// what the DiffID check read (see inPlace).
				return b.unchanged()
			})
			if err != nil {
				slog.WarnContext(ctx, "layer cache: not kept", "layer", l.diffID.String(), "err", err)
			}
		}()
	}
	wg.Wait()
}

// maxRecord bounds the content one record keeps: a layer whose kept files
// weigh more (hundreds of megabytes of files that look like executables)
// would push the rest out of the cache and cost as much to check as to
// read; it is read at each scan instead.
func (lc *layerCache) maxRecord() int64 { return min(256<<20, lc.c.MaxBytes()/4) }

func keptBytes(es []entry) int64 {
	var n int64
	for _, e := range es {
		if e.body.kept && e.body.dropped == nil {
			n += e.body.size
		}
	}
	return n
}

// checkLayer checks a cached layer against the limits as walk would have
// checked it entry by entry, and with add counts it in the image's totals.
func (img *limitedImage) checkLayer(index int, tot layerTotals, add bool) error {
	if max := img.limits.MaxFileBytes; max > 0 && tot.largest >= max {
		return fmt.Errorf("layer %d: %s is %d bytes, the limit is less than %d: %w", index+1, tot.largestName, tot.largest, max, ErrLimit)
	}
	img.mu.Lock()
	bytes, files := img.bytes+tot.bytes, img.files+int(tot.files)
	if add {
		img.bytes, img.files = bytes, files
	}
	img.mu.Unlock()
	lim := img.limits
	switch {
	case lim.MaxLayerBytes > 0 && tot.bytes > lim.MaxLayerBytes:
		return errLayerBytes(index, lim.MaxLayerBytes)
	case lim.MaxImageBytes > 0 && bytes > lim.MaxImageBytes:
		return errImageBytes(lim.MaxImageBytes)
	case lim.MaxLayerFiles > 0 && tot.files > int64(lim.MaxLayerFiles):
		return fmt.Errorf("layer %d: more than %d files: %w", index+1, lim.MaxLayerFiles, ErrLimit)
	case lim.MaxImageFiles > 0 && files > lim.MaxImageFiles:
		return fmt.Errorf("image: more than %d files: %w", lim.MaxImageFiles, ErrLimit)
	}
	return nil
}

// A record is, in order: recordMagic; the DiffID; the totals (bytes,
// files, the largest file's size and name); the number
// of entries; each entry (name, kind, mode, size, mtime, link, whether its
// content is kept: 0 no, 1 yes, 2 dropped, followed by the memoSet of
// extractors that found nothing in it); the kept contents, in entry order; the extra files (a
// count, then each one's name and size, then their contents); and the
// CRC-32C of everything before it. Numbers are varints, strings are length-prefixed.
const recordMagic = "SGLAYER4"

// Bounds on what a record may claim, whatever the limits: a damaged or
// forged record must not make the decoder allocate without end.
const (
	maxRecordString  = 1 << 16
	maxRecordEntries = 1 << 24
)

var crcTable = crc32.MakeTable(crc32.Castagnoli)

type recordWriter struct {
	w   io.Writer
	crc hashWriter
	buf [binary.MaxVarintLen64]byte
	err error
}

type hashWriter struct{ sum uint32 }

func (h *hashWriter) Write(p []byte) (int, error) {
	h.sum = crc32.Update(h.sum, crcTable, p)
	return len(p), nil
}

func (rw *recordWriter) write(p []byte) {
	if rw.err != nil {
		return
	}
	rw.crc.Write(p)
	_, rw.err = rw.w.Write(p)
}

func (rw *recordWriter) varint(v int64) { rw.write(rw.buf[:binary.PutVarint(rw.buf[:], v)]) }
func (rw *recordWriter) str(s string)   { rw.varint(int64(len(s))); rw.write([]byte(s)) }

func encodeRecord(w io.Writer, diffID v1.Hash, es, extra []entry, tot layerTotals, b *blob) error {
	rw := &recordWriter{w: w}
	rw.write([]byte(recordMagic))
	rw.str(diffID.String())
	rw.varint(tot.bytes)
	rw.varint(tot.files)
	rw.varint(tot.largest)
	rw.str(tot.largestName)
	rw.varint(int64(len(es)))
	for _, e := range es {
		rw.str(e.name)
		rw.write([]byte{e.kind})
		rw.varint(int64(e.mode))
		rw.varint(e.size)
		rw.varint(e.mtime.UnixNano())
		rw.str(e.link)
		kept := []byte{0}
		if e.body.kept {
			kept = []byte{1}
			if e.body.dropped != nil {
				kept = []byte{2, byte(e.body.dropped.none)}
			}
			if e.body.size != e.size {
				return fmt.Errorf("%s: kept %d bytes of %d", e.name, e.body.size, e.size)
			}
		}
		rw.write(kept)
	}
	if err := rw.contents(es, b); err != nil {
		return err
	}
	rw.varint(int64(len(extra)))
	for _, e := range extra {
		if !e.body.kept || e.body.dropped != nil {
			return fmt.Errorf("%s: extra file without content", e.name)
		}
		rw.str(e.name)
		rw.varint(e.body.size)
	}
	if err := rw.contents(extra, b); err != nil {
		return err
	}
	if rw.err != nil {
		return rw.err
	}
	var sum [4]byte
	binary.LittleEndian.PutUint32(sum[:], rw.crc.sum)
	_, err := w.Write(sum[:])
	return err
}

// contents writes the kept content of es, in order.
func (rw *recordWriter) contents(es []entry, b *blob) error {
	for _, e := range es {
		if !e.body.kept || e.body.dropped != nil || rw.err != nil {
			continue
		}
		if e.body.data != nil || e.body.size == 0 {
			rw.write(e.body.data)
			continue
		}
		if _, err := io.Copy(writerFunc(rw.write), io.NewSectionReader(e.body.file(b), e.body.off, e.body.size)); err != nil {
			return err
		}
	}
	return rw.err
}

type writerFunc func([]byte)

func (f writerFunc) Write(p []byte) (int, error) { f(p); return len(p), nil }

// errRecord reports a record that is not what it should be.
var errRecord = errors.New("bad layer cache record")

type recordReader struct {
	data []byte // the record
	off  int    // what was read of it
}

func (rr *recordReader) next(n int) ([]byte, error) {
	if n < 0 || n > len(rr.data)-rr.off {
		return nil, fmt.Errorf("%w: cut short", errRecord)
	}
	p := rr.data[rr.off : rr.off+n : rr.off+n]
	rr.off += n
	return p, nil
}

func (rr *recordReader) ReadByte() (byte, error) {
	p, err := rr.next(1)
	if err != nil {
		return 0, err
	}
	return p[0], nil
}

func (rr *recordReader) varint(min, max int64) (int64, error) {
	v, err := binary.ReadVarint(rr)
	if err != nil {
		return 0, fmt.Errorf("%w: %v", errRecord, err)
	}
	if v < min || v > max {
		return 0, fmt.Errorf("%w: %d is out of range", errRecord, v)
	}
	return v, nil
}

func (rr *recordReader) str() (string, error) {
	n, err := rr.varint(0, maxRecordString)
	if err != nil {
		return "", err
	}
	p, err := rr.next(int(n))
	return string(p), err
}

// contents gives es their kept content: slices of the record, not copies.
func (rr *recordReader) contents(es []entry) error {
	for i := range es {
		if !es[i].body.kept || es[i].body.dropped != nil {
			continue
		}
		p, err := rr.next(int(es[i].size))
		if err != nil {
			return fmt.Errorf("%s: %w", es[i].name, err)
		}
		es[i].body = content{kept: true, data: p, size: es[i].size}
	}
	return nil
}

// decodeRecord reads a record of the layer diffID, storing kept contents
// in b; check sees the layer's totals before any entry is read. Anything
// out of place, or a checksum that does not match, is an error: the layer
// is then read from the image.
// The entries' contents are slices of data.
// With mapped, data is a mapping whose pages are given back as they are
// checked.
func decodeRecord(data []byte, mapped bool, diffID v1.Hash, check func(layerTotals) error) (es, extra []entry, err error) {
	// Checked first, so that nothing of a damaged record is used.
	if len(data) < len(recordMagic)+4 {
		return nil, nil, fmt.Errorf("%w: not a record", errRecord)
	}
	body := data[:len(data)-4]
	// In pieces, each given back once summed (see release): a record can
	// hold hundreds of megabytes that no extractor will read.
	var sum uint32
	for rest := body; len(rest) > 0; {
		n := min(len(rest), 4<<20)
		sum = crc32.Update(sum, crcTable, rest[:n])
		if mapped {
			release(rest[:n])
		}
		rest = rest[n:]
	}
	if sum != binary.LittleEndian.Uint32(data[len(body):]) {
		return nil, nil, fmt.Errorf("%w: checksum", errRecord)
	}
	rr := &recordReader{data: body}
	var tot layerTotals
	if magic, err := rr.next(len(recordMagic)); err != nil || string(magic) != recordMagic {
		return nil, nil, fmt.Errorf("%w: not a record", errRecord)
	}
	id, err := rr.str()
	if err != nil {
		return nil, nil, err
	}
	if id != diffID.String() {
		return nil, nil, fmt.Errorf("%w: a record of %s, not %s", errRecord, id, diffID)
	}
	const maxInt = 1<<63 - 1
	if tot.bytes, err = rr.varint(0, maxInt); err != nil {
		return nil, nil, err
	}
	if tot.files, err = rr.varint(0, maxInt); err != nil {
		return nil, nil, err
	}
	if tot.largest, err = rr.varint(0, maxInt); err != nil {
		return nil, nil, err
	}
	if tot.largestName, err = rr.str(); err != nil {
		return nil, nil, err
	}
	if err := check(tot); err != nil {
		return nil, nil, err
	}
	n, err := rr.varint(0, min(maxRecordEntries, tot.files))
	if err != nil {
		return nil, nil, err
	}
	es = make([]entry, 0, min(n, 1<<16))
	for range n {
		var e entry
		if e.name, err = rr.str(); err != nil {
			return nil, nil, err
		}
		if e.name == "" || !fs.ValidPath(e.name) {
			return nil, nil, fmt.Errorf("%w: entry %q", errRecord, e.name)
		}
		if e.kind, err = rr.ReadByte(); err != nil {
			return nil, nil, fmt.Errorf("%w: %v", errRecord, err)
		}
		mode, err := rr.varint(0, 1<<32-1)
		if err != nil {
			return nil, nil, err
		}
		e.mode = fs.FileMode(mode)
		if e.size, err = rr.varint(0, tot.largest); err != nil {
			return nil, nil, err
		}
		mtime, err := rr.varint(-maxInt, maxInt)
		if err != nil {
			return nil, nil, err
		}
		e.mtime = time.Unix(0, mtime)
		if e.link, err = rr.str(); err != nil {
			return nil, nil, err
		}
		kept, err := rr.ReadByte()
		if err != nil || kept > 2 {
			return nil, nil, fmt.Errorf("%w: kept flag", errRecord)
		}
		if kept > 0 && e.kind != tar.TypeReg {
			return nil, nil, fmt.Errorf("%w: content kept for %s", errRecord, e.name)
		}
		switch kept {
		case 1:
			e.body = content{kept: true, size: e.size}
		case 2:
			// Dropped: what the memoized extractors found nothing in.
			none, err := rr.ReadByte()
			if err != nil || none == 0 || memoSet(none)&^memoAll != 0 {
				return nil, nil, fmt.Errorf("%w: dropped content of %s", errRecord, e.name)
			}
			e.body = content{kept: true, size: e.size, dropped: &dropped{none: memoSet(none)}}
		}
		es = append(es, e)
	}
	if err := rr.contents(es); err != nil {
		return nil, nil, err
	}
	nx, err := rr.varint(0, n)
	if err != nil {
		return nil, nil, err
	}
	extra = make([]entry, 0, min(nx, 1<<10))
	for range nx {
		e := entry{kind: tar.TypeReg}
		if e.name, err = rr.str(); err != nil {
			return nil, nil, err
		}
		if e.name == "" || !fs.ValidPath(e.name) {
			return nil, nil, fmt.Errorf("%w: extra %q", errRecord, e.name)
		}
		if e.size, err = rr.varint(0, tot.largest); err != nil {
			return nil, nil, err
		}
		e.body = content{kept: true, size: e.size}
		extra = append(extra, e)
	}
	if err := rr.contents(extra); err != nil {
		return nil, nil, err
	}
	if rr.off != len(rr.data) {
		return nil, nil, fmt.Errorf("%w: trailing bytes", errRecord)
	}
	return es, extra, nil
}
