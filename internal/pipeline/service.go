package pipeline

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"time"

	"github.com/riverqueue/river"

	"github.com/scangate/scangate/internal/egress"
	"github.com/scangate/scangate/internal/events"
	"github.com/scangate/scangate/internal/jobs"
	"github.com/scangate/scangate/internal/secret"
	"github.com/scangate/scangate/internal/source"
	"github.com/scangate/scangate/internal/store"
)

// Source gives the build the files of a commit, and tells a push of a
// branch's head from a stale one.
type Source interface {
	// Archive writes a tar of the tree of commit in the pipeline's source.
	Archive(ctx context.Context, src SourceSpec, commit string, w io.Writer) error
	// Head returns the commit the source's branch names now; for an
	// external repository, as a fetch of it finds it.
	Head(ctx context.Context, src SourceSpec) (string, error)
}

// Builder builds an image and pushes it to scangate's registry.
type Builder interface {
	Build(ctx context.Context, req BuildRequest) (BuildResult, error)
}

// Promoter moves a tag of scangate's registry to an image it holds.
type Promoter interface {
	Tag(ctx context.Context, repository, digest, tag string) error
}

// BuildRequest is one image build.
type BuildRequest struct {
	Context    io.Reader // a tar of the build context
	Dockerfile string
	Args       map[string]string
	Repository string
	Tags       []string
	Container  string    // the name in imagedefinitions.json
	Network    string    // NetworkBridge (default) or NetworkNone
	Log        io.Writer // the build log, streamed
}

// BuildResult is what a build leaves: the pushed image and the artifact.
type BuildResult struct {
	Digest           string
	ImageURI         string
	ImageDefinitions []byte
}

// Options configure the service.
type Options struct {
	// Source and Builder run builds; the server (the one composition
	// root) always sets them. Left nil, as only this package's tests of
	// the gate do, a build is retried until a process that can build
	// takes it: the CLI no longer makes a service of its own.
	Source  Source
	Builder Builder
	// Deployer runs deploy stages; nil where none run (tests of the gate).
	Deployer Deployer
	// Promoter tags approved images; nil where none are tagged.
	Promoter Promoter
	// Key derives approval tokens (LoadKey).
	Key []byte
	// Keys seal the definitions' secrets (by default, the keys of the
	// store's data folder).
	Keys *secret.Keys
	// Egress checks an external source's host when a definition is put
	// (by default egress.New(nil): public addresses only); the fetches
	// check it again (source.Options.Egress).
	Egress *egress.Guard
	// MaxLog bounds the build log kept with an execution (1 MiB).
	MaxLog int
	Logger *slog.Logger
	// Now is the clock (time.Now).
	Now func() time.Time
}

// Service runs pipelines over the store.
type Service struct {
	st   *store.Store
	bus  *events.Bus
	jobs *jobs.Client
	opts Options
}

// New returns the pipeline service. Register its workers before the job
// client starts.
func New(st *store.Store, bus *events.Bus, client *jobs.Client, opts Options) *Service {
	if opts.MaxLog == 0 {
		opts.MaxLog = 1 << 20
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	return &Service{st: st, bus: bus, jobs: client, opts: opts}
}

// Register adds the service's workers.
func (s *Service) Register(w *river.Workers) {
	river.AddWorker(w, &buildWorker{s: s})
	river.AddWorker(w, &evaluateWorker{s: s})
	river.AddWorker(w, &expireWorker{s: s})
	river.AddWorker(w, &promoteWorker{s: s})
	river.AddWorker(w, &deployWorker{s: s})
	river.AddWorker(w, &deployTimeoutWorker{s: s})
}

// ScanPattern is the pattern of the built-in rule that sends scan results
// to the approval evaluator.
const ScanPattern = `{"source": ["scangate.scanner"], "detail-type": ["Scan"]}`

// HandlerName is the evaluator's built-in handler.
const HandlerName = "pipeline-approval-evaluator"

// ErrNoPipeline reports a pipeline that does not exist.
var ErrNoPipeline = errors.New("no such pipeline")

// Put stores a new version of a pipeline and returns its number.
func (s *Service) Put(ctx context.Context, d *Definition) (int, error) {
	if err := d.Check(); err != nil {
		return 0, err
	}
	if d.Source.URL != "" {
		g := s.opts.Egress
		if g == nil {
			g = egress.New(nil)
		}
		if err := source.CheckRemote(ctx, g, d.Source.URL); err != nil {
			return 0, fmt.Errorf("pipeline %s: source: %w", d.Name, err)
		}
	}
	now := s.now()
	var version int
	err := s.st.InTx(ctx, func(tx *sql.Tx) error {
		err := tx.QueryRowContext(ctx, `SELECT version FROM pipelines WHERE name = $1`, d.Name).Scan(&version)
		if err != nil && !errors.Is(err, sql.ErrNoRows) {
			return err
		}
		version++
		d.Version = version
		// Sealed in the transaction that stores it (see package secret).
		doc, err := sealDefinition(s.keys(), d)
		if err != nil {
			return err
		}
		if _, err := tx.ExecContext(ctx, `INSERT INTO pipelines (name, version, created_at, updated_at) VALUES ($1, $2, $3, $3)
			ON CONFLICT (name) DO UPDATE SET version = excluded.version, updated_at = excluded.updated_at`, d.Name, version, now); err != nil {
			return err
		}
		_, err = tx.ExecContext(ctx, `INSERT INTO pipeline_versions (name, version, doc, created_at) VALUES ($1, $2, $3, $4)`,
			d.Name, version, string(doc), now)
		return err
	})
	if err != nil {
		return 0, fmt.Errorf("put pipeline %s: %w", d.Name, err)
	}
	return version, nil
}

// Get returns a pipeline's latest definition, or version v of it if v > 0,
// with its secrets.
func (s *Service) Get(ctx context.Context, name string, v int) (*Definition, error) {
	d, err := getDefinition(ctx, s.st.Reader(), name, v)
	if err != nil {
		return nil, err
	}
	return d, unsealDefinition(s.keys(), d)
}

type querier interface {
	QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row
}

func getDefinition(ctx context.Context, q querier, name string, v int) (*Definition, error) {
	var doc string
	var err error
	if v > 0 {
		err = q.QueryRowContext(ctx, `SELECT doc FROM pipeline_versions WHERE name = $1 AND version = $2`, name, v).Scan(&doc)
	} else {
		err = q.QueryRowContext(ctx, `SELECT v.doc FROM pipelines p JOIN pipeline_versions v ON v.name = p.name AND v.version = p.version
			WHERE p.name = $1`, name).Scan(&doc)
	}
	if errors.Is(err, sql.ErrNoRows) {
		return nil, fmt.Errorf("pipeline %s: %w", name, ErrNoPipeline)
	}
	if err != nil {
		return nil, fmt.Errorf("pipeline %s: %w", name, err)
	}
	// The secrets stay sealed: what needs them unseals them
	// (unsealDefinition).
	d, err := decodeDefinition(doc)
	if err != nil {
		return nil, fmt.Errorf("pipeline %s: stored definition: %w", name, err)
	}
	return d, nil
}

// List returns the latest definition of every pipeline, by name.
func (s *Service) List(ctx context.Context) ([]*Definition, error) {
	rows, err := s.st.Reader().QueryContext(ctx, `SELECT v.doc FROM pipelines p JOIN pipeline_versions v ON v.name = p.name AND v.version = p.version ORDER BY p.name`)
	if err != nil {
		return nil, fmt.Errorf("list pipelines: %w", err)
	}
	defer rows.Close()
	var out []*Definition
	for rows.Next() {
		var doc string
		if err := rows.Scan(&doc); err != nil {
			return nil, err
		}
		d, err := decodeDefinition(doc)
		if err != nil {
			return nil, fmt.Errorf("list pipelines: %w", err)
		}
		if err := unsealDefinition(s.keys(), d); err != nil {
			return nil, err
		}
		out = append(out, d)
	}
	return out, rows.Err()
}

// timeLayout writes times in a fixed width, so that they sort as text:
// RFC 3339 with nanoseconds drops trailing zeros ("…16.5Z" would sort after
// "…16.52Z"), and the stores compare times as text.
const timeLayout = "2006-01-02T15:04:05.000000000Z07:00"

func formatTime(t time.Time) string { return t.UTC().Format(timeLayout) }

func (s *Service) now() string { return formatTime(s.opts.Now()) }
