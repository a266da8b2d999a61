package image

import (
	"archive/tar"
	"bufio"
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"strings"
	"sync"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/partial"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// A docker save archive is read here rather than by go-containerregistry's
// tarball package: tarball makes up a registry manifest for the image,
// and for the uncompressed layer.tar files that `docker save` (and the
// Docker Engine's image export) writes, that manifest needs each layer's
// compressed digest, which tarball gets by gzip-compressing the whole
// layer: 1.9 s for a 179 MB layer, more than the scan itself. A scan needs
// the DiffIDs, which the config lists; the archive's image is known by its
// config digest (the image ID), as Docker and trivy know it. So the
// archive is indexed once (a pass over its tar headers, seeking past the
// content), and each layer is a section of the archive file, hashed only
// if its digest is asked for.

// Limits of what an archive's index holds: real archives have a handful of
// entries per layer and a manifest of a few kilobytes.
const (
	maxArchiveEntries    = 1 << 16
	maxArchiveJSONBytes  = 8 << 20 // manifest.json, or the image config
	maxArchiveLinkFollow = 8
)

// archiveEntry is one file of a docker save archive: its content's place,
// or the link it is.
type archiveEntry struct {
	off, size int64
	link      string // resolved from the archive root; "" for a file
}

// dockerArchive is an opened docker save archive and the index of its
// files.
type dockerArchive struct {
	path    string
	f       *os.File
	stat    os.FileInfo // when indexed (see unchanged)
	entries map[string]archiveEntry
	data    []byte // the archive mapped, or nil (see sectionCloser.Mapped)
}

// indexArchive reads the tar headers of the archive at path, seeking past
// the content of each file.
func indexArchive(path string) (*dockerArchive, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	a := &dockerArchive{path: path, f: f, entries: map[string]archiveEntry{}}
	if err := a.index(); err != nil {
		f.Close()
		return nil, err
	}
	return a, nil
}

func (a *dockerArchive) index() error {
	fi, err := a.f.Stat()
	if err != nil {
		return err
	}
	if !fi.Mode().IsRegular() {
		return fmt.Errorf("%w: not a file", ErrBadReference)
	}
	a.stat = fi
	// tar.Reader seeks past content when its reader can seek, so the
	// pass reads only the headers, whatever the layers weigh.
	tr := tar.NewReader(a.f)
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return fmt.Errorf("%w: not a docker save archive: %v", ErrBadReference, err)
		}
		if len(a.entries) >= maxArchiveEntries {
			return fmt.Errorf("%w: more than %d entries: not a docker save archive", ErrBadReference, maxArchiveEntries)
		}
		name := cleanArchiveName(h.Name)
		switch h.Typeflag {
		case tar.TypeReg:
			off, err := a.f.Seek(0, io.SeekCurrent)
			if err != nil {
				return err
			}
			// A cut archive is refused here, not halfway through a scan.
			if h.Size < 0 || off+h.Size > fi.Size() {
				return fmt.Errorf("%w: %s ends after the archive does (cut short?)", ErrBadReference, h.Name)
			}
			a.entries[name] = archiveEntry{off: off, size: h.Size}
		case tar.TypeSymlink:
			// docker save links a layer that two images share.
			target := h.Linkname
			if !strings.HasPrefix(target, "/") {
				target = path.Join(path.Dir(name), target)
			}
			a.entries[name] = archiveEntry{link: cleanArchiveName(target)}
		case tar.TypeLink:
			a.entries[name] = archiveEntry{link: cleanArchiveName(h.Linkname)}
		}
	}
	return nil
}

// cleanArchiveName names a file from the archive's root. The names are
// keys of the index only: nothing is written anywhere, so a name that
// climbs out stays at the root.
func cleanArchiveName(n string) string {
	return strings.TrimPrefix(path.Clean("/"+n), "/")
}

// lookup finds a file, following links inside the archive.
func (a *dockerArchive) lookup(name string) (archiveEntry, error) {
	name = cleanArchiveName(name)
	for range maxArchiveLinkFollow {
		e, ok := a.entries[name]
		if !ok {
			return archiveEntry{}, fmt.Errorf("%w: %s is not in the archive", ErrBadReference, name)
		}
		if e.link == "" {
			return e, nil
		}
		name = e.link
	}
	return archiveEntry{}, fmt.Errorf("%w: %s: too many links", ErrBadReference, name)
}

func (a *dockerArchive) section(e archiveEntry) *io.SectionReader {
	return io.NewSectionReader(a.f, e.off, e.size)
}

// ErrChanged reports an archive written to while it was read.
var ErrChanged = errors.New("the archive changed while it was read")

// unchanged fails if the archive may have been written to since it was
// indexed: its size, modification or change time moved, or its name is
// another file now that the file is open. Any write moves the change
// time, which no one can set back.
func (a *dockerArchive) unchanged() error {
	fi, err := a.f.Stat()
	if err != nil {
		return fmt.Errorf("%s: %w", a.path, err)
	}
	if !os.SameFile(fi, a.stat) || fi.Size() != a.stat.Size() || !fi.ModTime().Equal(a.stat.ModTime()) ||
		!changeTime(fi).Equal(changeTime(a.stat)) {
		return fmt.Errorf("%s: %w", a.path, ErrChanged)
	}
	return nil
}

// readSmall reads a JSON file of the archive, refusing large ones.
func (a *dockerArchive) readSmall(name string) ([]byte, error) {
	e, err := a.lookup(name)
	if err != nil {
		return nil, err
	}
	if e.size > maxArchiveJSONBytes {
		return nil, fmt.Errorf("%w: %s is larger than %d bytes", ErrBadReference, name, maxArchiveJSONBytes)
	}
	data := make([]byte, e.size)
	if _, err := a.f.ReadAt(data, e.off); err != nil {
		return nil, fmt.Errorf("read %s: %w", name, err)
	}
	return data, nil
}

// archiveManifest is docker save's manifest.json.
type archiveManifest []struct {
	Config   string
	RepoTags []string
	Layers   []string
}

// openDockerArchive opens the one image of a docker save archive.
func openDockerArchive(path string) (*Image, error) {
	a, err := indexArchive(path)
	if err != nil {
		return nil, err
	}
	img, err := a.image()
	if err != nil {
		return nil, errors.Join(err, a.f.Close())
	}
	a.data = mapArchive(a.f, a.stat.Size())
	img.cleanup = func() error {
		unmapArchive(a.data)
		return a.f.Close()
	}
	return img, nil
}

func (a *dockerArchive) image() (*Image, error) {
	raw, err := a.readSmall("manifest.json")
	if err != nil {
		return nil, err
	}
	var m archiveManifest
	if err := json.Unmarshal(raw, &m); err != nil {
		return nil, fmt.Errorf("%w: manifest.json: %v", ErrBadReference, err)
	}
	// Without a tag to choose by, an archive must hold one image.
	if len(m) != 1 {
		return nil, fmt.Errorf("%w: the archive holds %d images, not one", ErrBadReference, len(m))
	}
	d := m[0]
	rawConfig, err := a.readSmall(d.Config)
	if err != nil {
		return nil, err
	}
	cf, err := v1.ParseConfigFile(bytes.NewReader(rawConfig))
	if err != nil {
		return nil, fmt.Errorf("%w: config %s: %v", ErrBadReference, d.Config, err)
	}
	if len(cf.RootFS.DiffIDs) != len(d.Layers) {
		return nil, fmt.Errorf("%w: %d layers but %d DiffIDs in the config", ErrBadReference, len(d.Layers), len(cf.RootFS.DiffIDs))
	}
	sum := sha256.Sum256(rawConfig)
	ai := &archiveImage{rawConfig: rawConfig, config: cf, configName: v1.Hash{Algorithm: "sha256", Hex: hex.EncodeToString(sum[:])}}
	for i, name := range d.Layers {
		e, err := a.lookup(name)
		if err != nil {
			return nil, err
		}
		l := &archiveLayer{sr: a.section(e), diffID: cf.RootFS.DiffIDs[i], archive: a}
		if l.gzip, err = isGzip(l.sr); err != nil {
			return nil, fmt.Errorf("layer %s: %w", name, err)
		}
		// go-containerregistry's layer of a stored blob (its Uncompressed
		// inflates what is compressed, and leaves a tar as it is) is what
		// the scanner knows how to read fast.
		v1l, err := partial.CompressedToLayer(l)
		if err != nil {
			return nil, err
		}
		ai.layers = append(ai.layers, v1l)
	}
	img := &Image{Image: ai, archive: true}
	for _, t := range d.RepoTags {
		tag, err := name.NewTag(t)
		if err != nil {
			continue
		}
		img.Repository = tag.Context().Name()
		img.Tags = append(img.Tags, tag.TagStr())
	}
	return img, nil
}

func isGzip(r io.ReaderAt) (bool, error) {
	var magic [2]byte
	n, err := r.ReadAt(magic[:], 0)
	if n < 2 {
		if errors.Is(err, io.EOF) {
			return false, nil // an empty layer: tar reading will say
		}
		return false, err
	}
	return magic[0] == 0x1f && magic[1] == 0x8b, nil
}

// archiveLayer is one layer blob of a docker save archive: a tar, or the
// gzip of one.
type archiveLayer struct {
	sr      *io.SectionReader
	diffID  v1.Hash
	gzip    bool
	archive *dockerArchive

	once   sync.Once
	digest v1.Hash
	err    error
}

// Digest is the sha256 of the blob as stored, computed when first asked:
// the DiffID itself for a tar (the config vouches for it, and the scanner
// checks the content against it), the blob's hash for a gzip.
func (l *archiveLayer) Digest() (v1.Hash, error) {
	if !l.gzip {
		return l.diffID, nil
	}
	l.once.Do(func() {
		l.digest, _, l.err = v1.SHA256(bufio.NewReaderSize(io.NewSectionReader(l.sr, 0, l.sr.Size()), 1<<20))
	})
	return l.digest, l.err
}

func (l *archiveLayer) DiffID() (v1.Hash, error) { return l.diffID, nil }

// Compressed returns the blob as stored (a tar is its own blob, as in an
// OCI layout's uncompressed layers).
func (l *archiveLayer) Compressed() (io.ReadCloser, error) {
	return &sectionCloser{SectionReader: io.NewSectionReader(l.sr, 0, l.sr.Size()), archive: l.archive, layer: l.sr}, nil
}

// sectionCloser is a section of the archive, which a reader may seek in,
// or read at offsets: the scanner reads the files it needs of a tar layer
// where they are, rather than copying them out as it reads the layer.
type sectionCloser struct {
	*io.SectionReader
	archive *dockerArchive
	layer   *io.SectionReader // the whole section, in the archive
}

func (*sectionCloser) Close() error { return nil }

// Mapped returns the section's bytes in the archive's mapping, or nil
// when the archive is not mapped: a reader of the whole section can take
// them as they are instead of copying them out with reads, which on a
// layer of a docker save archive cost as much as hashing it. The file
// can be cut short while they are read: the pages past its new end then
// fault, and a reader of them must read with debug.SetPanicOnFault and
// recover (as Go's own cmd/go reads its mapped index).
func (s *sectionCloser) Mapped() []byte {
	if s.archive.data == nil || s.layer == nil {
		return nil
	}
	_, off, n := s.layer.Outer()
	if off < 0 || n < 0 || off+n > int64(len(s.archive.data)) {
		return nil
	}
	return s.archive.data[off : off+n : off+n]
}

// Unchanged fails (ErrChanged) if the archive may have been written to
// since it was opened. A reader that reads the section again later, after
// it checked the layer's DiffID on a first read, asks it before it trusts
// what it read: a report, or a layer cache record, must be of the bytes
// whose DiffID was checked.
func (s *sectionCloser) Unchanged() error { return s.archive.unchanged() }

func (l *archiveLayer) Size() (int64, error) { return l.sr.Size(), nil }

func (l *archiveLayer) MediaType() (types.MediaType, error) {
	if l.gzip {
		return types.DockerLayer, nil
	}
	return types.DockerUncompressedLayer, nil
}

// archiveImage is the image of a docker save archive. Its manifest is made
// up from the config and the layers as stored, only when asked for.
type archiveImage struct {
	rawConfig  []byte
	config     *v1.ConfigFile
	configName v1.Hash
	layers     []v1.Layer

	once     sync.Once
	manifest *v1.Manifest
	raw      []byte
	err      error
}

var _ v1.Image = (*archiveImage)(nil)

func (i *archiveImage) Layers() ([]v1.Layer, error)               { return i.layers, nil }
func (i *archiveImage) MediaType() (types.MediaType, error)       { return types.DockerManifestSchema2, nil }
func (i *archiveImage) ConfigName() (v1.Hash, error)              { return i.configName, nil }
func (i *archiveImage) ConfigFile() (*v1.ConfigFile, error)       { return i.config.DeepCopy(), nil }
func (i *archiveImage) RawConfigFile() ([]byte, error)            { return i.rawConfig, nil }
func (i *archiveImage) Manifest() (*v1.Manifest, error)           { i.makeManifest(); return i.manifest, i.err }
func (i *archiveImage) RawManifest() ([]byte, error)              { i.makeManifest(); return i.raw, i.err }
func (i *archiveImage) LayerByDiffID(h v1.Hash) (v1.Layer, error) { return i.find(h, v1.Layer.DiffID) }
func (i *archiveImage) LayerByDigest(h v1.Hash) (v1.Layer, error) {
	if h == i.configName {
		return partial.ConfigLayer(i)
	}
	return i.find(h, v1.Layer.Digest)
}

func (i *archiveImage) Size() (int64, error) {
	raw, err := i.RawManifest()
	return int64(len(raw)), err
}

func (i *archiveImage) Digest() (v1.Hash, error) {
	raw, err := i.RawManifest()
	if err != nil {
		return v1.Hash{}, err
	}
	h, _, err := v1.SHA256(bytes.NewReader(raw))
	return h, err
}

func (i *archiveImage) find(h v1.Hash, key func(v1.Layer) (v1.Hash, error)) (v1.Layer, error) {
	for _, l := range i.layers {
		got, err := key(l)
		if err != nil {
			return nil, err
		}
		if got == h {
			return l, nil
		}
	}
	return nil, fmt.Errorf("no layer %s in the archive", h)
}

func (i *archiveImage) makeManifest() {
	i.once.Do(func() {
		m := &v1.Manifest{
			SchemaVersion: 2,
			MediaType:     types.DockerManifestSchema2,
			Config:        v1.Descriptor{MediaType: types.DockerConfigJSON, Size: int64(len(i.rawConfig)), Digest: i.configName},
		}
		for _, l := range i.layers {
			d, err := partial.Descriptor(l)
			if err != nil {
				i.err = err
				return
			}
			m.Layers = append(m.Layers, *d)
		}
		i.manifest = m
		i.raw, i.err = json.Marshal(m)
	})
}
