package scan

import (
	"context"
	"strings"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/osv-scalibr/extractor"
	"github.com/google/osv-scalibr/extractor/filesystem"
	"github.com/google/osv-scalibr/plugin"
	"github.com/opencontainers/go-digest"
)

// attribute sets each package's layer: the layer that wrote the file it
// was found in; for a file several layers wrote (a dpkg status), the
// lowest layer whose version of the file already lists the package.
func (t *treeFS) attribute(ctx context.Context, pkgs []*extractor.Package, plugins []plugin.Plugin, diffIDs []v1.Hash) {
	byName := map[string]filesystem.Extractor{}
	for _, p := range plugins {
		if e, ok := p.(filesystem.Extractor); ok {
			byName[e.Name()] = e
		}
	}
	// found[path+"\x00"+extractor] lists, per version, the packages in it.
	found := map[string][]map[string]bool{}
	for _, p := range pkgs {
		loc := strings.TrimPrefix(p.Location.PathOrEmpty(), "/")
		if loc == "" {
			continue
		}
		target, err := t.resolve(loc, true)
		if err != nil {
			continue
		}
		n := t.lookupNoFollow(target)
		if n == nil {
			continue
		}
		layer := n.layer
		hist := t.history[target]
		if len(hist) > 1 && len(p.Plugins) > 0 && byName[p.Plugins[0]] != nil {
			key := target + "\x00" + p.Plugins[0]
			sets, ok := found[key]
			if !ok {
				sets = t.versions(ctx, byName[p.Plugins[0]], loc, hist)
				found[key] = sets
			}
			for i, set := range sets {
				if set[p.Name+"\x00"+p.Version] {
					layer = hist[i].layer
					break
				}
			}
		}
		if layer >= 0 && layer < len(diffIDs) {
			p.LayerMetadata = &extractor.LayerMetadata{Index: layer, DiffID: digest.Digest(diffIDs[layer].String())}
		}
	}
}

// versions runs ex on each version of a file, lowest layer first.
func (t *treeFS) versions(ctx context.Context, ex filesystem.Extractor, name string, hist []version) []map[string]bool {
	out := make([]map[string]bool, len(hist))
	for i, v := range hist {
		out[i] = map[string]bool{}
		n := &node{name: name, kind: 0, size: v.body.size}
		inv, err := ex.Extract(ctx, &filesystem.ScanInput{FS: t, Path: name, Info: fileInfo{n: n, name: name}, Reader: t.section(v.body)})
		if err != nil {
			continue
		}
		for _, p := range inv.Packages {
			out[i][p.Name+"\x00"+p.Version] = true
		}
	}
	return out
}
