package scan

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"path"
	"runtime"
	"slices"
	"strings"
	"sync"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/osv-scalibr/extractor"
	"github.com/google/osv-scalibr/extractor/filesystem"
	apkmeta "github.com/google/osv-scalibr/extractor/filesystem/os/apk/metadata"
	dpkgmeta "github.com/google/osv-scalibr/extractor/filesystem/os/dpkg/metadata"
	scalibrfs "github.com/google/osv-scalibr/fs"
	"github.com/google/osv-scalibr/inventory"
	"github.com/google/osv-scalibr/plugin"
	"github.com/google/osv-scalibr/stats"

	"github.com/scangate/scangate/internal/layercache"
)

// Limits bound what one scan unpacks, so that a hostile image fails with a
// clear error rather than filling the disk.
type Limits struct {
	// MaxFileBytes bounds one file; larger files are skipped by the
	// unpacker (no package database comes near the default).
	MaxFileBytes int64
	// MaxLayerBytes and MaxImageBytes bound the bytes inflated from
	// layers (those after a tar's end included), and, apart, the sizes of
	// their files (sparse files at full size). A layer that repeats
	// another's blob is read, and counted, once.
	MaxLayerBytes int64
	MaxImageBytes int64
	// MaxLayerFiles and MaxImageFiles bound tar entries.
	MaxLayerFiles int
	MaxImageFiles int
	// MaxLayers bounds an image's layers, checked before any is read.
	MaxLayers int
}

// DefaultLimits hold real images with room to spare.
var DefaultLimits = Limits{
	MaxFileBytes:  512 << 20,
	MaxLayerBytes: 8 << 30,
	MaxImageBytes: 32 << 30,
	MaxLayerFiles: 1_000_000,
	MaxImageFiles: 4_000_000,
	// overlayfs stacks at most 500 layers (the kernel's OVL_MAX_STACK),
	// and Docker's layer store 125: no runtime runs more.
	MaxLayers: 500,
}

// ErrScan reports a scan that could not complete: an extractor failed or a
// layer could not be read. Such a scan never yields a clean result.
var ErrScan = errors.New("scan failed")

// Catalog unpacks img and lists its packages, each with the layer that
// introduced it, and its OS. info describes the image; Catalog fills its
// layers and config digest.
func Catalog(ctx context.Context, img v1.Image, info ImageInfo, limits Limits) (*Report, error) {
	return CatalogWithCache(ctx, img, info, limits, nil)
}

// CatalogWithCache is Catalog with a layer cache: layers the cache holds
// are not read again, and layers read are kept in it. The report is the
// one Catalog makes, to the byte. cache may be nil.
func CatalogWithCache(ctx context.Context, img v1.Image, info ImageInfo, limits Limits, cache *layercache.Cache) (*Report, error) {
	r := &Report{SchemaVersion: SchemaVersion, Image: info}
	var err error
	if r.Cataloger, err = CurrentCataloger(); err != nil {
		return nil, err
	}
	lc, err := newLayerCache(cache, limits)
	if err != nil {
		return nil, err
	}
	defer lc.close()
	if err := describe(img, &r.Image); err != nil {
		return nil, fmt.Errorf("%w: %s: %w", ErrScan, info.Ref, err)
	}
	plugins, err := Extractors()
	if err != nil {
		return nil, err
	}
	cf, err := img.ConfigFile()
	if err != nil {
		return nil, fmt.Errorf("%w: %s: config: %w", ErrScan, info.Ref, err)
	}
	limited := newLimitedImage(img, limits)
	b := &blob{}
	defer b.close()
	t, err := unpack(ctx, limited, newWanted(plugins), b, lc)
	if lerr := limited.err(); lerr != nil {
		return nil, fmt.Errorf("%w: %s: %w", ErrScan, info.Ref, lerr)
	}
	if err != nil {
		return nil, fmt.Errorf("%w: unpack %s: %w", ErrScan, info.Ref, err)
	}
	if err := checkReadable(t); err != nil {
		return nil, fmt.Errorf("%w: %s: %w", ErrScan, info.Ref, err)
	}
	if r.OS, err = readOS(t); err != nil {
		return nil, fmt.Errorf("%w: %s: %v", ErrScan, info.Ref, err)
	}
	// Every file the unpacker kept is within MaxFileBytes (a larger one
	// fails the scan), so the walk needs no size limit of its own, which
	// would skip a package database silently. Symlinked package databases
	// are read; a file the walk cannot read fails the scan.
	//
	// The extractors run through osv-scalibr's filesystem walk itself, not
	// its Scanner: the Scanner's package imports every plugin osv-scalibr
	// has (secret detectors, enrichers, annotators), whose initialisation
	// cost every scangate command a tenth of a second at start, and runs
	// none of them for a scan that asks for extractors only.
	inv, statuses, err := extract(ctx, t, extractorsOf(plugins))
	if err := checkStatus(statuses, err); err != nil {
		return nil, fmt.Errorf("%w: %s: %v", ErrScan, info.Ref, err)
	}
	if t.save != nil {
		t.save()
	}
	pkgs, labels := moduleLabels(inv.Packages) // rpm module streams (rpmmodules.go)
	t.attribute(ctx, pkgs, plugins, cf.RootFS.DiffIDs)
	if err := b.unchanged(); err != nil {
		return nil, fmt.Errorf("%w: %s: %w", ErrScan, info.Ref, err)
	}
	r.Packages = mergeLinks(packages(pkgs, r.OS, labels), t.realPath)
	return r, nil
}

func describe(img v1.Image, info *ImageInfo) error {
	cfgName, err := img.ConfigName()
	if err != nil {
		return fmt.Errorf("config: %w", err)
	}
	info.ConfigDigest = cfgName.String()
	cf, err := img.ConfigFile()
	if err != nil {
		return fmt.Errorf("config: %w", err)
	}
	// DiffIDs come from the config: hashing every layer again would cost
	// as much as reading the image twice.
	info.Layers = info.Layers[:0]
	for _, d := range cf.RootFS.DiffIDs {
		info.Layers = append(info.Layers, d.String())
	}
	if info.Platform == "" && cf.OS != "" {
		info.Platform = cf.OS + "/" + cf.Architecture
	}
	return nil
}

// extract runs the extractors over the tree with osv-scalibr's walk. The
// executable extractors (memoExtractors: they open and parse every
// executable and shared library, the larger part of a distribution
// image's extraction) each walk the tree in a goroutine of their own
// beside the others, when there are cores for them. A walk only reads the
// tree, but for the memo notes, which those extractors write under the
// tree's lock. The packages come out in another order than one walk's,
// which packages sorts.
func extract(ctx context.Context, t *treeFS, extractors []filesystem.Extractor) (inventory.Inventory, []*plugin.Status, error) {
	run := func(es []filesystem.Extractor) (inventory.Inventory, []*plugin.Status, error) {
		return filesystem.Run(ctx, &filesystem.Config{
			ScanRoots: []*scalibrfs.ScanRoot{{FS: t}}, Extractors: es, ReadSymlinks: true, ErrorOnFSErrors: true,
			Stats: stats.NoopCollector{},
		})
	}
	var exe, rest []filesystem.Extractor
	for _, e := range extractors {
		if memoBit(e.Name()) != 0 {
			exe = append(exe, e)
		} else {
			rest = append(rest, e)
		}
	}
	if runtime.GOMAXPROCS(0) < 2 || len(exe) == 0 || len(rest) == 0 {
		return run(extractors)
	}
	type walk struct {
		inv      inventory.Inventory
		statuses []*plugin.Status
		err      error
	}
	walks := make([]walk, len(exe))
	var wg sync.WaitGroup
	for i, e := range exe {
		wg.Add(1)
		go func() {
			defer wg.Done()
			walks[i].inv, walks[i].statuses, walks[i].err = run([]filesystem.Extractor{e})
		}()
	}
	inv, statuses, err := run(rest)
	wg.Wait()
	for _, w := range walks {
		inv.Append(w.inv)
		statuses = append(statuses, w.statuses...)
		err = errors.Join(err, w.err)
	}
	return inv, statuses, err
}

// extractorsOf returns the filesystem extractors among plugins.
func extractorsOf(plugins []plugin.Plugin) []filesystem.Extractor {
	var out []filesystem.Extractor
	for _, p := range plugins {
		if e, ok := p.(filesystem.Extractor); ok {
			out = append(out, e)
		}
	}
	return out
}

// checkStatus fails closed: anything but success of the walk (runErr) and
// of every extractor makes the scan an error.
func checkStatus(statuses []*plugin.Status, runErr error) error {
	var errs []error
	for _, ps := range statuses {
		if ps.Status == nil || ps.Status.Status != plugin.ScanStatusSucceeded {
			reason := "did not succeed"
			if ps.Status != nil {
				reason = ps.Status.FailureReason
				for _, fe := range ps.Status.FileErrors {
					reason += fmt.Sprintf("; %s: %s", fe.FilePath, fe.ErrorMessage)
				}
			}
			errs = append(errs, fmt.Errorf("extractor %s: %s", ps.Name, reason))
		}
	}
	if len(errs) > 0 {
		return errors.Join(errs...) // the extractors say more than the walk
	}
	return runErr
}

// knownDatabases are the files that say what a distribution installed. An
// extractor that cannot open one skips it silently, which would pass an
// image as clean; so each is checked first.
var knownDatabases = []string{
	"etc/os-release", "usr/lib/os-release",
	"var/lib/dpkg/status", "lib/apk/db/installed",
	"var/lib/rpm/Packages", "var/lib/rpm/Packages.db", "var/lib/rpm/rpmdb.sqlite",
	"usr/lib/sysimage/rpm/rpmdb.sqlite", "usr/lib/sysimage/rpm/Packages.db",
}

// checkReadable fails when a package database is in the image but cannot be
// read: a symlink loop, a link to nowhere, a hard link the unpacker could
// not follow.
func checkReadable(fsys scalibrfs.FS) error {
	for _, p := range knownDatabases {
		if err := checkPath(fsys, p); err != nil {
			return err
		}
	}
	return nil
}

// checkPath walks p one element at a time: an element its folder lists but
// that cannot be opened is an error; one not listed means p is absent.
func checkPath(fsys scalibrfs.FS, p string) error {
	parts := strings.Split(p, "/")
	for i := range parts {
		dir, prefix := path.Join(parts[:i]...), path.Join(parts[:i+1]...)
		if dir == "" {
			dir = "."
		}
		entries, err := fs.ReadDir(fsys, dir)
		if err != nil || !slices.ContainsFunc(entries, func(e fs.DirEntry) bool { return e.Name() == parts[i] }) {
			return nil
		}
		f, err := fsys.Open(prefix)
		if err != nil {
			return fmt.Errorf("/%s is in the image but cannot be read: %w", prefix, err)
		}
		fi, err := f.Stat()
		f.Close()
		if err != nil {
			return fmt.Errorf("/%s is in the image but cannot be read: %w", prefix, err)
		}
		if i == len(parts)-1 && fi.IsDir() {
			return fmt.Errorf("/%s is a folder, not a package database", prefix)
		}
	}
	return nil
}

// readOS reads /etc/os-release (or /usr/lib/os-release). An image without
// one (distroless, scratch) has no OS.
func readOS(fsys scalibrfs.FS) (*OS, error) {
	var data []byte
	var err error
	for _, p := range []string{"etc/os-release", "usr/lib/os-release"} {
		data, err = fs.ReadFile(fsys, p)
		if err == nil {
			break
		}
	}
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil, nil
		}
		return nil, fmt.Errorf("os-release: %w", err)
	}
	if len(data) > 64<<10 {
		return nil, errors.New("os-release: larger than 64 KiB")
	}
	kv := map[string]string{}
	sc := bufio.NewScanner(strings.NewReader(string(data)))
	for sc.Scan() {
		k, v, ok := strings.Cut(strings.TrimSpace(sc.Text()), "=")
		if !ok || strings.HasPrefix(k, "#") {
			continue
		}
		kv[k] = strings.Trim(v, `"'`)
	}
	o := &OS{ID: kv["ID"], VersionID: kv["VERSION_ID"], PrettyName: kv["PRETTY_NAME"]}
	o.Ecosystem = osEcosystem(o)
	return o, nil
}

// packages converts scalibr's inventory, counting a package found twice
// (an npm package in node_modules and in a lockfile) once.
func packages(in []*extractor.Package, o *OS, labels map[string]string) []Package {
	seen := map[string]bool{}
	var out []Package
	for _, p := range in {
		pkg := convert(p, o)
		rpmModule(&pkg, labels[labelKey(p)]) // a module stream's package (rpmmodules.go)
		key := pkg.Ecosystem + "\x00" + pkg.Name + "\x00" + pkg.Version + "\x00" + pkg.Type
		if pkg.Type == "npm" {
			key = pkg.Ecosystem + "\x00" + pkg.Name + "\x00" + pkg.Version
		}
		if seen[key] && (pkg.Type == "npm" || pkg.Path == "") {
			continue
		}
		seen[key] = true
		out = append(out, pkg)
	}
	ubuntuPro(out, o)  // a Pro machine matches Pro's fixes too (distro.go)
	suseLTSS(out, o)   // and an LTSS machine LTSS's
	oracleArch(out, o) // an Oracle Linux machine its architecture's
	slices.SortStableFunc(out, func(a, b Package) int {
		return strings.Compare(a.Type+"\x00"+a.Name+"\x00"+a.Version+"\x00"+a.Path, b.Type+"\x00"+b.Name+"\x00"+b.Version+"\x00"+b.Path)
	})
	return out
}

func convert(p *extractor.Package, o *OS) Package {
	pkg := Package{Name: p.Name, Version: p.Version, Path: "/" + strings.TrimPrefix(p.Location.PathOrEmpty(), "/")}
	if u := p.PURL(); u != nil {
		pkg.PURL = u.String()
	}
	if p.LayerMetadata != nil {
		pkg.Layer = p.LayerMetadata.DiffID.String()
	}
	pkg.Ecosystem = p.Ecosystem().String()
	pkg.Type = packageType(p)
	switch m := p.Metadata.(type) {
	case *dpkgmeta.Metadata:
		pkg.SourceName, pkg.SourceVersion = m.SourceName, m.SourceVersion
	case *apkmeta.Metadata:
		pkg.SourceName = m.OriginName
	}
	if pkg.Type == "deb" || pkg.Type == "apk" {
		if pkg.SourceName == "" {
			pkg.SourceName = pkg.Name
		}
		if pkg.SourceVersion == "" {
			pkg.SourceVersion = pkg.Version
		}
		// The image's os-release is the authority on the release.
		if o != nil && o.Ecosystem != "" {
			pkg.Ecosystem = o.Ecosystem
		}
	}
	rpmPackage(&pkg, p, o) // epoch, source RPM and release (distro.go)
	if pkg.Type == "go-module" || pkg.Type == "go-stdlib" {
		pkg.Version = strings.TrimPrefix(strings.TrimPrefix(pkg.Version, "go"), "v")
	}
	if pkg.Type == "go-stdlib" {
		pkg.Name = "stdlib"
	}
	return pkg
}

func packageType(p *extractor.Package) string {
	switch p.PURLType {
	case "deb":
		return "deb"
	case "apk":
		return "apk"
	case "rpm":
		return "rpm"
	case "golang":
		// scalibr names a binary's toolchain "go"; Go's vulnerability
		// database names it "stdlib".
		if p.Name == "stdlib" || p.Name == "go" {
			return "go-stdlib"
		}
		return "go-module"
	case "npm":
		return "npm"
	case "pypi":
		return "python"
	case "maven":
		return "java"
	case "cargo":
		return "cargo"
	}
	return p.PURLType
}
