// Package layercache keeps records about image layers between scans, in a
// folder of the data directory, bounded in size: when a new record takes
// the folder past its bound, the records read least recently go first.
//
// A record is an opaque file named by its key; what is in it is the
// business of the package that writes it (scan keeps each layer's
// unpacked package files, keyed by DiffID and the extractors' versions).
// Records are written to a temporary file and renamed into place, so a
// reader never sees half a record, and several processes (the server and
// a `scangate scan` beside it) may share a folder: a record removed while
// it is read stays readable until it is closed.
//
// It is written here rather than taken from a library: the LRU caches of
// Go libraries (hashicorp/golang-lru, groupcache) keep values in memory,
// and the on-disk ones found (peterbourgon/diskv, gregjones/httpcache)
// bound neither bytes with LRU order across processes nor write
// atomically; this is a folder, a rename and a sort by access time.
package layercache

import (
	"cmp"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"
)

// DefaultMaxBytes bounds a cache folder unless told otherwise: room for
// the layers of a few dozen images.
const DefaultMaxBytes = 2 << 30

// Dir is the cache's folder inside a data directory.
const Dir = "layercache"

// suffix names record files; anything else in the folder (a temporary
// file being written) is not a record.
const suffix = ".rec"

// ErrMiss reports a key with no record.
var ErrMiss = errors.New("no cached record")

// A Cache is a folder of records, at most MaxBytes in all.
type Cache struct {
	dir string
	max int64
	mu  sync.Mutex // one eviction at a time in this process
}

// Open opens (making it if needed) the cache folder dir, bounded to
// maxBytes (DefaultMaxBytes if 0 or less).
func Open(dir string, maxBytes int64) (*Cache, error) {
	if maxBytes <= 0 {
		maxBytes = DefaultMaxBytes
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("layer cache: %w", err)
	}
	return &Cache{dir: dir, max: maxBytes}, nil
}

// MaxBytes is the cache's bound.
func (c *Cache) MaxBytes() int64 { return c.max }

// validKey accepts what the callers make (hex digests): a key is a file
// name and must not be a path.
func validKey(key string) error {
	if key == "" || len(key) > 128 || strings.Trim(key, "0123456789abcdef") != "" {
		return fmt.Errorf("layer cache: bad key %q", key)
	}
	return nil
}

func (c *Cache) path(key string) string { return filepath.Join(c.dir, key+suffix) }

// Get opens key's record and marks it used now. A key with no record is
// ErrMiss.
func (c *Cache) Get(key string) (*os.File, error) {
	if err := validKey(key); err != nil {
		return nil, err
	}
	f, err := os.Open(c.path(key))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, ErrMiss
	}
	if err != nil {
		return nil, fmt.Errorf("layer cache: %w", err)
	}
	// The modification time is the record's last use: eviction goes by it.
	now := time.Now()
	if err := os.Chtimes(f.Name(), now, now); err != nil && !errors.Is(err, fs.ErrNotExist) {
		f.Close()
		return nil, fmt.Errorf("layer cache: %w", err)
	}
	return f, nil
}

// Put writes key's record with write, replacing any, then evicts the
// least recently used records until the cache is within its bound. A
// write that fails leaves nothing behind.
func (c *Cache) Put(key string, write func(w io.Writer) error) error {
	if err := validKey(key); err != nil {
		return err
	}
	tmp, err := os.CreateTemp(c.dir, ".tmp-*")
	if err != nil {
		return fmt.Errorf("layer cache: %w", err)
	}
	err = write(tmp)
	err = errors.Join(err, tmp.Close())
	if err == nil {
		err = os.Rename(tmp.Name(), c.path(key))
	}
	if err != nil {
		os.Remove(tmp.Name())
		return fmt.Errorf("layer cache: write %s: %w", key, err)
	}
	_, err = c.Prune(c.max)
	return err
}

// Usage is what a cache holds.
type Usage struct {
	Records int
	Bytes   int64
}

// Usage counts the records and their bytes.
func (c *Cache) Usage() (Usage, error) {
	recs, err := c.records()
	if err != nil {
		return Usage{}, err
	}
	var u Usage
	for _, r := range recs {
		u.Records++
		u.Bytes += r.size
	}
	return u, nil
}

type record struct {
	name string
	size int64
	used time.Time
}

func (c *Cache) records() ([]record, error) {
	ents, err := os.ReadDir(c.dir)
	if err != nil {
		return nil, fmt.Errorf("layer cache: %w", err)
	}
	var out []record
	for _, e := range ents {
		if e.Type().IsRegular() && strings.HasPrefix(e.Name(), ".tmp-") {
			// A write that a killed process left: no writer takes an hour.
			if fi, err := e.Info(); err == nil && time.Since(fi.ModTime()) > time.Hour {
				os.Remove(filepath.Join(c.dir, e.Name()))
			}
			continue
		}
		if !e.Type().IsRegular() || !strings.HasSuffix(e.Name(), suffix) {
			continue
		}
		fi, err := e.Info()
		if errors.Is(err, fs.ErrNotExist) {
			continue // evicted by another process meanwhile
		}
		if err != nil {
			return nil, fmt.Errorf("layer cache: %w", err)
		}
		out = append(out, record{name: e.Name(), size: fi.Size(), used: fi.ModTime()})
	}
	return out, nil
}

// Prune removes the least recently used records until the cache holds at
// most maxBytes (0 empties it), and says what it removed.
func (c *Cache) Prune(maxBytes int64) (Usage, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	recs, err := c.records()
	if err != nil {
		return Usage{}, err
	}
	var total int64
	for _, r := range recs {
		total += r.size
	}
	var removed Usage
	if total <= maxBytes {
		return removed, nil
	}
	slices.SortFunc(recs, func(a, b record) int {
		return cmp.Or(a.used.Compare(b.used), strings.Compare(a.name, b.name))
	})
	for _, r := range recs {
		if total <= maxBytes {
			break
		}
		err := os.Remove(filepath.Join(c.dir, r.name))
		if err != nil && !errors.Is(err, fs.ErrNotExist) {
			return removed, fmt.Errorf("layer cache: %w", err)
		}
		total -= r.size
		removed.Records++
		removed.Bytes += r.size
	}
	return removed, nil
}
