package scan

import (
	"fmt"

	cpb "github.com/google/osv-scalibr/binary/proto/config_go_proto"
	"github.com/google/osv-scalibr/extractor/filesystem"
	"github.com/google/osv-scalibr/extractor/filesystem/language/golang/gobinary"
	"github.com/google/osv-scalibr/extractor/filesystem/language/java/archive"
	"github.com/google/osv-scalibr/extractor/filesystem/language/javascript/packagejson"
	"github.com/google/osv-scalibr/extractor/filesystem/language/javascript/packagelockjson"
	"github.com/google/osv-scalibr/extractor/filesystem/language/python/wheelegg"
	"github.com/google/osv-scalibr/extractor/filesystem/language/rust/cargoauditable"
	"github.com/google/osv-scalibr/extractor/filesystem/os/apk"
	"github.com/google/osv-scalibr/extractor/filesystem/os/dpkg"
	"github.com/google/osv-scalibr/extractor/filesystem/os/rpm"
	"github.com/google/osv-scalibr/plugin"
)

// extractorConstructors lists the package extractors a scan runs, chosen
// one by one: scalibr's whole plugin list would double the binary and run
// extractors (secrets, source trees) that an image scan has no use for.
var extractorConstructors = []func(*cpb.PluginConfig) (filesystem.Extractor, error){
	dpkg.New,            // Debian and Ubuntu, including distroless status.d
	apk.New,             // Alpine, Wolfi
	rpm.New,             // Red Hat family
	gobinary.New,        // Go binaries: modules and the Go version
	packagejson.New,     // node_modules/*/package.json
	packagelockjson.New, // package-lock.json
	wheelegg.New,        // Python dist-info and egg-info
	archive.New,         // Java archives
	cargoauditable.New,  // Rust binaries built with cargo-auditable
}

// Extractors returns new instances of the scan's extractors.
func Extractors() ([]plugin.Plugin, error) {
	cfg := &cpb.PluginConfig{}
	var out []plugin.Plugin
	for _, newExtractor := range extractorConstructors {
		e, err := newExtractor(cfg)
		if err != nil {
			return nil, fmt.Errorf("extractor: %w", err)
		}
		out = append(out, e)
	}
	return out, nil
}
