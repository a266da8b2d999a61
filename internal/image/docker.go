package image

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"sync"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/partial"
	"github.com/google/go-containerregistry/pkg/v1/types"
	"github.com/moby/moby/client"

	"github.com/scangate/scangate/internal/layercache"
)

// An image of the local Docker Engine is read from its export (the
// engine's docker save), which the engine makes by tarring every layer
// again: for a 179 MB image the export alone takes longer than the rest
// of a scan. So, with a cache (Options.Cache), what a scan needs of the
// image besides its layers' content (its config, and the manifest made
// up from the export) is kept under the image's ID after an export, and
// the next open of that image takes them from there: its layers are
// exported only if one is read, which a scan whose layer cache holds
// every layer never does. trivy does the same with its cache.
//
// The ID is the config's digest, so the config kept is checked against
// it; an engine whose IDs are not (the containerd image store's are a
// manifest's digest) is always exported. The export is asked for by ID,
// not by the name given, so that a tag moved meanwhile cannot swap the
// image.

// engineRecordFormat changes when what an engine record holds changes.
const engineRecordFormat = "scangate-engine-image-1"

// maxEngineRecord bounds an engine record: a config and a manifest.
const maxEngineRecord = 2*maxArchiveJSONBytes + 4096

// engineRecord is what is kept of an engine's image.
type engineRecord struct {
	Format   string `json:"format"`
	Config   []byte `json:"config"`
	Manifest []byte `json:"manifest"`
}

// engineKey is the cache key of an engine image's record.
func engineKey(id string) string {
	sum := sha256.Sum256([]byte(engineRecordFormat + "\x00" + id))
	return hex.EncodeToString(sum[:])
}

// openDocker opens an image of the local Docker Engine (DOCKER_HOST, else
// the default socket).
func openDocker(ctx context.Context, ref string, opts Options) (*Image, error) {
	cli, err := client.New(client.FromEnv)
	if err != nil {
		return nil, fmt.Errorf("docker: %w", err)
	}
	ins, err := cli.ImageInspect(ctx, ref)
	cli.Close()
	if err != nil {
		return nil, fmt.Errorf("docker: %w", err)
	}
	id := ins.ID
	if _, err := v1.NewHash(id); err != nil {
		return nil, fmt.Errorf("docker: the engine gave %s the ID %q: %w", ref, id, err)
	}
	diffIDs := ins.RootFS.Layers
	ex := &engineExport{ctx: ctx, id: id, diffIDs: diffIDs, opts: opts}
	img := cachedEngineImage(opts.Cache, id, diffIDs, ex)
	if img == nil {
		exported, err := ex.get()
		if err != nil {
			return nil, errors.Join(err, ex.close())
		}
		img = &Image{Image: exported.Image, archive: true}
		keepEngineImage(opts.Cache, id, exported.Image)
	}
	img.cleanup = ex.close
	img.Repository, img.Tags = engineTags(ref, ins.RepoTags)
	return img, nil
}

// engineTags gives the repository and tag ref names, if it names one of
// the image's tags, as docker save of ref would list it.
func engineTags(ref string, repoTags []string) (string, []string) {
	want, err := name.NewTag(ref)
	if err != nil {
		return "", nil
	}
	for _, t := range repoTags {
		if tag, err := name.NewTag(t); err == nil && tag.Name() == want.Name() {
			return tag.Context().Name(), []string{tag.TagStr()}
		}
	}
	return "", nil
}

// engineExport is the engine's export of one image, into a temporary
// docker save archive, made once when first needed.
type engineExport struct {
	ctx     context.Context // Open's: the export belongs to the open image
	id      string
	diffIDs []string // as the engine listed them
	opts    Options

	once sync.Once
	img  *Image
	path string
	err  error
}

func (e *engineExport) get() (*Image, error) {
	e.once.Do(func() { e.img, e.err = e.export() })
	return e.img, e.err
}

func (e *engineExport) export() (*Image, error) {
	cli, err := client.New(client.FromEnv)
	if err != nil {
		return nil, fmt.Errorf("docker: %w", err)
	}
	defer cli.Close()
	rc, err := cli.ImageSave(e.ctx, []string{e.id})
	if err != nil {
		return nil, fmt.Errorf("docker: export %s: %w", e.id, err)
	}
	defer rc.Close()
	f, err := os.CreateTemp(e.opts.TempDir, "scangate-docker-*.tar")
	if err != nil {
		return nil, err
	}
	e.path = f.Name()
	max := e.opts.MaxArchiveBytes
	if max <= 0 {
		max = defaultMaxArchiveBytes
	}
	n, err := io.Copy(f, io.LimitReader(rc, max+1))
	err = errors.Join(err, f.Close())
	if err == nil && n > max {
		err = fmt.Errorf("docker: image %s is larger than %d bytes", e.id, max)
	}
	if err != nil {
		return nil, fmt.Errorf("docker: export %s: %w", e.id, err)
	}
	img, err := openDockerArchive(e.path)
	if err != nil {
		return nil, err
	}
	if err := e.check(img); err != nil {
		return nil, errors.Join(err, img.Close())
	}
	return img, nil
}

// check tells whether the export is of the image inspected: its config's
// digest is the ID, or, on an engine whose IDs name a manifest (the
// containerd image store's), its layers are those the engine listed.
func (e *engineExport) check(img *Image) error {
	cn, err := img.ConfigName()
	if err != nil {
		return err
	}
	if cn.String() == e.id {
		return nil
	}
	cf, err := img.ConfigFile()
	if err != nil {
		return err
	}
	if len(e.diffIDs) == 0 || !slices.Equal(hashStrings(cf.RootFS.DiffIDs), e.diffIDs) {
		return fmt.Errorf("docker: the export of %s holds the image %s, of other layers: %w", e.id, cn, ErrDigest)
	}
	return nil
}

// close removes the export, if it was made.
func (e *engineExport) close() error {
	var err error
	e.once.Do(func() { e.err = errors.New("docker: the image is closed") })
	if e.img != nil {
		err = e.img.Close()
	}
	if e.path != "" {
		err = errors.Join(err, os.Remove(e.path))
	}
	return err
}

// keepEngineImage records an exported image's config and manifest under
// its ID. Only an image of uncompressed layers, as the engine exports
// them, is kept: the record's manifest names each layer by its DiffID.
// Failing to keep it costs the next scan an export, nothing else.
func keepEngineImage(c *layercache.Cache, id string, img v1.Image) {
	if c == nil {
		return
	}
	rawConfig, err := img.RawConfigFile()
	if err != nil || sha256Of(rawConfig) != id {
		return
	}
	rawManifest, err := img.RawManifest()
	if err != nil {
		return
	}
	rec := engineRecord{Format: engineRecordFormat, Config: rawConfig, Manifest: rawManifest}
	if _, err := parseEngineRecord(id, nil, rec); err != nil {
		return // not one the next open would take
	}
	_ = c.Put(engineKey(id), func(w io.Writer) error { return json.NewEncoder(w).Encode(rec) })
}

// cachedEngineImage opens the image from its record, or returns nil when
// there is none that holds.
func cachedEngineImage(c *layercache.Cache, id string, diffIDs []string, ex *engineExport) *Image {
	if c == nil {
		return nil
	}
	f, err := c.Get(engineKey(id))
	if err != nil {
		return nil
	}
	data, err := io.ReadAll(io.LimitReader(f, maxEngineRecord+1))
	f.Close()
	if err != nil {
		return nil
	}
	ai, err := decodeEngineRecord(id, diffIDs, data)
	if err != nil {
		return nil
	}
	for i, l := range ai.manifest.Layers {
		el := &engineLayer{desc: l, diffID: ai.config.RootFS.DiffIDs[i], index: i, export: ex}
		v1l, err := partial.CompressedToLayer(el)
		if err != nil {
			return nil
		}
		ai.layers = append(ai.layers, v1l)
	}
	return &Image{Image: ai, archive: true}
}

// decodeEngineRecord reads an engine record, which must be of the image
// id and, if diffIDs are given (the engine's inspect lists them), of
// those layers. The layers are left to the caller.
func decodeEngineRecord(id string, diffIDs []string, data []byte) (*archiveImage, error) {
	if len(data) > maxEngineRecord {
		return nil, fmt.Errorf("engine record: larger than %d bytes", maxEngineRecord)
	}
	var rec engineRecord
	if err := json.Unmarshal(data, &rec); err != nil {
		return nil, fmt.Errorf("engine record: %w", err)
	}
	return parseEngineRecord(id, diffIDs, rec)
}

func parseEngineRecord(id string, diffIDs []string, rec engineRecord) (*archiveImage, error) {
	if rec.Format != engineRecordFormat {
		return nil, fmt.Errorf("engine record: format %q", rec.Format)
	}
	if len(rec.Config) > maxArchiveJSONBytes || len(rec.Manifest) > maxArchiveJSONBytes {
		return nil, errors.New("engine record: too large")
	}
	if got := sha256Of(rec.Config); got != id {
		return nil, fmt.Errorf("engine record: config is %s, not %s: %w", got, id, ErrDigest)
	}
	cf, err := v1.ParseConfigFile(bytes.NewReader(rec.Config))
	if err != nil {
		return nil, fmt.Errorf("engine record: config: %w", err)
	}
	m, err := v1.ParseManifest(bytes.NewReader(rec.Manifest))
	if err != nil {
		return nil, fmt.Errorf("engine record: manifest: %w", err)
	}
	if m.Config.Digest.String() != id || len(m.Layers) != len(cf.RootFS.DiffIDs) {
		return nil, errors.New("engine record: the manifest is not the config's")
	}
	if diffIDs != nil && !slices.Equal(diffIDs, hashStrings(cf.RootFS.DiffIDs)) {
		return nil, errors.New("engine record: the engine's layers are not the config's")
	}
	for i, l := range m.Layers {
		if l.MediaType != types.DockerUncompressedLayer || l.Digest != cf.RootFS.DiffIDs[i] || l.Size < 0 {
			return nil, fmt.Errorf("engine record: layer %d is not an uncompressed layer of its DiffID", i+1)
		}
	}
	ai := &archiveImage{rawConfig: rec.Config, config: cf, configName: m.Config.Digest, manifest: m, raw: rec.Manifest}
	ai.once.Do(func() {}) // the manifest is the record's
	return ai, nil
}

func hashStrings(hs []v1.Hash) []string {
	out := make([]string, len(hs))
	for i, h := range hs {
		out[i] = h.String()
	}
	return out
}

// engineLayer is a layer of an engine image opened from its record: what
// the manifest says of it is known, and its content comes from the export,
// made when a reader first reads.
type engineLayer struct {
	desc   v1.Descriptor
	diffID v1.Hash
	index  int
	export *engineExport
}

func (l *engineLayer) Digest() (v1.Hash, error)            { return l.desc.Digest, nil }
func (l *engineLayer) DiffID() (v1.Hash, error)            { return l.diffID, nil }
func (l *engineLayer) Size() (int64, error)                { return l.desc.Size, nil }
func (l *engineLayer) MediaType() (types.MediaType, error) { return l.desc.MediaType, nil }

// Compressed returns a reader that exports the image when first read. It
// cannot seek: a scan asks a seekable blob for its length to tell whether
// the blob is whole, which would export it for nothing; the engine holds
// the layer whole.
func (l *engineLayer) Compressed() (io.ReadCloser, error) {
	return &exportReader{layer: l}, nil
}

// exportReader reads a layer of the export, read in place as the
// archive's layers are.
type exportReader struct {
	layer *engineLayer
	rc    io.ReadCloser
	err   error
}

func (r *exportReader) open() error {
	if r.rc != nil || r.err != nil {
		return r.err
	}
	img, err := r.layer.export.get()
	if err != nil {
		r.err = err
		return err
	}
	ls, err := img.Layers()
	if err == nil && len(ls) <= r.layer.index {
		err = fmt.Errorf("docker: the export of %s has %d layers", r.layer.export.id, len(ls))
	}
	if err == nil {
		var d v1.Hash
		if d, err = ls[r.layer.index].DiffID(); err == nil && d != r.layer.diffID {
			err = fmt.Errorf("docker: layer %d of the export is %s, not %s: %w", r.layer.index+1, d, r.layer.diffID, ErrDigest)
		}
	}
	if err == nil {
		r.rc, err = ls[r.layer.index].Compressed()
	}
	r.err = err
	return err
}

func (r *exportReader) Read(p []byte) (int, error) {
	if err := r.open(); err != nil {
		return 0, err
	}
	return r.rc.Read(p)
}

func (r *exportReader) ReadAt(p []byte, off int64) (int, error) {
	if err := r.open(); err != nil {
		return 0, err
	}
	at, ok := r.rc.(readerInPlace)
	if !ok {
		return 0, errors.New("docker: the export's layer cannot be read at offsets")
	}
	return at.ReadAt(p, off)
}

// Unchanged is the export's (see sectionCloser): a layer not read yet has
// not changed.
func (r *exportReader) Unchanged() error {
	if r.rc == nil {
		return r.err
	}
	if at, ok := r.rc.(readerInPlace); ok {
		return at.Unchanged()
	}
	return nil
}

func (r *exportReader) Close() error {
	if r.rc == nil {
		return nil
	}
	return r.rc.Close()
}
