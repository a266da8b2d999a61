package scan

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	rpmdb "github.com/erikvarga/go-rpmdb/pkg"
	cpb "github.com/google/osv-scalibr/binary/proto/config_go_proto"
	"github.com/google/osv-scalibr/extractor"
	"github.com/google/osv-scalibr/extractor/filesystem"
	"github.com/google/osv-scalibr/extractor/filesystem/os/osrelease"
	"github.com/google/osv-scalibr/extractor/filesystem/os/rpm"
	"github.com/google/osv-scalibr/inventory"
	"github.com/google/osv-scalibr/plugin"
)

// Module streams. On RHEL 8 and its rebuilds one package name is built in
// several module streams (postgresql:10, :12, :13, :15) beside, at times,
// a non-modular build; each stream's fixes are its own, and a build of
// one is never "below" another's fix in any sense that matters. rpm
// records the stream a package came from as its modularity label
// ("postgresql:15:9020020230525082155:rhel9"), which osv-scalibr's rpm
// extractor reads past. rpmModularity reads it from the same rpm
// databases; packages() then names a labelled package's advisories as the
// feeds key them, "postgresql:15/postgresql" (see moduleName), so that it
// is matched against its stream's advisories only, and a package without
// a label never against a stream's.

// rpmModularityName names the extractor.
const rpmModularityName = "scangate/rpm-modularity"

// rpmModularity reports, for each package of an rpm database built in a
// module stream, its modularity label, as a package of PURL type
// rpmModularityType that packages() folds into the rpm package of the same
// name, version and path.
type rpmModularity struct {
	files filesystem.Extractor // osv-scalibr's rpm extractor: which files are rpm databases
}

// rpmModularityType marks the label records; they are not packages.
const rpmModularityType = "scangate-rpm-modularity"

// moduleLabel is a label record's metadata.
type moduleLabel struct{ Label string }

// IsProtoable marks moduleLabel as package metadata.
func (*moduleLabel) IsProtoable() {}

// newRPMModularity returns the extractor.
func newRPMModularity(cfg *cpb.PluginConfig) (filesystem.Extractor, error) {
	files, err := rpm.New(cfg)
	if err != nil {
		return nil, err
	}
	return &rpmModularity{files: files}, nil
}

// Name of the extractor.
func (*rpmModularity) Name() string { return rpmModularityName }

// Version of the extractor.
func (*rpmModularity) Version() int { return 1 }

// Requirements of the extractor.
func (*rpmModularity) Requirements() *plugin.Capabilities { return &plugin.Capabilities{} }

// FileRequired asks for the files the rpm extractor reads.
func (r *rpmModularity) FileRequired(api filesystem.FileAPI) bool { return r.files.FileRequired(api) }

// rpmModularityTimeout bounds reading one database, as the rpm extractor
// bounds it: a corrupt Berkeley DB can loop.
const rpmModularityTimeout = 5 * time.Minute

// streamReleases are the os-release IDs whose feeds name module streams
// (rpmModule): the database is read a second time only for them.
var streamReleases = map[string]bool{"rhel": true, "centos": true, "ol": true}

// Extract reads the labels of one rpm database.
func (r *rpmModularity) Extract(ctx context.Context, input *filesystem.ScanInput) (inventory.Inventory, error) {
	if osr, err := osrelease.GetOSRelease(input.FS); err != nil || !streamReleases[osr["ID"]] {
		return inventory.Inventory{}, nil
	}
	path, err := input.GetRealPath()
	if err != nil {
		return inventory.Inventory{}, fmt.Errorf("rpm modularity: %w", err)
	}
	if input.Root == "" {
		// GetRealPath copied the file into a folder of its own.
		defer os.RemoveAll(filepath.Dir(path))
	}
	db, err := rpmdb.Open(path)
	if err != nil {
		return inventory.Inventory{}, fmt.Errorf("rpm modularity: %s: %w", input.Path, err)
	}
	defer db.Close()
	ctx, cancel := context.WithTimeout(ctx, rpmModularityTimeout)
	defer cancel()
	pkgs, err := db.ListPackagesWithContext(ctx)
	if err != nil {
		return inventory.Inventory{}, fmt.Errorf("rpm modularity: %s: %w", input.Path, err)
	}
	var out []*extractor.Package
	for _, p := range pkgs {
		if p.Modularitylabel == "" {
			continue
		}
		out = append(out, &extractor.Package{
			Name:     p.Name,
			Version:  p.Version + "-" + p.Release, // as the rpm extractor writes it
			PURLType: rpmModularityType,
			Location: extractor.LocationFromPath(input.Path),
			Metadata: &moduleLabel{Label: p.Modularitylabel},
		})
	}
	return inventory.Inventory{Packages: out}, nil
}

// moduleLabels takes the label records out of in and returns them by rpm
// package (path, name and version).
func moduleLabels(in []*extractor.Package) ([]*extractor.Package, map[string]string) {
	labels := map[string]string{}
	out := in[:0:0]
	for _, p := range in {
		if m, ok := p.Metadata.(*moduleLabel); ok && p.PURLType == rpmModularityType {
			labels[labelKey(p)] = m.Label
			continue
		}
		out = append(out, p)
	}
	return out, labels
}

func labelKey(p *extractor.Package) string {
	return p.Location.PathOrEmpty() + "\x00" + p.Name + "\x00" + p.Version
}

// moduleName names a labelled package's advisories as the feeds key a
// module stream's packages: "postgresql:15/postgresql" for the label
// "postgresql:15:9020020230525082155:rhel9" (name:stream:version:context).
// A label without a name and a stream names nothing.
func moduleName(label, name string) (string, bool) {
	parts := strings.SplitN(label, ":", 3)
	if len(parts) < 2 || parts[0] == "" || parts[1] == "" || strings.ContainsAny(parts[0]+parts[1], "/ \t") {
		return "", false
	}
	return parts[0] + ":" + parts[1] + "/" + name, true
}

// rpmModule moves a Red Hat or Oracle Linux package built in a module
// stream to its stream's advisories: Red Hat's VEX and Oracle's OVAL key
// them "stream/name", by source RPM for Red Hat, by binary for Oracle. The
// other RPM distributions' feeds do not name streams: their packages keep
// their names.
func rpmModule(pkg *Package, label string) {
	if label == "" || pkg.Type != "rpm" {
		return
	}
	switch {
	case strings.HasPrefix(pkg.Ecosystem, "Red Hat:"):
		if pkg.SourceName == "" {
			pkg.SourceName, pkg.SourceVersion = pkg.Name, pkg.Version
		}
	case strings.HasPrefix(pkg.Ecosystem, "Oracle Linux:"):
		pkg.SourceName, pkg.SourceVersion = pkg.Name, pkg.Version
	default:
		return
	}
	if name, ok := moduleName(label, pkg.SourceName); ok {
		pkg.SourceName = name
	}
}
