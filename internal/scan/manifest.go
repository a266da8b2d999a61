package scan

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"path"
	"slices"
	"strings"

	"github.com/google/osv-scalibr/extractor"
	"github.com/google/osv-scalibr/extractor/filesystem"
	"github.com/google/osv-scalibr/extractor/filesystem/language/python/requirements"
	scalibrfs "github.com/google/osv-scalibr/fs"
	"github.com/google/osv-scalibr/inventory"
)

// Bounds on the lockfiles and manifests scangate reads. osv-scalibr's
// parsers read them whole, some recursively; these keep a hostile file from
// exhausting memory or the stack, and a file past them fails the scan
// rather than being skipped.
const (
	// maxManifestBytes bounds one lockfile or manifest, and each file it
	// includes; the largest real lockfiles (yarn.lock of big monorepos) are
	// a few megabytes.
	maxManifestBytes = 32 << 20
	// maxTOMLDepth bounds the nesting of arrays and inline tables in a TOML
	// lockfile: the TOML parser recurses once per level. Lockfiles nest
	// four deep at most.
	maxTOMLDepth = 64
	// maxContinuedLines bounds a requirements line continued with
	// backslashes: the parser recurses once per continued line.
	maxContinuedLines = 1024
	// maxLineBytes is the longest line the line-based parsers read: they
	// use bufio.Scanner with its default buffer, and some of them stop at
	// a longer line without an error, which would drop the rest of the
	// file.
	maxLineBytes = bufio.MaxScanTokenSize - 1
)

// errManifest reports a lockfile or manifest that scangate could not read
// whole.
var errManifest = errors.New("manifest cannot be read whole")

// A manifest is one of osv-scalibr's lockfile or manifest extractors with
// what an image scan needs around it: bounds on the file before the parser
// sees it, a panic turned into an error, files it opens beside the one it
// extracts kept by the unpacker and failing the scan when they cannot be
// read (the extractors log such failures and go on), and only packages
// with an exact version, which is what was installed.
type manifest struct {
	filesystem.Extractor
	// check refuses a file the parser cannot be trusted with.
	check func(data []byte) error
	// keep, if set, drops packages that name no installed version
	// (requirements with a range).
	keep func(p *extractor.Package) bool
	// path, if set, narrows the files the extractor is given.
	path func(name string) bool
	// sideFiles, if set, names the files the extractor opens beside the
	// one it extracts (go.sum beside go.mod), for the unpacker to keep.
	sideFiles func(name string) bool
}

// A companion extractor opens files beside the one it extracts; the
// unpacker keeps those files too.
type companion interface {
	companion(name string) bool
}

func (m *manifest) companion(name string) bool { return m.sideFiles != nil && m.sideFiles(name) }

// FileRequired narrows the extractor's choice by m.path.
func (m *manifest) FileRequired(api filesystem.FileAPI) bool {
	if m.path != nil && !m.path(api.Path()) {
		return false
	}
	return m.Extractor.FileRequired(api)
}

// Extract runs the extractor on the file, read whole within the bounds.
func (m *manifest) Extract(ctx context.Context, in *filesystem.ScanInput) (inv inventory.Inventory, err error) {
	data, err := readBounded(in.Reader, maxManifestBytes)
	if err != nil {
		return inventory.Inventory{}, fmt.Errorf("%w: /%s: %w", errManifest, in.Path, err)
	}
	if m.check != nil {
		if err := m.check(data); err != nil {
			return inventory.Inventory{}, fmt.Errorf("%w: /%s: %w", errManifest, in.Path, err)
		}
	}
	side := &sideFS{FS: in.FS}
	input := *in
	input.Reader = bytes.NewReader(data)
	if in.FS != nil {
		input.FS = side
	}
	defer func() {
		if r := recover(); r != nil {
			inv, err = inventory.Inventory{}, fmt.Errorf("%w: /%s: %s failed: %v", errManifest, in.Path, m.Name(), r)
		}
	}()
	inv, err = m.Extractor.Extract(ctx, &input)
	if err != nil {
		return inventory.Inventory{}, err
	}
	if err := side.err(); err != nil {
		return inventory.Inventory{}, fmt.Errorf("%w: /%s: %w", errManifest, in.Path, err)
	}
	inv.Packages = slices.DeleteFunc(inv.Packages, func(p *extractor.Package) bool {
		return strings.TrimSpace(p.Version) == "" || m.keep != nil && !m.keep(p)
	})
	return inv, nil
}

// readBounded reads r whole, failing past max bytes.
func readBounded(r io.Reader, max int64) ([]byte, error) {
	data, err := io.ReadAll(io.LimitReader(r, max+1))
	if err != nil {
		return nil, err
	}
	if int64(len(data)) > max {
		return nil, fmt.Errorf("larger than %d MiB", max>>20)
	}
	return data, nil
}

// sideFS is the image as an extractor sees it while extracting one file:
// a file it opens that the image holds but that cannot be read (one the
// unpacker did not keep, a link loop, one too large) is remembered, so that
// the extraction fails instead of going on without it. A file the image
// does not hold is not an error: the extractor decides what its absence
// means (go.sum is optional).
type sideFS struct {
	scalibrfs.FS
	errs []error
}

func (s *sideFS) Open(name string) (fs.File, error) {
	f, err := s.FS.Open(name)
	if err != nil {
		if !errors.Is(err, fs.ErrNotExist) {
			s.errs = append(s.errs, fmt.Errorf("/%s, which it opens, cannot be read: %w", name, err))
		}
		return nil, err
	}
	if fi, err := f.Stat(); err == nil && fi.Mode().IsRegular() && fi.Size() > maxManifestBytes {
		f.Close()
		err := fmt.Errorf("/%s, which it opens, is larger than %d MiB", name, maxManifestBytes>>20)
		s.errs = append(s.errs, err)
		return nil, err
	}
	return f, nil
}

func (s *sideFS) err() error { return errors.Join(s.errs...) }

// guarded turns a panic in an extractor into a failed extraction, so that
// one malformed file fails its scan instead of the process serving others.
type guarded struct {
	filesystem.Extractor
}

func (g guarded) Extract(ctx context.Context, in *filesystem.ScanInput) (inv inventory.Inventory, err error) {
	defer func() {
		if r := recover(); r != nil {
			inv, err = inventory.Inventory{}, fmt.Errorf("/%s: %s failed: %v", in.Path, g.Name(), r)
		}
	}()
	return extractMemo(ctx, g.Extractor, in)
}

// pinned keeps the requirements that name one exact version ("==",
// "==="): a range names no installed version, and its lowest bound (what
// osv-scalibr reports for ">=") would match advisories the installed
// version may well be past.
func pinned(p *extractor.Package) bool {
	m, ok := p.Metadata.(*requirements.Metadata)
	return ok && (m.VersionComparator == "==" || m.VersionComparator == "===")
}

// notToolchain drops the Go standard library that osv-scalibr adds for a
// go.mod's go or toolchain line. In a source tree that line names the
// oldest toolchain the module accepts, not one that built anything; a
// binary built from it is reported with its real Go version by the Go
// binary extractor.
func notToolchain(p *extractor.Package) bool { return p.Name != "stdlib" }

// installedGemspec keeps the gem specifications RubyGems writes when it
// installs a gem (…/specifications/NAME-VERSION.gemspec, and
// specifications/default/ for Ruby's default gems), which spell out the
// version. A gem's own source gemspec often computes its version from
// files beside it, and is the same gem again.
func installedGemspec(name string) bool {
	return slices.Contains(strings.Split(path.Dir(name), "/"), "specifications")
}

// goSum names the go.sum the go.mod extractor reads for modules older than
// Go 1.17, whose go.mod does not list indirect dependencies.
func goSum(name string) bool { return path.Base(name) == "go.sum" }

// includedRequirements names the files a requirements file is likely to
// include with -r: text files in a folder named for requirements
// (requirements/base.txt). An included file outside those is not kept, and
// the requirements file that includes it fails the scan, naming it.
func includedRequirements(name string) bool {
	if path.Ext(name) != ".txt" {
		return false
	}
	for _, dir := range strings.Split(path.Dir(name), "/") {
		if strings.Contains(dir, "requirements") {
			return true
		}
	}
	return false
}

// checkLines refuses a file with a line the line-based parsers would stop
// at.
func checkLines(data []byte) error {
	n := 0
	for line := range bytes.Lines(data) {
		n++
		if len(line) > maxLineBytes {
			return fmt.Errorf("line %d is longer than %d bytes", n, maxLineBytes)
		}
	}
	return nil
}

// checkRequirements adds to checkLines a bound on lines continued with a
// backslash.
func checkRequirements(data []byte) error {
	if err := checkLines(data); err != nil {
		return err
	}
	run, n := 0, 0
	for line := range bytes.Lines(data) {
		n++
		if bytes.HasSuffix(bytes.TrimRight(line, "\r\n"), []byte(`\`)) {
			if run++; run > maxContinuedLines {
				return fmt.Errorf("line %d continues more than %d lines", n-run+1, maxContinuedLines)
			}
			continue
		}
		run = 0
	}
	return nil
}

// checkTOML refuses a TOML file whose arrays and inline tables nest deeper
// than maxTOMLDepth. It is a lexer of TOML's strings and comments only,
// enough to count brackets outside them; the parser checks the rest.
func checkTOML(data []byte) error {
	depth, line := 0, 1
	for i := 0; i < len(data); i++ {
		switch c := data[i]; c {
		case '\n':
			line++
		case '#':
			for i < len(data) && data[i] != '\n' {
				i++
			}
			i-- // the newline is counted by the loop
		case '"', '\'':
			end, lines, err := tomlString(data, i)
			if err != nil {
				return fmt.Errorf("line %d: %w", line, err)
			}
			line += lines
			i = end
		case '[', '{':
			if depth++; depth > maxTOMLDepth {
				return fmt.Errorf("line %d: arrays and tables nest deeper than %d", line, maxTOMLDepth)
			}
		case ']', '}':
			depth = max(depth-1, 0)
		}
	}
	return nil
}

// tomlString returns the index of the last byte of the string that starts
// at data[i] (a quote), and how many newlines it spans.
func tomlString(data []byte, i int) (end, lines int, err error) {
	q := data[i]
	triple := bytes.HasPrefix(data[i:], []byte{q, q, q})
	j := i + 1
	if triple {
		j = i + 3
	}
	for ; j < len(data); j++ {
		c := data[j]
		switch {
		case c == '\\' && q == '"':
			if j+1 < len(data) && data[j+1] == '\n' {
				lines++
			}
			j++ // an escaped character, never the end
		case c == '\n':
			if !triple {
				return 0, 0, errors.New("string not closed on its line")
			}
			lines++
		case c == q && !triple:
			return j, lines, nil
		case c == q && bytes.HasPrefix(data[j:], []byte{q, q, q}):
			// Up to two more quotes may belong to the string ("""a"""").
			j += 2
			for k := 0; k < 2 && j+1 < len(data) && data[j+1] == q; k++ {
				j++
			}
			return j, lines, nil
		}
	}
	return 0, 0, errors.New("string not closed")
}
