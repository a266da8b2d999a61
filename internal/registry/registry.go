// Package registry embeds an OCI registry (distribution v3, the code behind
// Docker's registry and Harbor) in scangate, with filesystem storage under
// the data directory, in a shared folder, or in S3 (storage.go).
//
// distribution's notifications are kept in memory and lost if the process
// dies, so scangate does not use them. Instead the registry's handler is
// wrapped: a manifest push is reported to Hooks.ManifestPushed before the
// client hears "201 Created", so a push the client saw succeed is always
// recorded, and one that was not recorded is retried by the client (it got
// an error) or found by Manifests when the server starts again.
//
// Every request's token is checked for its role and, for a token limited
// to some repositories, for the repository it names (grants.go); a
// TagGuard keeps the pipelines' tags immutable to everyone else.
package registry

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"time"

	"github.com/distribution/distribution/v3"
	"github.com/distribution/distribution/v3/configuration"
	"github.com/distribution/distribution/v3/registry/handlers"
	"github.com/distribution/distribution/v3/registry/storage"
	storagedriver "github.com/distribution/distribution/v3/registry/storage/driver"
	"github.com/distribution/distribution/v3/registry/storage/driver/factory"
	_ "github.com/distribution/distribution/v3/registry/storage/driver/filesystem" // the "filesystem" driver
	_ "github.com/distribution/distribution/v3/registry/storage/driver/s3-aws"     // the "s3" driver
	"github.com/distribution/reference"
	"github.com/opencontainers/go-digest"
	"github.com/sirupsen/logrus"

	"github.com/scangate/scangate/internal/auth"
)

// Config configures the embedded registry.
type Config struct {
	// Root is the data folder's registry folder: the storage when Storage
	// is empty, and where the generated HTTP secret is kept when Secret is.
	Root string
	// Storage is --registry-storage (see ParseStorage): "" is Root, an
	// absolute path a shared folder, s3://BUCKET… a bucket.
	Storage string
	// Secret is distribution's HTTP.Secret, which signs the state of an
	// upload between its requests; every replica on shared storage must
	// have the same one, or an upload that moves between replicas fails
	// with BLOB_UPLOAD_INVALID. "" keeps a generated one in Root (refused
	// with shared storage).
	Secret string
	// Cache is --registry-cache (see ParseCache): none, inmemory or
	// redis://HOST:PORT/DB.
	Cache string
	// MaxCatalog and MaxTags bound one page of /v2/_catalog and of a tag
	// list (distribution's default for both is 1000).
	MaxCatalog int
	MaxTags    int
	// AnonymousPull lets requests without a token pull.
	AnonymousPull bool
	// Tokens checks the tokens requests carry.
	Tokens *auth.Tokens
	// Hooks hears of manifest pushes and pulls; nil hears nothing.
	Hooks Hooks
	// PullGate, if set, may refuse a manifest's pull (images the gate
	// rejected, in the repositories where that is asked).
	PullGate PullGate
	// TagGuard, if set, keeps some tags from everyone's pushes and
	// deletes but their owner's (the pipelines' tags).
	TagGuard TagGuard
	// RepositoryQuota, if not 0, bounds the bytes one repository holds
	// (see quota.go).
	RepositoryQuota int64
	// TagLock, if not nil, takes the lock of a repository:tag across
	// every server that shares the registry's storage and database
	// (package lease), and returns its unlock; nil locks within this
	// process only (Registry.tags).
	TagLock func(ctx context.Context, key string) (unlock func(), err error)
	// Logger reports what clients are not told in full (a push that could
	// not be recorded); nil is slog's default logger.
	Logger *slog.Logger
}

// Manifest names one manifest in the registry.
type Manifest struct {
	Repository string
	Digest     string
	MediaType  string
	Tag        string // the tag it was pushed or pulled by, if any
}

// Hooks are told what happens to manifests.
type Hooks interface {
	// ManifestPushed runs after a manifest is stored and before the client
	// is told; an error makes the push fail for the client, who retries.
	ManifestPushed(ctx context.Context, m Manifest) error
	// ManifestPulled runs after a manifest was served.
	ManifestPulled(ctx context.Context, m Manifest)
	// ManifestDeleted runs after a manifest (Digest set) or a tag (Tag
	// set) was deleted.
	ManifestDeleted(ctx context.Context, m Manifest)
}

// PullGate decides whether a manifest may be pulled, once the registry
// knows its digest.
type PullGate interface {
	// AllowPull returns why who may not pull repository@digest, or nil.
	AllowPull(ctx context.Context, who Puller, repository, digest string) error
}

// Puller is who pulls: a token's name and role, or "" for anonymous.
type Puller struct {
	Token string
	Role  auth.Role
	// Process tells the server's own token (auth.Tokens.Server).
	Process bool
}

// Registry is the embedded registry.
type Registry struct {
	cfg Config
	app *handlers.App
	ns  distribution.Namespace
	// tags serialises the changes to one repository:tag, from the storage
	// write to the record Hooks keep: two pushes to a tag at once would
	// otherwise store in one order and record in the other, and the record
	// would name a manifest other than the one a pull of the tag gets.
	tags keyLock
	// driver is the storage under the registry, and quotas the uploads
	// running, for the repositories' quotas.
	driver  storagedriver.StorageDriver
	quotas  quotaState
	storage Storage
}

// New opens the registry on the storage cfg names.
func New(ctx context.Context, cfg Config) (*Registry, error) {
	st, err := ParseStorage(cfg.Storage, cfg.Root)
	if err != nil {
		return nil, err
	}
	cache, err := ParseCache(cfg.Cache, st)
	if err != nil {
		return nil, err
	}
	secret := cfg.Secret
	if err := checkSecret(secret, st); err != nil {
		return nil, err
	}
	if st.Kind != StorageS3 {
		// Made at the start, so that Ping tells a folder gone from one
		// never made.
		if err := os.MkdirAll(st.Path, 0o750); err != nil {
			return nil, fmt.Errorf("registry: %w", err)
		}
	}
	if st.Kind == StorageLocal {
		if secret == "" {
			if secret, err = httpSecret(filepath.Join(st.Path, "http-secret")); err != nil {
				return nil, fmt.Errorf("registry: %w", err)
			}
		}
	}
	quietLogrus()
	name, params := st.driver()
	dc := &configuration.Configuration{
		Storage: configuration.Storage{
			name:     params,
			"delete": configuration.Parameters{"enabled": true},
			// Blobs are served by scangate, never by a redirect to the
			// bucket: clients need not reach the storage, and every read
			// goes through the registry's checks.
			"redirect": configuration.Parameters{"disable": true},
		},
		Catalog: configuration.Catalog{MaxEntries: cfg.MaxCatalog},
		Tags:    configuration.Tags{MaxTags: cfg.MaxTags},
	}
	switch cache.Kind {
	case CacheInMemory:
		dc.Storage["cache"] = configuration.Parameters{"blobdescriptor": "inmemory"}
	case CacheRedis:
		dc.Storage["cache"] = configuration.Parameters{"blobdescriptor": "redis"}
		dc.Redis.Options.Addrs = []string{cache.Addr}
		dc.Redis.Options.DB = cache.DB
	}
	dc.HTTP.Secret = secret
	// NewApp panics on a storage configuration it cannot use; that must be
	// an error, without the parameters (they hold the credentials).
	var app *handlers.App
	if err := func() (err error) {
		defer func() {
			if r := recover(); r != nil {
				err = fmt.Errorf("%v", r)
			}
		}()
		app = handlers.NewApp(ctx, dc)
		return nil
	}(); err != nil {
		return nil, fmt.Errorf("registry storage %s: %w", st, err)
	}
	driver, err := factory.Create(ctx, name, params)
	if err != nil {
		return nil, fmt.Errorf("registry storage %s: %w", st, err)
	}
	ns, err := storage.NewRegistry(ctx, driver, storage.EnableDelete)
	if err != nil {
		return nil, fmt.Errorf("registry storage %s: %w", st, err)
	}
	return &Registry{cfg: cfg, app: app, ns: ns, driver: driver, storage: st}, nil
}

// pingTimeout bounds Ping: one Stat answers in milliseconds when storage
// is well.
const pingTimeout = 5 * time.Second

// CheckSettings checks --registry-storage, --registry-secret and
// --registry-cache together, as New will, so that a mistake is bad input
// before the server starts.
func CheckSettings(storage, secret, cache string) error {
	st, err := ParseStorage(storage, "")
	if err != nil {
		return err
	}
	if _, err := ParseCache(cache, st); err != nil {
		return err
	}
	return checkSecret(secret, st)
}

func checkSecret(secret string, st Storage) error {
	switch {
	case secret != "" && len(secret) < minSecretLen:
		return fmt.Errorf("registry secret: at least %d characters", minSecretLen)
	case secret == "" && st.Shared():
		return errors.New("registry secret: required with shared registry storage (--registry-secret or SCANGATE_REGISTRY_SECRET, the same on every replica: uploads that move between replicas fail otherwise)")
	}
	return nil
}

// Ping tells whether the storage answers, cheaply (one Stat of the root,
// which an empty storage answers with "not found"): for /readyz.
func (r *Registry) Ping(ctx context.Context) error {
	// A storage that hangs is as unready as one that refuses: the probe
	// gets "not ready" rather than a request held open.
	ctx, cancel := context.WithTimeout(ctx, pingTimeout)
	defer cancel()
	if r.storage.Kind != StorageS3 {
		// The driver takes a missing root for an empty registry; here it
		// is a mount that went away (a shared path) or a folder removed.
		if fi, err := os.Stat(r.storage.Path); err != nil || !fi.IsDir() {
			return fmt.Errorf("registry storage %s: not a folder (%v)", r.storage, err)
		}
	}
	if _, err := r.driver.Stat(ctx, "/"); err != nil && !notFound(err) {
		return fmt.Errorf("registry storage %s: %w", r.storage, err)
	}
	return nil
}

// Storage tells where the registry is stored.
func (r *Registry) Storage() Storage { return r.storage }

// Close stops the registry's background work.
func (r *Registry) Close() error { return r.app.Shutdown() }

// httpSecret returns the secret that signs upload state, kept in a file so
// that an upload survives a restart of the server.
func httpSecret(path string) (string, error) {
	b, err := os.ReadFile(path)
	if err == nil && len(b) >= 32 {
		return string(b), nil
	}
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return "", err
	}
	raw := make([]byte, 32)
	if _, err := rand.Read(raw); err != nil {
		return "", err
	}
	s := fmt.Sprintf("%x", raw)
	if err := os.WriteFile(path, []byte(s), 0o600); err != nil {
		return "", err
	}
	return s, nil
}

// quietLogrus silences distribution's logging, which goes to logrus's
// standard logger (its logger-in-context helpers are internal to it):
// scangate reports what matters through its own log.
func quietLogrus() {
	logrus.SetOutput(io.Discard)
	logrus.SetLevel(logrus.ErrorLevel)
}

func (r *Registry) logger() *slog.Logger {
	if r.cfg.Logger != nil {
		return r.cfg.Logger
	}
	return slog.Default()
}

// notFound tells a storage path that does not exist yet: the folders of an
// empty registry, or of a repository that has blobs and no manifest.
func notFound(err error) bool {
	var nf storagedriver.PathNotFoundError
	return errors.As(err, &nf)
}

// Manifests calls fn for every manifest stored in the registry. An empty
// registry, and a repository without manifests, have none.
func (r *Registry) Manifests(ctx context.Context, fn func(Manifest) error) error {
	repos, ok := r.ns.(distribution.RepositoryEnumerator)
	if !ok {
		return errors.New("registry storage cannot list repositories")
	}
	var outer error // an error from a repository's manifests or from fn
	err := repos.Enumerate(ctx, func(name string) error {
		repo, err := r.repository(ctx, name)
		if err != nil {
			return err
		}
		ms, err := repo.Manifests(ctx)
		if err != nil {
			return err
		}
		en, ok := ms.(distribution.ManifestEnumerator)
		if !ok {
			return errors.New("registry storage cannot list manifests")
		}
		var inner error // an error of ours or fn's, never "not found"
		err = en.Enumerate(ctx, func(d digest.Digest) error {
			inner = func() error {
				m, err := ms.Get(ctx, d)
				if err != nil {
					return fmt.Errorf("manifest %s@%s: %w", name, d, err)
				}
				mt, _, err := m.Payload()
				if err != nil {
					return fmt.Errorf("manifest %s@%s: %w", name, d, err)
				}
				return fn(Manifest{Repository: name, Digest: d.String(), MediaType: mt})
			}()
			return inner
		})
		if inner != nil {
			outer = inner
			return inner
		}
		if notFound(err) {
			return nil
		}
		return err
	})
	if outer != nil {
		return outer
	}
	if notFound(err) {
		return nil
	}
	return err
}

// Tags returns the tags that point at digest in repository.
func (r *Registry) Tags(ctx context.Context, repository, dgst string) ([]string, error) {
	repo, err := r.repository(ctx, repository)
	if err != nil {
		return nil, err
	}
	d, err := digest.Parse(dgst)
	if err != nil {
		return nil, err
	}
	tags, err := repo.Tags(ctx).Lookup(ctx, distribution.Descriptor{Digest: d})
	if err != nil {
		return nil, fmt.Errorf("tags of %s@%s: %w", repository, dgst, err)
	}
	return tags, nil
}

func (r *Registry) repository(ctx context.Context, name string) (distribution.Repository, error) {
	named, err := reference.WithName(name)
	if err != nil {
		return nil, fmt.Errorf("repository %q: %w", name, err)
	}
	repo, err := r.ns.Repository(ctx, named)
	if err != nil {
		return nil, fmt.Errorf("repository %q: %w", name, err)
	}
	return repo, nil
}

// SetTagGuard sets which tags only their owner may move; call it before
// serving.
func (r *Registry) SetTagGuard(g TagGuard) { r.cfg.TagGuard = g }

// SetHooks sets who hears of pushes and pulls; call it before serving.
func (r *Registry) SetHooks(h Hooks) { r.cfg.Hooks = h }

// lockTag takes the lock of the changes to repository:tag key (Registry.tags),
// across servers when Config.TagLock is set.
func (r *Registry) lockTag(ctx context.Context, key string) (func(), error) {
	if r.cfg.TagLock == nil {
		return r.tags.lock(key), nil
	}
	unlock, err := r.cfg.TagLock(ctx, key)
	if err != nil {
		return nil, fmt.Errorf("lock tag %s: %w", key, err)
	}
	return unlock, nil
}
