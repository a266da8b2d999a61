package scan

import (
	"fmt"

	cpb "github.com/google/osv-scalibr/binary/proto/config_go_proto"
	"github.com/google/osv-scalibr/extractor/filesystem"
	"github.com/google/osv-scalibr/extractor/filesystem/language/dotnet/depsjson"
	"github.com/google/osv-scalibr/extractor/filesystem/language/dotnet/packageslockjson"
	"github.com/google/osv-scalibr/extractor/filesystem/language/golang/gobinary"
	"github.com/google/osv-scalibr/extractor/filesystem/language/golang/gomod"
	"github.com/google/osv-scalibr/extractor/filesystem/language/java/archive"
	"github.com/google/osv-scalibr/extractor/filesystem/language/java/gradlelockfile"
	"github.com/google/osv-scalibr/extractor/filesystem/language/javascript/packagejson"
	"github.com/google/osv-scalibr/extractor/filesystem/language/javascript/packagelockjson"
	"github.com/google/osv-scalibr/extractor/filesystem/language/javascript/pnpmlock"
	"github.com/google/osv-scalibr/extractor/filesystem/language/javascript/yarnlock"
	"github.com/google/osv-scalibr/extractor/filesystem/language/php/composerlock"
	"github.com/google/osv-scalibr/extractor/filesystem/language/python/pipfilelock"
	"github.com/google/osv-scalibr/extractor/filesystem/language/python/poetrylock"
	"github.com/google/osv-scalibr/extractor/filesystem/language/python/requirements"
	"github.com/google/osv-scalibr/extractor/filesystem/language/python/uvlock"
	"github.com/google/osv-scalibr/extractor/filesystem/language/python/wheelegg"
	"github.com/google/osv-scalibr/extractor/filesystem/language/ruby/gemfilelock"
	"github.com/google/osv-scalibr/extractor/filesystem/language/ruby/gemspec"
	"github.com/google/osv-scalibr/extractor/filesystem/language/rust/cargoauditable"
	"github.com/google/osv-scalibr/extractor/filesystem/language/rust/cargolock"
	"github.com/google/osv-scalibr/extractor/filesystem/os/apk"
	"github.com/google/osv-scalibr/extractor/filesystem/os/dpkg"
	"github.com/google/osv-scalibr/extractor/filesystem/os/rpm"
	"github.com/google/osv-scalibr/plugin"
)

// extractorConstructors lists the package extractors a scan runs, chosen
// one by one: scalibr's whole plugin list would double the binary and run
// extractors (secrets, source trees) that an image scan has no use for.
var extractorConstructors = []func(*cpb.PluginConfig) (filesystem.Extractor, error){
	dpkg.New,                 // Debian and Ubuntu, including distroless status.d
	apk.New,                  // Alpine, Wolfi
	rpm.New,                  // Red Hat family
	newRPMModularity,         // and the module stream of each rpm (rpmmodules.go)
	newBottlerocketInventory, // Bottlerocket's application inventory (bottlerocket.go)
	gobinary.New,             // Go binaries: modules and the Go version
	packagejson.New,          // node_modules/*/package.json
	packagelockjson.New,      // package-lock.json
	wheelegg.New,             // Python dist-info and egg-info
	archive.New,              // Java archives: pom.properties (shaded too), nested archives, manifests, file names
	cargoauditable.New,       // Rust binaries built with cargo-auditable

	// Lockfiles and manifests, each behind the bounds of manifest.go. Left
	// out of osv-scalibr's: those that list ranges or unresolved
	// declarations rather than what was installed (pyproject.toml,
	// setup.py, Cargo.toml, pom.xml, *.csproj, packages.config, NuGet's
	// central Directory.Packages.props, Gradle's version catalogs, Pub's
	// pubspec.yaml), those whose versions need the network to resolve
	// (pom.xml with parents), Gradle's verification-metadata.xml (every
	// artifact Gradle ever checked, not what was installed), and
	// ecosystems scangate has no advisory feed for (Conan, Julia, Nim,
	// OCaml, Perl, Lua, Swift, CocoaPods, R's renv, Haskell's Stack and
	// Cabal, Hex's mix.lock, Dart's pubspec.lock, Bun, Deno, PDM and
	// pylock.toml).
	manifestOf(requirements.New, &manifest{check: checkRequirements, keep: pinned, sideFiles: includedRequirements}), // requirements*.txt, == pins only
	manifestOf(pipfilelock.New, &manifest{}),                                      // Pipfile.lock
	manifestOf(poetrylock.New, &manifest{check: checkTOML}),                       // poetry.lock
	manifestOf(uvlock.New, &manifest{check: checkTOML}),                           // uv.lock
	manifestOf(yarnlock.New, &manifest{check: checkLines}),                        // yarn.lock (v1 and Berry)
	manifestOf(pnpmlock.New, &manifest{}),                                         // pnpm-lock.yaml (YAML's own depth and alias limits)
	manifestOf(gemfilelock.New, &manifest{check: checkLines}),                     // Gemfile.lock, gems.locked
	manifestOf(gemspec.New, &manifest{check: checkLines, path: installedGemspec}), // installed specifications/*.gemspec
	manifestOf(composerlock.New, &manifest{}),                                     // composer.lock
	manifestOf(cargolock.New, &manifest{check: checkTOML}),                        // Cargo.lock
	manifestOf(gomod.New, &manifest{keep: notToolchain, sideFiles: goSum}),        // go.mod (and go.sum before Go 1.17)
	manifestOf(depsjson.New, &manifest{}),                                         // .NET *.deps.json
	manifestOf(packageslockjson.New, &manifest{}),                                 // NuGet packages.lock.json
	manifestOf(gradlelockfile.New, &manifest{check: checkLines}),                  // gradle.lockfile, buildscript-gradle.lockfile
}

// manifestOf wraps the extractor newExtractor makes in m.
func manifestOf(newExtractor func(*cpb.PluginConfig) (filesystem.Extractor, error), m *manifest) func(*cpb.PluginConfig) (filesystem.Extractor, error) {
	return func(cfg *cpb.PluginConfig) (filesystem.Extractor, error) {
		e, err := newExtractor(cfg)
		if err != nil {
			return nil, err
		}
		w := *m
		w.Extractor = e
		return &w, nil
	}
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
		if _, ok := e.(*manifest); !ok {
			e = guarded{e}
		}
		out = append(out, e)
	}
	return out, nil
}
