package scan

import (
	"archive/tar"
	"errors"
	"io"
	"io/fs"
	"path"
	"slices"
	"strings"
	"sync"
	"time"
)

// maxSymlinkDepth bounds the links followed to resolve one path.
const maxSymlinkDepth = 8

// node is one file of the merged tree.
type node struct {
	name  string // base name
	kind  byte   // tar.TypeDir, tar.TypeSymlink, tar.TypeReg, kindOther
	mode  fs.FileMode
	size  int64
	mtime time.Time
	link  string
	layer int // the layer that last wrote it
	body  content
	kids  map[string]*node
	// none are the memoized extractors known to find nothing in body:
	// from the record it came from, or seen in this scan's walk.
	none memoSet
}

// version is one layer's content of a regular file.
type version struct {
	layer int
	body  content
}

// treeFS is the merged image: a read-only scalibr filesystem whose
// symlinks resolve inside the image root.
type treeFS struct {
	root    *node
	layers  []*limitedLayer
	blob    *blob
	history map[string][]version // each kept version of a regular file, lowest layer first
	// save writes the layer cache's records of the layers this scan read;
	// nil without a cache.
	save func()
	// noneMu guards the nodes' memo notes while the executable
	// extractors' walks write them (see extract).
	noneMu sync.Mutex
}

func newTree(layers []*limitedLayer) *treeFS {
	return &treeFS{root: &node{kind: tar.TypeDir, mode: fs.ModeDir | 0o755, kids: map[string]*node{}}, layers: layers, history: map[string][]version{}}
}

// lookupNoFollow finds name's node without following any symlink.
func (t *treeFS) lookupNoFollow(name string) *node {
	n := t.root
	if name == "" || name == "." {
		return n
	}
	for _, part := range strings.Split(name, "/") {
		if n.kind != tar.TypeDir {
			return nil
		}
		n = n.kids[part]
		if n == nil {
			return nil
		}
	}
	return n
}

// parentDir returns name's folder and its path free of links, made (and
// replacing a non-folder) as a layer that writes below it would.
func (t *treeFS) parentDir(name string, layer int) (*node, string) {
	n := t.root
	dir := path.Dir(name)
	if dir == "." {
		return n, ""
	}
	parts := strings.Split(dir, "/")
	real := ""
	for _, part := range parts {
		k := n.kids[part]
		if k != nil && k.kind == tar.TypeSymlink {
			// A folder reached through a link inside the root, as a
			// runtime that applies the layer would write through it.
			if p, err := t.resolve(path.Join(real, part), true); err == nil {
				if d := t.lookupNoFollow(p); d != nil && d.kind == tar.TypeDir {
					n, real = d, p
					continue
				}
			}
		}
		if k == nil || k.kind != tar.TypeDir {
			k = &node{name: part, kind: tar.TypeDir, mode: fs.ModeDir | 0o755, layer: layer, kids: map[string]*node{}}
			n.kids[part] = k
		}
		n, real = k, path.Join(real, part)
	}
	return n, real
}

// apply merges one layer: opaque folders and whiteouts first, as they
// hide only what lower layers wrote, then its entries.
func (t *treeFS) apply(layer int, es []entry) {
	for _, e := range es {
		if e.kind == kindOpaque {
			if n := t.lookupNoFollow(e.name); n != nil && n.kind == tar.TypeDir {
				n.kids = map[string]*node{}
			}
		}
	}
	for _, e := range es {
		if e.kind == kindWhiteout {
			if p := t.lookupNoFollow(path.Dir(e.name)); p != nil && p.kind == tar.TypeDir {
				delete(p.kids, path.Base(e.name))
			}
		}
	}
	for _, e := range es {
		if e.kind == kindOpaque || e.kind == kindWhiteout {
			continue
		}
		p, dir := t.parentDir(e.name, layer)
		base := path.Base(e.name)
		real := path.Join(dir, base)
		old := p.kids[base]
		if e.kind == tar.TypeDir && old != nil && old.kind == tar.TypeDir {
			old.mode, old.mtime, old.layer = e.mode, e.mtime, layer
			continue
		}
		n := &node{name: base, kind: e.kind, mode: e.mode, size: e.size, mtime: e.mtime, link: e.link, layer: layer, body: e.body}
		if e.body.dropped != nil {
			n.none = e.body.dropped.none
		}
		if e.kind == tar.TypeDir {
			n.kids = map[string]*node{}
		}
		p.kids[base] = n
		if e.kind == tar.TypeReg && e.body.kept && !slices.ContainsFunc(t.history[real], func(v version) bool { return sameContent(v.body, e.body) }) {
			// A layer that repeats a blob (see unpack) brings the very
			// content an earlier one did: the lowest layer with it is the
			// one attribute wants, and extracting it again would say nothing new.
			t.history[real] = append(t.history[real], version{layer: layer, body: e.body})
		}
	}
}

// sameContent tells whether a and b are one kept content: the same bytes
// in memory, or the same range of the content file or of a layer read in
// place.
func sameContent(a, b content) bool {
	if a.dropped != nil || b.dropped != nil {
		return a.dropped == b.dropped
	}
	switch {
	case a.size != b.size || a.off != b.off || a.at != b.at || (a.data == nil) != (b.data == nil):
		return false
	case len(a.data) == 0:
		return true
	}
	return &a.data[0] == &b.data[0]
}

// fill gives content to files of layer read again for it.
func (t *treeFS) fill(layer int, es []entry) {
	for _, e := range es {
		if n := t.lookupNoFollow(e.name); n != nil && n.kind == tar.TypeReg && n.layer == layer && (!n.body.kept || n.body.dropped != nil) {
			n.body = e.body
		}
	}
}

// linkedTargets finds the symlinks the walk reads as package files or
// known databases whose final target was not kept, by the layer that
// wrote each target; and the files a layer cache record dropped (see
// nothingFound) that an extractor whose result is not known will read,
// under their own name or through a link.
func (t *treeFS) linkedTargets(w *wanted) map[int]map[string]bool {
	need := map[int]map[string]bool{}
	add := func(target string) {
		n := t.lookupNoFollow(target)
		if n == nil || n.kind != tar.TypeReg || (n.body.kept && n.body.dropped == nil) {
			return
		}
		if need[n.layer] == nil {
			need[n.layer] = map[string]bool{}
		}
		need[n.layer][target] = true
	}
	for _, p := range knownDatabases {
		if target, err := t.resolve(p, true); err == nil {
			add(target)
		}
	}
	var visit func(dir string, n *node)
	visit = func(dir string, n *node) {
		for name, k := range n.kids {
			p := path.Join(dir, name)
			switch k.kind {
			case tar.TypeDir:
				visit(p, k)
			case tar.TypeReg:
				if k.body.dropped != nil && w.needsContent(p, fileInfo{n: k, name: name}, k.none) {
					add(p)
				}
			case tar.TypeSymlink:
				target, err := t.resolve(p, true)
				if err != nil {
					continue
				}
				tn := t.lookupNoFollow(target)
				if tn == nil || tn.kind != tar.TypeReg {
					continue
				}
				info := fileInfo{n: tn, name: path.Base(p)}
				if (!tn.body.kept && w.file(p, info)) || (tn.body.dropped != nil && w.needsContent(p, info, tn.none)) {
					add(target)
				}
			}
		}
	}
	visit("", t.root)
	return need
}

var errLoop = errors.New("too many levels of symbolic links")

// resolve returns the path, free of symlinks, that name leads to inside
// the root; follow says whether a symlink at the end is followed too.
// Absolute targets start at the image root, and ".." stops there.
func (t *treeFS) resolve(name string, follow bool) (string, error) {
	if name == "." {
		return "", nil
	}
	todo := strings.Split(name, "/")
	var done []string
	n := t.root
	links := 0
	for len(todo) > 0 {
		part := todo[0]
		todo = todo[1:]
		switch part {
		case "", ".":
			continue
		case "..":
			if len(done) > 0 {
				done = done[:len(done)-1]
			}
			n = t.lookupNoFollow(strings.Join(done, "/"))
			continue
		}
		if n == nil || n.kind != tar.TypeDir {
			return "", fs.ErrNotExist
		}
		k := n.kids[part]
		if k == nil {
			return "", fs.ErrNotExist
		}
		if k.kind == tar.TypeSymlink && (follow || len(todo) > 0) {
			links++
			if links > maxSymlinkDepth {
				return "", errLoop
			}
			target := k.link
			if strings.HasPrefix(target, "/") {
				done = done[:0]
				n = t.root
			}
			todo = append(strings.Split(target, "/"), todo...)
			continue
		}
		done = append(done, part)
		n = k
	}
	return strings.Join(done, "/"), nil
}

func (t *treeFS) node(op, name string, follow bool) (*node, error) {
	if !fs.ValidPath(name) {
		return nil, &fs.PathError{Op: op, Path: name, Err: fs.ErrInvalid}
	}
	p, err := t.resolve(name, follow)
	if err != nil {
		return nil, &fs.PathError{Op: op, Path: name, Err: err}
	}
	n := t.lookupNoFollow(p)
	if n == nil {
		return nil, &fs.PathError{Op: op, Path: name, Err: fs.ErrNotExist}
	}
	return n, nil
}

// Open implements fs.FS.
func (t *treeFS) Open(name string) (fs.File, error) {
	n, err := t.node("open", name, true)
	if err != nil {
		return nil, err
	}
	f := &file{t: t, n: n, name: name}
	if n.kind == tar.TypeReg {
		if !n.body.kept {
			if n.size > 0 {
				return nil, &fs.PathError{Op: "open", Path: name, Err: errNotKept}
			}
		}
		f.r = t.section(n.body)
	}
	return f, nil
}

// Stat implements fs.StatFS.
func (t *treeFS) Stat(name string) (fs.FileInfo, error) {
	n, err := t.node("stat", name, true)
	if err != nil {
		return nil, err
	}
	return fileInfo{n: n, name: path.Base(name)}, nil
}

// ReadDir implements fs.ReadDirFS.
func (t *treeFS) ReadDir(name string) ([]fs.DirEntry, error) {
	n, err := t.node("readdir", name, true)
	if err != nil {
		return nil, err
	}
	if n.kind != tar.TypeDir {
		return nil, &fs.PathError{Op: "readdir", Path: name, Err: errors.New("not a directory")}
	}
	return n.entries(), nil
}

func (n *node) entries() []fs.DirEntry {
	out := make([]fs.DirEntry, 0, len(n.kids))
	for name, k := range n.kids {
		out = append(out, fs.FileInfoToDirEntry(fileInfo{n: k, name: name}))
	}
	slices.SortFunc(out, func(a, b fs.DirEntry) int { return strings.Compare(a.Name(), b.Name()) })
	return out
}

type fileInfo struct {
	n    *node
	name string
}

func (fi fileInfo) Name() string { return fi.name }
func (fi fileInfo) Size() int64 {
	if fi.n.kind == tar.TypeReg {
		return fi.n.size
	}
	return 0
}
func (fi fileInfo) Mode() fs.FileMode  { return fi.n.mode }
func (fi fileInfo) ModTime() time.Time { return fi.n.mtime }
func (fi fileInfo) IsDir() bool        { return fi.n.kind == tar.TypeDir }
func (fi fileInfo) Sys() any           { return nil }

// file is an open file or folder of the tree.
type file struct {
	t    *treeFS
	n    *node
	name string
	r    *io.SectionReader
	dir  []fs.DirEntry
	read bool
}

func (f *file) Stat() (fs.FileInfo, error) { return fileInfo{n: f.n, name: path.Base(f.name)}, nil }
func (f *file) Close() error               { return nil }

func (f *file) Read(p []byte) (int, error) {
	if f.r == nil {
		return 0, &fs.PathError{Op: "read", Path: f.name, Err: errors.New("is a directory")}
	}
	return f.r.Read(p)
}

func (f *file) ReadAt(p []byte, off int64) (int, error) {
	if f.r == nil {
		return 0, &fs.PathError{Op: "read", Path: f.name, Err: errors.New("is a directory")}
	}
	return f.r.ReadAt(p, off)
}

func (f *file) Seek(off int64, whence int) (int64, error) {
	if f.r == nil {
		return 0, &fs.PathError{Op: "seek", Path: f.name, Err: errors.New("is a directory")}
	}
	return f.r.Seek(off, whence)
}

// ReadDir implements fs.ReadDirFile.
func (f *file) ReadDir(n int) ([]fs.DirEntry, error) {
	if f.n.kind != tar.TypeDir {
		return nil, &fs.PathError{Op: "readdir", Path: f.name, Err: errors.New("not a directory")}
	}
	if !f.read {
		f.dir, f.read = f.n.entries(), true
	}
	if n <= 0 {
		out := f.dir
		f.dir = nil
		return out, nil
	}
	if len(f.dir) == 0 {
		return nil, io.EOF
	}
	n = min(n, len(f.dir))
	out := f.dir[:n]
	f.dir = f.dir[n:]
	return out, nil
}
