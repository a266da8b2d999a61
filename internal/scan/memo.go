package scan

// What the layer cache remembers of extraction.
//
// Most of what a rebuilt image's scan would spend on its cached base
// layers goes to the executable extractors: the Go-binary and Rust
// (cargo-auditable) extractors read every executable of a distribution,
// and find nothing in nearly all of them. What they find in a file is a
// function of its bytes alone: both parse the content and name the file
// only as the packages' location, and finding nothing names nothing. So a
// scan notes, for each file the walk gave them, whether they found
// nothing (node.none), and the layer's record keeps that instead of the
// file's bytes (content.dropped) when every extractor that reads the file
// under its own name is one of them and found nothing. A later scan that
// takes the layer from the cache answers those extractors from the note,
// without bytes. Anything else that would read such a file (another
// extractor, through a link or because a lower layer's folder link moved
// it) makes the scan read the layer again for it (linkedTargets), as it
// does for a link's target no extractor wanted: exact, only slower.

import (
	"archive/tar"
	"context"
	"io"
	"path"
	"slices"

	"github.com/google/osv-scalibr/extractor/filesystem"
	"github.com/google/osv-scalibr/extractor/filesystem/language/golang/gobinary"
	"github.com/google/osv-scalibr/extractor/filesystem/language/rust/cargoauditable"
	"github.com/google/osv-scalibr/inventory"
)

// memoSet is a set of memoExtractors, one bit each.
type memoSet uint8

// memoExtractors are the extractors whose empty result depends on a
// file's bytes only. The order is part of the record format.
var memoExtractors = []string{gobinary.Name, cargoauditable.Name}

// memoBit is name's bit, 0 for an extractor that is not memoized.
func memoBit(name string) memoSet {
	if i := slices.Index(memoExtractors, name); i >= 0 {
		return 1 << i
	}
	return 0
}

// memoAll is every memoized extractor.
var memoAll = memoSet(1<<len(memoExtractors) - 1)

// extractMemo runs e on in, unless the file is known to give e nothing,
// and notes when it gives e nothing. Only files the walk opens from the
// tree (a *file) are noted: attribution's runs on older versions of a
// file read another content under the same name.
func extractMemo(ctx context.Context, e filesystem.Extractor, in *filesystem.ScanInput) (inventory.Inventory, error) {
	bit := memoBit(e.Name())
	f, _ := in.Reader.(*file)
	if bit == 0 || f == nil || f.n.kind != tar.TypeReg {
		return e.Extract(ctx, in)
	}
	f.t.noneMu.Lock()
	none := f.n.none
	f.t.noneMu.Unlock()
	if none&bit != 0 {
		return inventory.Inventory{}, nil
	}
	// The file's headers answer every memoized extractor at once: the
	// other's walk then finds its answer noted.
	if known := certainlyNone(f); known != 0 {
		f.t.noneMu.Lock()
		f.n.none |= known
		f.t.noneMu.Unlock()
		if known&bit != 0 {
			return inventory.Inventory{}, nil
		}
	}
	inv, err := e.Extract(ctx, in)
	if err == nil && inv.IsEmpty() {
		f.t.noneMu.Lock()
		f.n.none |= bit
		f.t.noneMu.Unlock()
	}
	return inv, err
}

// certainlyNone gives the memoized extractors that would find nothing in
// f, told from its ELF headers (elfcheck.go).
func certainlyNone(f io.ReaderAt) memoSet {
	h, ok := readELFHeaders(f)
	if !ok {
		return 0
	}
	var none memoSet
	if h.noGoBuildInfo(f) {
		none |= memoBit(gobinary.Name)
	}
	if h.noRustDeps() {
		none |= memoBit(cargoauditable.Name)
	}
	return none
}

// needsContent tells whether an extractor reads name (whose file is info)
// and does not know its result from none: the file's bytes are needed.
func (w *wanted) needsContent(name string, info fileInfo, none memoSet) bool {
	if slices.Contains(knownDatabases, name) {
		return true
	}
	api := headerAPI{path: name, info: info}
	for _, e := range w.extractors {
		if e.companion != nil && e.companion.companion(name) {
			return true
		}
		if e.fromDirs || !e.FileRequired(api) {
			continue
		}
		if e.memo == 0 || none&e.memo == 0 {
			return true
		}
	}
	return false
}

// contentID names a kept content within one scan.
type contentID struct {
	data *byte
	at   inPlace // nil: the content file
	off  int64
	size int64
}

func idOf(c content) (contentID, bool) {
	switch {
	case !c.kept || c.dropped != nil || c.size == 0:
		return contentID{}, false
	case c.data != nil:
		return contentID{data: &c.data[0], size: c.size}, true
	}
	return contentID{at: c.at, off: c.off, size: c.size}, true
}

// nothingFound collects, by content, what the walk found nothing in.
func (t *treeFS) nothingFound() map[contentID]memoSet {
	out := map[contentID]memoSet{}
	var visit func(n *node)
	visit = func(n *node) {
		for _, k := range n.kids {
			switch {
			case k.kind == tar.TypeDir:
				visit(k)
			case k.kind == tar.TypeReg && k.none != 0:
				if id, ok := idOf(k.body); ok {
					out[id] |= k.none
				}
			}
		}
	}
	visit(t.root)
	return out
}

// dropContent returns e as a record keeps it: without its bytes when
// found says every extractor that reads it under its own name found
// nothing in it.
func dropContent(e entry, w *wanted, found map[contentID]memoSet) entry {
	if e.kind != tar.TypeReg || e.body.dropped != nil {
		return e
	}
	id, ok := idOf(e.body)
	if !ok || found[id] == 0 {
		return e
	}
	none := found[id]
	n := &node{name: e.name, kind: e.kind, mode: e.mode, size: e.size, mtime: e.mtime}
	if w.needsContent(e.name, fileInfo{n: n, name: path.Base(e.name)}, none) {
		return e
	}
	e.body = content{kept: true, size: e.size, dropped: &dropped{none: none}}
	return e
}
