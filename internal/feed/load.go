package feed

import (
	"archive/zip"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"maps"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"sort"
	"strings"
	"sync"

	"github.com/scangate/scangate/internal/vulndb"
)

// Limits bound what one import reads, so that a hostile or broken archive
// fails with a clear error instead of exhausting memory or disk.
type Limits struct {
	// MaxFileBytes bounds one file or zip entry. The largest real feed
	// file, Debian's tracker JSON, is under 100 MiB.
	MaxFileBytes int64
	// MaxTotalBytes bounds all bytes read (uncompressed) in one import.
	MaxTotalBytes int64
	// MaxFiles bounds the files and zip entries read in one import.
	MaxFiles int
}

// DefaultLimits hold every real feed with room to spare: osv.dev's largest
// ecosystem zip has under 300,000 entries.
var DefaultLimits = Limits{
	MaxFileBytes:  512 << 20,
	MaxTotalBytes: 16 << 30,
	MaxFiles:      2_000_000,
}

// orDefault fills each unset limit from DefaultLimits.
func (l Limits) orDefault() Limits {
	if l.MaxFileBytes <= 0 {
		l.MaxFileBytes = DefaultLimits.MaxFileBytes
	}
	if l.MaxTotalBytes <= 0 {
		l.MaxTotalBytes = DefaultLimits.MaxTotalBytes
	}
	if l.MaxFiles <= 0 {
		l.MaxFiles = DefaultLimits.MaxFiles
	}
	return l
}

// Options tune Load.
type Options struct {
	Limits Limits
	// Format forces one format by name instead of detecting each file's.
	Format string
}

// A Loaded is what Load read: the feeds, and every record it left out.
type Loaded struct {
	Feeds   []vulndb.Feed
	Skipped []Skip
	// Files counts the files that held feed data; Ignored those in folders
	// that no format recognised (READMEs, licences).
	Files, Ignored int
}

// ErrLimit reports an input beyond Limits.
var ErrLimit = errors.New("over the import limit")

// Load reads feed files from paths (files, folders, and .zip archives such
// as osv.dev's all.zip), detects each file's format, and groups the
// advisories by feed. source names where the data came from in the
// resulting feeds; empty means the paths that held each feed.
func Load(ctx context.Context, paths []string, source string, opts Options) (*Loaded, error) {
	opts.Limits = opts.Limits.orDefault()
	var forced Format
	if opts.Format != "" {
		if forced = FormatByName(opts.Format); forced == nil {
			return nil, fmt.Errorf("unknown feed format %q (known: %s)", opts.Format, strings.Join(formatNames(), ", "))
		}
	}
	l := &loader{opts: opts, forced: forced, files: make(chan file, 16)}
	g := l.parseAll(ctx)
	err := l.walk(ctx, paths)
	close(l.files)
	results := g()
	if err != nil {
		return nil, err
	}
	if err := l.err(); err != nil {
		return nil, err
	}
	return assemble(results, source, l.ignored), nil
}

// FormatByName returns the registered format with that name, or nil.
func FormatByName(name string) Format {
	for _, f := range Formats {
		if f.Name() == name {
			return f
		}
	}
	return nil
}

func formatNames() []string {
	var names []string
	for _, f := range Formats {
		names = append(names, f.Name())
	}
	return names
}

// file is one file's bytes, named for messages ("all.zip:GO-2021-0113.json").
type file struct {
	name     string
	data     []byte
	explicit bool   // named on the command line: it must be recognised
	seq      int    // walk order, so results do not depend on scheduling
	root     string // the path given to Load that holds the file
}

type parsed struct {
	name   string
	root   string
	seq    int
	format string
	res    Result
}

type loader struct {
	opts    Options
	forced  Format
	files   chan file
	mu      sync.Mutex
	errs    map[int]error // by the failing file's walk order
	ignored int
	root    string // the path walk is in
	total   int64
	count   int
	seq     int
}

func (l *loader) fail(seq int, err error) {
	l.mu.Lock()
	if l.errs == nil {
		l.errs = map[int]error{}
	}
	l.errs[seq] = err
	l.mu.Unlock()
}

func (l *loader) err() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if len(l.errs) == 0 {
		return nil
	}
	// The first error in walk order is the one a user should see first,
	// whichever parser finished first.
	return l.errs[slices.Min(slices.Collect(maps.Keys(l.errs)))]
}

// parseAll starts one parser per CPU and returns a function that waits for
// them and returns their results in input order.
func (l *loader) parseAll(ctx context.Context) func() []parsed {
	var wg sync.WaitGroup
	var mu sync.Mutex
	var out []parsed
	for range runtime.GOMAXPROCS(0) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for f := range l.files {
				if ctx.Err() != nil {
					continue
				}
				p, ok := l.parse(f)
				if ok {
					mu.Lock()
					out = append(out, p)
					mu.Unlock()
				}
			}
		}()
	}
	return func() []parsed {
		wg.Wait()
		sort.Slice(out, func(i, j int) bool { return out[i].seq < out[j].seq })
		return out
	}
}

func (l *loader) parse(f file) (parsed, bool) {
	format := l.forced
	if format == nil {
		format = detect(f.name, f.data)
	} else if !f.explicit && !isDataFile(f.name) {
		format = nil // a README beside forced-format files is not one of them
	}
	if format == nil {
		if f.explicit {
			l.fail(f.seq, fmt.Errorf("%s: not a feed file scangate reads (formats: %s)", f.name, strings.Join(formatNames(), ", ")))
		} else {
			l.mu.Lock()
			l.ignored++
			l.mu.Unlock()
		}
		return parsed{}, false
	}
	res, err := format.Parse(f.name, f.data)
	if err != nil {
		l.fail(f.seq, err)
		return parsed{}, false
	}
	return parsed{name: f.name, root: f.root, seq: f.seq, format: format.Name(), res: res}, true
}

// isDataFile reports whether a file's name says it holds JSON, YAML or XML
// (SUSE's CVRF documents, Oracle's OVAL, bzip2ed as Oracle serves it).
func isDataFile(name string) bool {
	if strings.HasSuffix(strings.ToLower(name), ".xml.bz2") {
		return true
	}
	switch strings.ToLower(filepath.Ext(name)) {
	case ".json", ".yaml", ".yml", ".xml":
		return true
	}
	return false
}

func detect(name string, data []byte) Format {
	head := data
	if len(head) > 4096 {
		head = head[:4096]
	}
	for _, f := range Formats {
		if f.Match(filepath.Base(name), head) {
			return f
		}
	}
	return nil
}

func (l *loader) walk(ctx context.Context, paths []string) error {
	for _, p := range paths {
		l.root = p
		fi, err := os.Stat(p)
		if err != nil {
			return fmt.Errorf("import %s: %w", p, err)
		}
		if !fi.IsDir() {
			if err := l.readPath(ctx, p, true); err != nil {
				return err
			}
			continue
		}
		err = filepath.WalkDir(p, func(path string, d fs.DirEntry, err error) error {
			if err != nil {
				return err
			}
			if ctx.Err() != nil {
				return ctx.Err()
			}
			if d.IsDir() {
				if path != p && strings.HasPrefix(d.Name(), ".") {
					return filepath.SkipDir
				}
				return nil
			}
			if !d.Type().IsRegular() {
				return nil // symlinks and devices are not feed data
			}
			return l.readPath(ctx, path, false)
		})
		if err != nil {
			return fmt.Errorf("import %s: %w", p, err)
		}
	}
	return ctx.Err()
}

func (l *loader) readPath(ctx context.Context, path string, explicit bool) error {
	if strings.EqualFold(filepath.Ext(path), ".zip") {
		return l.readZip(ctx, path)
	}
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	data, err := l.read(f, path)
	if err != nil {
		return err
	}
	l.send(file{name: path, data: data, explicit: explicit})
	return nil
}

func (l *loader) readZip(ctx context.Context, path string) error {
	zr, err := zip.OpenReader(path)
	if err != nil {
		if zr != nil { // zip.ErrInsecurePath comes with an open reader
			zr.Close()
		}
		return fmt.Errorf("%s: %w", path, err)
	}
	defer zr.Close()
	for _, zf := range zr.File {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		if zf.FileInfo().IsDir() {
			continue
		}
		name := path + ":" + zf.Name
		// The declared size can lie; read stops at the limit either way.
		if zf.UncompressedSize64 > uint64(l.opts.Limits.MaxFileBytes) {
			return fmt.Errorf("%s: %d bytes uncompressed: %w (%d per file)", name, zf.UncompressedSize64, ErrLimit, l.opts.Limits.MaxFileBytes)
		}
		rc, err := zf.Open()
		if err != nil {
			return fmt.Errorf("%s: %w", name, err)
		}
		data, err := l.read(rc, name)
		rc.Close()
		if err != nil {
			return err
		}
		l.send(file{name: name, data: data})
	}
	return nil
}

// read reads one whole file within the limits.
func (l *loader) read(r io.Reader, name string) ([]byte, error) {
	lim := l.opts.Limits
	l.mu.Lock()
	l.count++
	count, left := l.count, lim.MaxTotalBytes-l.total
	l.mu.Unlock()
	if count > lim.MaxFiles {
		return nil, fmt.Errorf("%s: more than %d files: %w", name, lim.MaxFiles, ErrLimit)
	}
	max := min(lim.MaxFileBytes, left)
	var buf bytes.Buffer
	n, err := io.Copy(&buf, io.LimitReader(r, max+1))
	if err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	if n > max {
		if max == lim.MaxFileBytes {
			return nil, fmt.Errorf("%s: larger than %d bytes: %w", name, lim.MaxFileBytes, ErrLimit)
		}
		return nil, fmt.Errorf("%s: import larger than %d bytes in all: %w", name, lim.MaxTotalBytes, ErrLimit)
	}
	l.mu.Lock()
	l.total += n
	l.mu.Unlock()
	return buf.Bytes(), nil
}

func (l *loader) send(f file) {
	l.seq++
	f.seq, f.root = l.seq, l.root
	l.files <- f
}
