package scan

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"

	cpb "github.com/google/osv-scalibr/binary/proto/config_go_proto"
	"github.com/google/osv-scalibr/extractor"
	"github.com/google/osv-scalibr/extractor/filesystem"
	rpmmeta "github.com/google/osv-scalibr/extractor/filesystem/os/rpm/metadata"
	"github.com/google/osv-scalibr/inventory"
	"github.com/google/osv-scalibr/plugin"
	"github.com/google/osv-scalibr/purl"
)

// Bottlerocket keeps no package database: its build writes the list of the
// RPMs an image was built from to usr/share/bottlerocket/application-inventory.json,
// {"Content": [{"Name", "Version", "Release", "Epoch", "Architecture", ...}]},
// which is what Bottlerocket's own SBOM tooling and Trivy read. The
// packages are RPMs and are reported as such (type rpm, epoch first), in
// the ecosystem "Bottlerocket" that the BRSA feed names.

// bottlerocketInventoryPath is where the inventory is, from the root.
const bottlerocketInventoryPath = "usr/share/bottlerocket/application-inventory.json"

// Bounds of an inventory: a real one lists about 150 packages in 60 KB.
const (
	bottlerocketMaxBytes    = 16 << 20
	bottlerocketMaxPackages = 100_000
)

// bottlerocketInventory is the extractor of the inventory.
type bottlerocketInventory struct{}

func newBottlerocketInventory(*cpb.PluginConfig) (filesystem.Extractor, error) {
	return bottlerocketInventory{}, nil
}

// Name of the extractor.
func (bottlerocketInventory) Name() string { return "scangate/bottlerocket-inventory" }

// Version of the extractor.
func (bottlerocketInventory) Version() int { return 1 }

// Requirements of the extractor.
func (bottlerocketInventory) Requirements() *plugin.Capabilities { return &plugin.Capabilities{} }

// FileRequired asks for the inventory only.
func (bottlerocketInventory) FileRequired(api filesystem.FileAPI) bool {
	return strings.TrimPrefix(api.Path(), "/") == bottlerocketInventoryPath
}

// Extract reads the inventory's packages.
func (bottlerocketInventory) Extract(ctx context.Context, input *filesystem.ScanInput) (inventory.Inventory, error) {
	entries, err := parseBottlerocketInventory(input.Reader)
	if err != nil {
		return inventory.Inventory{}, fmt.Errorf("%s: %w", input.Path, err)
	}
	var out []*extractor.Package
	for _, e := range entries {
		out = append(out, &extractor.Package{
			Name:     e.Name,
			Version:  e.Version + "-" + e.Release, // as the rpm extractor writes it; the epoch comes from the metadata
			PURLType: purl.TypeRPM,
			Location: extractor.LocationFromPath(input.Path),
			Metadata: &rpmmeta.Metadata{PackageName: e.Name, Epoch: e.epoch, OSID: "bottlerocket", Architecture: e.Architecture},
		})
	}
	return inventory.Inventory{Packages: out}, nil
}

// bottlerocketEntry is one package of the inventory.
type bottlerocketEntry struct {
	Name         string `json:"Name"`
	Version      string `json:"Version"`
	Release      string `json:"Release"`
	Epoch        string `json:"Epoch"`
	Architecture string `json:"Architecture"`
	epoch        int
}

// parseBottlerocketInventory reads an inventory, within its bounds. An entry
// without a name, version or release, or with an epoch that is no number,
// makes the file unreadable: a partly read inventory would pass for a
// smaller one.
func parseBottlerocketInventory(r io.Reader) ([]bottlerocketEntry, error) {
	data, err := io.ReadAll(io.LimitReader(r, bottlerocketMaxBytes+1))
	if err != nil {
		return nil, fmt.Errorf("bottlerocket inventory: %w", err)
	}
	if len(data) > bottlerocketMaxBytes {
		return nil, fmt.Errorf("bottlerocket inventory larger than %d bytes", bottlerocketMaxBytes)
	}
	var doc struct {
		Content []json.RawMessage `json:"Content"`
	}
	// encoding/json bounds nesting depth itself.
	if err := json.Unmarshal(data, &doc); err != nil {
		return nil, fmt.Errorf("bottlerocket inventory: %w", err)
	}
	if doc.Content == nil {
		return nil, errors.New("bottlerocket inventory: no Content")
	}
	if len(doc.Content) > bottlerocketMaxPackages {
		return nil, fmt.Errorf("bottlerocket inventory of %d packages, more than %d", len(doc.Content), bottlerocketMaxPackages)
	}
	out := make([]bottlerocketEntry, 0, len(doc.Content))
	for i, raw := range doc.Content {
		var e bottlerocketEntry
		if err := json.Unmarshal(raw, &e); err != nil {
			return nil, fmt.Errorf("bottlerocket inventory: package %d: %w", i, err)
		}
		switch {
		case !rpmField(e.Name) || !rpmField(e.Version) || !rpmField(e.Release):
			return nil, fmt.Errorf("bottlerocket inventory: package %d (%.80q): no usable name, version or release", i, e.Name)
		case e.Epoch != "":
			n, err := strconv.Atoi(e.Epoch)
			if err != nil || n < 0 {
				return nil, fmt.Errorf("bottlerocket inventory: package %s: epoch %.20q", e.Name, e.Epoch)
			}
			e.epoch = n
		}
		out = append(out, e)
	}
	return out, nil
}

// rpmField reports whether s can be an RPM name, version or release: not
// empty, bounded, with no blanks or control characters.
func rpmField(s string) bool {
	return s != "" && len(s) <= 256 && !strings.ContainsFunc(s, func(r rune) bool { return r <= ' ' || r == 0x7f })
}
