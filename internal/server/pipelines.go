package server

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/distribution/reference"

	"github.com/scangate/scangate/internal/auth"
	"github.com/scangate/scangate/internal/build"
	"github.com/scangate/scangate/internal/egress"
	"github.com/scangate/scangate/internal/lease"
	"github.com/scangate/scangate/internal/pipeline"
	"github.com/scangate/scangate/internal/source"
	"github.com/scangate/scangate/internal/store"
)

// builderToken names the token the server's builds push with: a server
// token (auth.Tokens.Server), the same on every replica sharing the key,
// so that a build's push may reach any of them.
const builderToken = "scangate-builder"

// pipelineSource reads commits for builds from hosted repositories and the
// caches of external ones.
type pipelineSource struct{ repos *source.Repos }

func (p pipelineSource) Archive(ctx context.Context, src pipeline.SourceSpec, commit string, w io.Writer) error {
	if src.Repository != "" {
		return p.repos.Archive(ctx, src.Repository, commit, w)
	}
	// An external commit may not be fetched yet (a webhook names it
	// before any poll): fetch the branch first.
	if _, err := p.repos.Fetch(ctx, src.URL, src.Branch); err != nil {
		return errors.Join(pipeline.ErrRetry, err)
	}
	return p.repos.ArchiveRemote(ctx, src.URL, commit, w)
}

// Head returns the commit the pipeline's branch names now: a hosted
// repository's ref, or an external repository's branch as a fetch finds it.
func (p pipelineSource) Head(ctx context.Context, src pipeline.SourceSpec) (string, error) {
	if src.Repository != "" {
		return p.repos.Resolve(ctx, src.Repository, "refs/heads/"+src.Branch)
	}
	return p.repos.Fetch(ctx, src.URL, src.Branch)
}

// pipelineBuilder builds on the Docker Engine.
type pipelineBuilder struct{ b *build.Builder }

func (p pipelineBuilder) Build(ctx context.Context, r pipeline.BuildRequest) (pipeline.BuildResult, error) {
	res, err := p.b.Build(ctx, build.Request{Context: r.Context, Dockerfile: r.Dockerfile, BuildArgs: r.Args,
		Repository: r.Repository, Tags: r.Tags, Container: r.Container, Network: r.Network, Log: r.Log})
	if errors.Is(err, build.ErrUnavailable) {
		err = errors.Join(pipeline.ErrRetry, err)
	}
	return pipeline.BuildResult{Digest: res.Digest, ImageURI: res.ImageURI, ImageDefinitions: res.ImageDefinitions}, err
}

// sources wires the hosted repositories, the poller and the push webhooks
// to the pipelines.
type sources struct {
	repos  *source.Repos
	poller *source.Poller
	pipes  *pipeline.Service
	log    *slog.Logger

	mu sync.Mutex
}

func newSources(dataDir string, st *store.Store, leases *lease.Leases, tokens *auth.Tokens, lim Limits, guard *egress.Guard, log *slog.Logger) (*sources, error) {
	s := &sources{log: log}
	repos, err := source.New(filepath.Join(dataDir, "git"), tokens, source.Options{OnPush: s.onPush, Logger: log, Store: st, Egress: guard,
		MaxUploadPackBytes: lim.MaxGitRequestBytes, MaxSpooled: lim.MaxSpooledBodies, Protected: s.protectedBranches,
		Lock: gitLock(leases)})
	if err != nil {
		return nil, err
	}
	s.repos = repos
	return s, nil
}

// gitLock serializes the changes to one repository (a push, a fetch into
// an external repository's cache, a creation or deletion) across every
// server on the database, which share the repositories' folder when
// several run: a lease per repository, held while the change runs.
func gitLock(leases *lease.Leases) func(ctx context.Context, key string) (func(), error) {
	return func(ctx context.Context, key string) (func(), error) {
		_, unlock, err := leases.Lock(ctx, "git:"+key)
		return unlock, err
	}
}

func (s *sources) setPipelines(p *pipeline.Service) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.pipes = p
}

func (s *sources) onPush(ctx context.Context, p source.Push) error {
	s.mu.Lock()
	pipes := s.pipes
	s.mu.Unlock()
	if pipes == nil || p.New == source.ZeroHash {
		return nil // a deleted branch starts nothing
	}
	push := pipeline.Push{Kind: "push", Repo: p.Repo, Ref: p.Ref, Commit: p.New}
	if p.Pusher != "" {
		push.Pusher = "token:" + p.Pusher
	}
	if p.External {
		push = pipeline.Push{Kind: p.Via, URL: p.Repo, Ref: p.Ref, Commit: p.New}
	}
	ids, err := pipes.OnPush(ctx, push)
	if p.External {
		return err
	}
	// What the pusher's git prints as "remote: …".
	for _, id := range ids {
		name := ""
		if ex, err := pipes.Execution(ctx, id); err == nil {
			name = ex.Pipeline
		}
		source.Note(ctx, "scangate: execution %s started for %s (scangate execution get %s --wait)", id, name, id)
	}
	if err == nil && len(ids) == 0 && strings.HasPrefix(p.Ref, "refs/heads/") {
		source.Note(ctx, "scangate: no pipeline builds branch %s of %s", strings.TrimPrefix(p.Ref, "refs/heads/"), p.Repo)
	}
	if err != nil {
		source.Note(ctx, "scangate: the push is stored, but its pipelines could not start yet (the server retries at its next start): %v", err)
	}
	return err
}

// head resolves a pipeline's branch to its commit.
func (s *sources) head(ctx context.Context, d *pipeline.Definition) (string, error) {
	return pipelineSource{s.repos}.Head(ctx, d.Source)
}

// reconcile starts the executions of hosted pushes made while no server
// recorded them.
func (s *sources) reconcile(ctx context.Context) error {
	heads, err := s.repos.Heads(ctx)
	if err != nil {
		return err
	}
	for _, h := range heads {
		if _, err := s.pipes.OnPush(ctx, pipeline.Push{Kind: "reconcile", Repo: h.Repo, Ref: h.Ref, Commit: h.New, OnlyNew: true}); err != nil {
			return err
		}
	}
	return nil
}

// watch keeps the poller's watches equal to the pipelines with a polled
// external source; pipelines change from other processes too (the CLI), so
// it looks again every interval. It runs while this replica holds the
// pollers' lease, each time with a new poller (a closed one stays closed).
func (s *sources) watch(ctx context.Context, every time.Duration) {
	s.mu.Lock()
	s.poller = s.repos.NewPoller()
	s.mu.Unlock()
	for {
		if err := s.setWatches(ctx); err != nil && ctx.Err() == nil {
			s.log.Warn("pipeline sources to poll", "err", err)
		}
		select {
		case <-ctx.Done():
			s.poller.Close()
			return
		case <-time.After(every):
		}
	}
}

func (s *sources) setWatches(ctx context.Context) error {
	defs, err := s.pipes.List(ctx)
	if err != nil {
		return err
	}
	var ws []source.Watch
	for _, d := range defs {
		if d.Source.URL == "" || d.Source.Poll == 0 {
			continue
		}
		last := ""
		if exs, err := s.pipes.Executions(ctx, d.Name, 1); err == nil && len(exs) > 0 {
			last = exs[0].Commit
		}
		ws = append(ws, source.Watch{URL: d.Source.URL, Branch: d.Source.Branch, Every: time.Duration(d.Source.Poll), Last: last})
	}
	s.mu.Lock()
	poller := s.poller
	s.mu.Unlock()
	return poller.Set(ws)
}

// webhookSecret returns the secret of the pipeline watching url, "" if none.
func (s *sources) webhookSecret(url string) string {
	defs, err := s.pipes.List(context.Background())
	if err != nil {
		return ""
	}
	for _, d := range defs {
		if d.Source.URL != "" && source.RepoKey(d.Source.URL) == source.RepoKey(url) {
			return d.Source.WebhookSecret
		}
	}
	return ""
}

// CheckRegistryHost says whether h can name the registry (Config.
// RegistryHost): a host or address with an optional port, as an image
// reference starts, without a scheme or a path.
func CheckRegistryHost(h string) error {
	named, err := reference.ParseNamed(h + "/scangate/check")
	if err != nil || reference.Domain(named) != h || !strings.ContainsAny(h, ".:") && h != "localhost" {
		return fmt.Errorf("%q is not a registry host (host[:port], such as registry.example.com or 127.0.0.1:8080)", h)
	}
	return nil
}

// loopbackHost is the registry's address as the Docker Engine on this
// machine must name it: a 127.0.0.0/8 address is the only kind the engine
// pushes to over plain HTTP without configuration.
func loopbackHost(addr net.Addr) string {
	tcp, ok := addr.(*net.TCPAddr)
	if !ok {
		return addr.String()
	}
	ip := tcp.IP
	if ip.IsUnspecified() {
		ip = net.IPv4(127, 0, 0, 1)
	}
	return net.JoinHostPort(ip.String(), strconv.Itoa(tcp.Port))
}

// newBuilder makes the Docker builder with the server's pusher token,
// derived from key. Its bases come from scangate's own registry and the
// others allowed.
func newBuilder(ctx context.Context, tokens *auth.Tokens, key []byte, host string, allowed []string) (*build.Builder, error) {
	// The database token of earlier versions, whose name any admin could
	// have taken since: gone.
	_ = tokens.Revoke(ctx, builderToken)
	secret, err := tokens.Server(builderToken, auth.RolePusher, key)
	if err != nil {
		return nil, err
	}
	return build.New(build.Options{Registry: host, Username: builderToken, Password: secret,
		BaseRegistries: append([]string{host}, allowed...)})
}
