package registry

import (
	"errors"
	"fmt"
	"net/url"
	"os"
	"path"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/distribution/distribution/v3/configuration"
)

// StorageKind tells which distribution storage driver holds the registry.
type StorageKind string

const (
	// StorageLocal is the data folder's registry folder (filesystem driver).
	StorageLocal StorageKind = "local"
	// StorageFilesystem is a folder given by absolute path, meant to be
	// shared by several replicas (filesystem driver).
	StorageFilesystem StorageKind = "filesystem"
	// StorageS3 is an S3 bucket (distribution's s3-aws driver).
	StorageS3 StorageKind = "s3"
)

// Limits on what --registry-storage and --registry-cache may be.
const (
	maxStorageURL = 4096
	maxBucket     = 63 // S3's limit on a bucket's name
	// minSecretLen: HTTP.Secret signs upload state; a short one is guessable.
	minSecretLen = 16
)

// Storage is where the registry keeps blobs and manifests: the parsed form
// of --registry-storage.
type Storage struct {
	Kind StorageKind
	// Path is the folder, for StorageLocal and StorageFilesystem.
	Path string
	// Bucket, Prefix (no leading or trailing slash), Region, Endpoint
	// (empty: AWS's) and ForcePathStyle, for StorageS3. Credentials are
	// never here: the driver takes them from AWS_ACCESS_KEY_ID and
	// AWS_SECRET_ACCESS_KEY.
	Bucket, Prefix, Region, Endpoint string
	ForcePathStyle                   bool
}

// Shared tells storage other replicas may use too: an explicit path or S3.
func (s Storage) Shared() bool { return s.Kind != StorageLocal }

// String describes the storage for logs; it holds no credentials.
func (s Storage) String() string {
	switch s.Kind {
	case StorageS3:
		u := url.URL{Scheme: "s3", Host: s.Bucket, Path: "/" + s.Prefix}
		q := url.Values{}
		if s.Region != "" {
			q.Set("region", s.Region)
		}
		if s.Endpoint != "" {
			q.Set("endpoint", s.Endpoint)
		}
		if s.ForcePathStyle {
			q.Set("force-path-style", "true")
		}
		u.RawQuery = q.Encode()
		return u.String()
	default:
		return s.Path
	}
}

// ParseStorage reads --registry-storage: "" is local (the folder given),
// an absolute path a shared folder, s3://BUCKET[/PREFIX]?region=R&
// endpoint=URL&force-path-style=true a bucket. Errors never repeat the
// value: a mistaken one may hold a credential.
func ParseStorage(value, local string) (Storage, error) {
	if value == "" {
		return Storage{Kind: StorageLocal, Path: local}, nil
	}
	if len(value) > maxStorageURL {
		return Storage{}, fmt.Errorf("registry storage: longer than %d bytes", maxStorageURL)
	}
	if !strings.Contains(value, "://") {
		if !filepath.IsAbs(value) {
			return Storage{}, errors.New("registry storage: a folder must be an absolute path (or use s3://BUCKET)")
		}
		return Storage{Kind: StorageFilesystem, Path: filepath.Clean(value)}, nil
	}
	u, err := url.Parse(value)
	if err != nil {
		return Storage{}, errors.New("registry storage: not a URL (want s3://BUCKET[/PREFIX]?region=R&endpoint=URL&force-path-style=true)")
	}
	if u.Scheme != "s3" {
		return Storage{}, fmt.Errorf("registry storage: scheme %q is not supported (want an absolute path or s3://)", u.Scheme)
	}
	if u.User != nil {
		return Storage{}, errors.New("registry storage: credentials in the URL are refused; set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY")
	}
	s := Storage{Kind: StorageS3, Bucket: u.Host, Prefix: strings.Trim(path.Clean("/"+u.Path), "/")}
	if err := checkBucket(s.Bucket); err != nil {
		return Storage{}, err
	}
	if u.Fragment != "" {
		return Storage{}, errors.New("registry storage: an s3:// URL has no #fragment")
	}
	q, err := url.ParseQuery(u.RawQuery)
	if err != nil {
		return Storage{}, errors.New("registry storage: bad query string")
	}
	for k, vs := range q {
		if len(vs) != 1 {
			return Storage{}, fmt.Errorf("registry storage: %q given %d times", k, len(vs))
		}
		v := vs[0]
		switch k {
		case "region":
			if v == "" || strings.ContainsAny(v, " /") {
				return Storage{}, errors.New("registry storage: region is empty or not a region name")
			}
			s.Region = v
		case "endpoint":
			e, err := url.Parse(v)
			if err != nil || (e.Scheme != "http" && e.Scheme != "https") || e.Host == "" {
				return Storage{}, errors.New("registry storage: endpoint must be an http:// or https:// URL")
			}
			if e.User != nil {
				return Storage{}, errors.New("registry storage: credentials in the endpoint are refused; set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY")
			}
			s.Endpoint = v
		case "force-path-style":
			b, err := strconv.ParseBool(v)
			if err != nil {
				return Storage{}, errors.New("registry storage: force-path-style must be true or false")
			}
			s.ForcePathStyle = b
		default:
			return Storage{}, fmt.Errorf("registry storage: unknown setting %q (known: region, endpoint, force-path-style)", k)
		}
	}
	if s.Region == "" {
		if s.Endpoint == "" {
			return Storage{}, errors.New("registry storage: an s3:// URL needs region= (or endpoint=)")
		}
		// S3-compatible servers take any region in the signature.
		s.Region = "us-east-1"
	}
	return s, nil
}

// checkBucket applies S3's rules for a bucket's name, loosely: what the
// driver would only fail on at the first request is refused at start.
func checkBucket(b string) error {
	if len(b) < 3 || len(b) > maxBucket {
		return fmt.Errorf("registry storage: a bucket's name has 3 to %d characters", maxBucket)
	}
	for _, c := range b {
		if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-' || c == '.') {
			return errors.New("registry storage: a bucket's name has only a-z, 0-9, '-' and '.'")
		}
	}
	return nil
}

// driver returns the distribution driver's name and parameters.
func (s Storage) driver() (string, configuration.Parameters) {
	switch s.Kind {
	case StorageS3:
		p := configuration.Parameters{
			"bucket": s.Bucket,
			"region": s.Region,
			// The credentials are read here, once, and go no further than
			// the driver (never into an error or a log).
			"accesskey":      os.Getenv("AWS_ACCESS_KEY_ID"),
			"secretkey":      os.Getenv("AWS_SECRET_ACCESS_KEY"),
			"forcepathstyle": s.ForcePathStyle,
			"rootdirectory":  "/" + s.Prefix,
			"loglevel":       "off",
		}
		if s.Endpoint != "" {
			p["regionendpoint"] = s.Endpoint
			p["secure"] = strings.HasPrefix(s.Endpoint, "https://")
		}
		return "s3", p
	default:
		return "filesystem", configuration.Parameters{"rootdirectory": s.Path}
	}
}

// CacheKind tells where distribution caches blob descriptors.
type CacheKind string

const (
	CacheNone     CacheKind = "none"
	CacheInMemory CacheKind = "inmemory"
	CacheRedis    CacheKind = "redis"
)

// Cache is the parsed form of --registry-cache.
type Cache struct {
	Kind CacheKind
	Addr string // host:port, for CacheRedis
	DB   int
}

// ParseCache reads --registry-cache: none, inmemory or redis://HOST:PORT/DB
// ("" is none, today's behaviour). inmemory is refused on shared storage:
// each replica would keep serving a blob another replica deleted.
func ParseCache(value string, st Storage) (Cache, error) {
	switch value {
	case "", string(CacheNone):
		return Cache{Kind: CacheNone}, nil
	case string(CacheInMemory):
		if st.Shared() {
			return Cache{}, errors.New("registry cache: inmemory is refused with shared registry storage (a replica's memory would serve a blob another replica deleted); use none or redis://HOST:PORT/DB")
		}
		return Cache{Kind: CacheInMemory}, nil
	}
	if len(value) > maxStorageURL {
		return Cache{}, fmt.Errorf("registry cache: longer than %d bytes", maxStorageURL)
	}
	u, err := url.Parse(value)
	if err != nil || u.Scheme != "redis" {
		return Cache{}, errors.New("registry cache: want none, inmemory or redis://HOST:PORT/DB")
	}
	if u.User != nil {
		return Cache{}, errors.New("registry cache: credentials in the redis:// URL are not supported")
	}
	if u.Hostname() == "" || u.Port() == "" {
		return Cache{}, errors.New("registry cache: redis:// needs HOST:PORT")
	}
	if u.RawQuery != "" || u.Fragment != "" {
		return Cache{}, errors.New("registry cache: redis:// takes no query or fragment")
	}
	c := Cache{Kind: CacheRedis, Addr: u.Host}
	if db := strings.Trim(u.Path, "/"); db != "" {
		n, err := strconv.Atoi(db)
		if err != nil || n < 0 || n > 1023 {
			return Cache{}, errors.New("registry cache: redis:// database must be 0 to 1023")
		}
		c.DB = n
	}
	return c, nil
}

// String describes the cache for logs.
func (c Cache) String() string {
	if c.Kind == CacheRedis {
		return fmt.Sprintf("redis://%s/%d", c.Addr, c.DB)
	}
	return string(c.Kind)
}
