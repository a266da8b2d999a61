// Package build is the pipeline's build stage. It turns a commit's source
// tree into an image in scangate's registry: it sends the tree to the
// Docker Engine as a build context, streams the build log to the caller,
// tags and pushes the image, and answers with the manifest digest and the
// imagedefinitions.json artifact that a deploy stage reads, as
// CodePipeline's build stage does. The scan and the approval gate then work
// from that digest, never from a tag.
//
// Builds use the engine's legacy builder, which Debian's docker.io 20.10
// daemon (API 1.41) runs without a BuildKit session. The daemon is trusted
// to build, not to be well-behaved: every message line it sends, the log
// kept of it and the time a build may take are bounded.
//
// The local tags a build makes are removed once pushed, so that builds do
// not fill the daemon; the layers stay, as the next build's cache.
package build

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"path"
	"slices"
	"strings"
	"time"

	"github.com/distribution/reference"
	buildtypes "github.com/moby/moby/api/types/build"
	"github.com/moby/moby/api/types/registry"
	"github.com/moby/moby/client"
	"github.com/opencontainers/go-digest"
)

const (
	// DefaultDockerfile is the Dockerfile's path in the context when a
	// Request names none.
	DefaultDockerfile = "Dockerfile"
	// DefaultTimeout bounds a build and its push when Options set none.
	DefaultTimeout = 30 * time.Minute
	// cleanupTimeout bounds removing a build's local tags.
	cleanupTimeout = 30 * time.Second
)

// ErrUnavailable marks a failure to reach the Docker Engine: unlike a
// failed build, it is worth another attempt later.
var ErrUnavailable = errors.New("docker engine unavailable")

// Options configure a Builder.
type Options struct {
	// Registry is the host[:port] of the registry images are pushed to,
	// e.g. "127.0.0.1:5000". Loopback registries are plain HTTP to the
	// Docker Engine by default; others must be HTTPS or listed in the
	// daemon's insecure-registries.
	Registry string
	// Username and Password are the registry's credentials, for pushing
	// and for pulling base images from it: with scangate, any user name
	// and a token with the pusher role. Both empty push anonymously.
	Username, Password string
	// MaxLogBytes caps the log written to a Request's Log (default 8 MiB).
	// Past the cap the log says it was truncated; an Error still carries
	// the log's real last lines.
	MaxLogBytes int64
	// Timeout bounds one Build, push included (default DefaultTimeout).
	Timeout time.Duration
	// BaseRegistries are the registries (host[:port], or
	// host[:port]/repository-prefix) a Dockerfile's FROM may name; the
	// default is Registry alone. Each base is pulled by the digest its
	// registry gives, never taken from the engine's own images.
	BaseRegistries []string
	// Transport reaches the registries for those digests (default:
	// go-containerregistry's, with the system's CAs).
	Transport http.RoundTripper
}

// A Builder builds images on the Docker Engine named by the environment
// (DOCKER_HOST, else the default socket) and pushes them to one registry.
// It is safe for concurrent use.
type Builder struct {
	opts    Options
	docker  *client.Client
	auth    string // the X-Registry-Auth header for pushes
	authCfg map[string]registry.AuthConfig
	pushes  keyedMutex // per repository: tag, push and untag
}

// New returns a Builder. It does not contact the daemon; Ping does.
func New(opts Options) (*Builder, error) {
	if opts.Registry == "" || strings.ContainsAny(opts.Registry, "/@ ") {
		return nil, fmt.Errorf("build: registry %q is not a host[:port]", opts.Registry)
	}
	if opts.MaxLogBytes <= 0 {
		opts.MaxLogBytes = defaultMaxLogBytes
	}
	if opts.Timeout <= 0 {
		opts.Timeout = DefaultTimeout
	}
	if len(opts.BaseRegistries) == 0 {
		opts.BaseRegistries = []string{opts.Registry}
	}
	// The client negotiates the API version with the daemon on its first
	// request, down to 1.41 for docker.io 20.10.
	docker, err := client.New(client.FromEnv)
	if err != nil {
		return nil, fmt.Errorf("build: docker client: %w", err)
	}
	cfg := registry.AuthConfig{Username: opts.Username, Password: opts.Password, ServerAddress: opts.Registry}
	auth, err := encodeAuth(cfg)
	if err != nil {
		return nil, fmt.Errorf("build: %w", err)
	}
	b := &Builder{opts: opts, docker: docker, auth: auth}
	if opts.Username != "" || opts.Password != "" {
		b.authCfg = map[string]registry.AuthConfig{opts.Registry: cfg}
	}
	return b, nil
}

// encodeAuth encodes credentials as the X-Registry-Auth header wants them:
// base64url of their JSON, or of {} when there are none. The daemon refuses
// a push without the header.
func encodeAuth(cfg registry.AuthConfig) (string, error) {
	if cfg.Username == "" && cfg.Password == "" {
		cfg = registry.AuthConfig{}
	}
	data, err := json.Marshal(cfg)
	if err != nil {
		return "", fmt.Errorf("encoding registry credentials: %w", err)
	}
	return base64.URLEncoding.EncodeToString(data), nil
}

// Close releases the Builder's connections to the daemon.
func (b *Builder) Close() error {
	return b.docker.Close()
}

// Ping checks that the Docker Engine answers and returns the API version
// the client settled on with it.
func (b *Builder) Ping(ctx context.Context) (string, error) {
	if _, err := b.docker.Ping(ctx, client.PingOptions{NegotiateAPIVersion: true}); err != nil {
		return "", fmt.Errorf("build: %w", unavailable(err))
	}
	return b.docker.ClientVersion(), nil
}

// A Request is one image to build and push.
type Request struct {
	// Context is a tar stream of the build context, as `git archive`
	// writes it. It is read once, while the daemon receives it.
	Context io.Reader
	// Dockerfile is the Dockerfile's path in the context (default
	// DefaultDockerfile).
	Dockerfile string
	// BuildArgs are the build's ARG values.
	BuildArgs map[string]string
	// Repository is the image repository in the registry, e.g. "shop/api".
	Repository string
	// Tags are the tags to push, e.g. the commit SHA and "latest"; at
	// least one.
	Tags []string
	// Container names the container in imagedefinitions.json (default:
	// the repository's last path element).
	Container string
	// Network is the network RUN steps use: NetworkBridge (Docker's
	// default, the default here) or NetworkNone.
	Network string
	// Log receives the build and push log as plain text lines, as `docker
	// build` and `docker push` print them, while they run. It may be nil.
	Log io.Writer
}

// Result is a pushed image.
type Result struct {
	// Digest is the image manifest's digest in the registry, sha256:….
	Digest string
	// ImageURI is the image by digest: REGISTRY/REPOSITORY@sha256:….
	ImageURI string
	// ImageDefinitions is the imagedefinitions.json artifact, as
	// CodePipeline's ECS deploy action reads it:
	// [{"name": CONTAINER, "imageUri": IMAGE_URI}].
	ImageDefinitions []byte
	// ImageID is the image's ID in the daemon, its config digest.
	ImageID string
	// Tags are the references pushed, REGISTRY/REPOSITORY:TAG.
	Tags []string
}

// imageDefinition is one entry of imagedefinitions.json.
type imageDefinition struct {
	Name     string `json:"name"`
	ImageURI string `json:"imageUri"`
}

// Build builds the image the request describes, pushes it under each of
// its tags, removes the local tags and returns the pushed digest. A build
// or push the daemon reports as failed returns an *Error that carries the
// tail of the log. The build stops when ctx is done or Options.Timeout
// passes, whichever is first.
func (b *Builder) Build(ctx context.Context, req Request) (Result, error) {
	plan, err := b.plan(req)
	if err != nil {
		return Result{}, err
	}
	ctx, cancel := context.WithTimeoutCause(ctx, b.opts.Timeout,
		fmt.Errorf("timed out after %s: %w", b.opts.Timeout, context.DeadlineExceeded))
	defer cancel()
	log := newBuildLog(req.Log, b.opts.MaxLogBytes)

	id, err := b.build(ctx, plan, log)
	if err != nil {
		return Result{}, b.failed(ctx, "build", plan.repo, err, log)
	}
	unlock, err := b.pushes.lock(ctx, plan.name.Name())
	if err != nil {
		return Result{}, b.failed(ctx, "push", plan.repo, err, log)
	}
	defer unlock()
	tagged, err := b.tag(ctx, id, plan.refs)
	defer b.untag(ctx, tagged, log)
	if err != nil {
		return Result{}, b.failed(ctx, "push", plan.repo, err, log)
	}
	dgst, err := b.pushAll(ctx, plan.repo, plan.refs, log)
	if err != nil {
		return Result{}, b.failed(ctx, "push", plan.repo, err, log)
	}
	return plan.result(id, dgst)
}

// plan is a checked request.
type plan struct {
	req       Request
	repo      string
	name      reference.Named // REGISTRY/REPOSITORY
	refs      []string        // REGISTRY/REPOSITORY:TAG, one a tag
	container string
	buildArgs map[string]*string
}

// plan checks the request and works out the references it pushes.
func (b *Builder) plan(req Request) (*plan, error) {
	if req.Context == nil {
		return nil, fmt.Errorf("build %s: no build context", req.Repository)
	}
	if req.Dockerfile == "" {
		req.Dockerfile = DefaultDockerfile
	}
	if p := path.Clean(req.Dockerfile); path.IsAbs(p) || p == ".." || strings.HasPrefix(p, "../") {
		return nil, fmt.Errorf("build %s: Dockerfile %q is outside the build context", req.Repository, req.Dockerfile)
	}
	name, err := reference.ParseNormalizedNamed(b.opts.Registry + "/" + req.Repository)
	if err != nil || reference.Domain(name) != b.opts.Registry || reference.Path(name) != req.Repository {
		return nil, fmt.Errorf("build: repository %q is not a valid image repository", req.Repository)
	}
	if _, ok := name.(reference.NamedTagged); ok {
		return nil, fmt.Errorf("build: repository %q has a tag; give tags in Tags", req.Repository)
	}
	if len(req.Tags) == 0 {
		return nil, fmt.Errorf("build %s: no tags to push", req.Repository)
	}
	if err := checkNetwork(req.Network); err != nil {
		return nil, fmt.Errorf("build %s: %w", req.Repository, err)
	}
	p := &plan{req: req, repo: req.Repository, name: name, container: req.Container}
	for _, tag := range req.Tags {
		ref, err := reference.WithTag(name, tag)
		if err != nil {
			return nil, fmt.Errorf("build %s: tag %q: %w", req.Repository, tag, err)
		}
		if !slices.Contains(p.refs, ref.String()) {
			p.refs = append(p.refs, ref.String())
		}
	}
	if p.container == "" {
		p.container = path.Base(req.Repository)
	}
	p.buildArgs = make(map[string]*string, len(req.BuildArgs))
	for k, v := range req.BuildArgs {
		p.buildArgs[k] = &v
	}
	return p, nil
}

// result assembles the Result of a pushed image.
func (p *plan) result(id, dgst string) (Result, error) {
	uri := p.name.Name() + "@" + dgst
	defs, err := json.Marshal([]imageDefinition{{Name: p.container, ImageURI: uri}})
	if err != nil {
		return Result{}, fmt.Errorf("build %s: imagedefinitions.json: %w", p.repo, err)
	}
	return Result{Digest: dgst, ImageURI: uri, ImageDefinitions: defs, ImageID: id, Tags: p.refs}, nil
}

// failed gives err the context of a failed stage. When ctx is done, the
// timeout or cancellation is the reason, whatever the daemon said after
// it, and the error carries the log's tail to show where it stopped.
func (b *Builder) failed(ctx context.Context, op, repo string, err error, log *buildLog) error {
	if ctx.Err() != nil {
		cause := context.Cause(ctx)
		return &Error{Op: op, Repository: repo, Message: cause.Error(), Tail: log.Tail(), Err: cause}
	}
	var e *Error
	if errors.As(err, &e) {
		return err
	}
	return fmt.Errorf("%s %s: %w", op, repo, unavailable(err))
}

// unavailable marks err with ErrUnavailable if the daemon could not be
// reached.
func unavailable(err error) error {
	if client.IsErrConnectionFailed(err) {
		return fmt.Errorf("%w: %w", ErrUnavailable, err)
	}
	return err
}

// build runs the build and returns the image ID. The image is not tagged:
// tags are made under the repository's push lock, so that two builds of
// one repository cannot push each other's image.
func (b *Builder) build(ctx context.Context, p *plan, log *buildLog) (string, error) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	body, dockerfile, pinning := b.pinContext(ctx, p.req.Context, p)
	network := p.req.Network
	if network == "" {
		network = NetworkBridge
	}
	resp, err := b.docker.ImageBuild(ctx, body, client.ImageBuildOptions{
		Dockerfile:  dockerfile,
		BuildArgs:   p.buildArgs,
		AuthConfigs: b.authCfg,
		NetworkMode: network,
		Remove:      true,
		ForceRemove: true,
		Version:     buildtypes.BuilderV1,
	})
	// The daemon reads the whole context before it builds (and the
	// transport closes the context once the request is done), so pinning
	// ends; when it failed, its error is the build's, whatever broken
	// context the daemon complains of.
	res := <-pinning
	if err == nil {
		defer resp.Body.Close()
	}
	if err != nil && client.IsErrConnectionFailed(err) && (res.err == nil || !errors.Is(err, res.err)) {
		// The engine could not be reached (and the failure is not the
		// context pinning cut short): whatever pinning met, the build is
		// worth another attempt.
		return "", fmt.Errorf("docker: %w", err)
	}
	if res.err != nil {
		_ = log.Printf("%v", res.err)
		return "", &Error{Op: "build", Repository: p.repo, Message: res.err.Error(), Tail: log.Tail()}
	}
	if err != nil {
		return "", fmt.Errorf("docker: %w", err)
	}
	for _, base := range res.bases {
		if err := log.Printf("base: %s", base); err != nil {
			return "", err
		}
	}
	var id string
	err = decodeMessages(resp.Body, defaultMaxMessageBytes, func(m *message) error {
		if err := log.WriteString(m.text()); err != nil {
			return err
		}
		if msg := m.errorMessage(); msg != "" {
			return b.streamError(log, "build", p.repo, msg)
		}
		if m.Aux != nil {
			if aux, ok := parseBuildAux(m.Aux); ok {
				id = aux
			}
		}
		return nil
	})
	if err != nil {
		return "", err
	}
	if id == "" {
		return "", b.streamError(log, "build", p.repo, "the daemon reported no image ID")
	}
	return id, nil
}

// streamError makes the *Error for a failure the daemon reported, after
// putting its message in the log as `docker build` does.
func (b *Builder) streamError(log *buildLog, op, repo, msg string) error {
	_ = log.Printf("%s", msg)
	return &Error{Op: op, Repository: repo, Message: msg, Tail: log.Tail()}
}

// parseBuildAux reads the image ID from the legacy builder's aux message,
// {"ID": "sha256:…"}.
func parseBuildAux(raw json.RawMessage) (string, bool) {
	var aux struct {
		ID string `json:"ID"`
	}
	if json.Unmarshal(raw, &aux) != nil {
		return "", false
	}
	if _, err := digest.Parse(aux.ID); err != nil {
		return "", false
	}
	return aux.ID, true
}

// tag tags the image id with each reference. It returns the references
// it tagged, the failed one excluded.
func (b *Builder) tag(ctx context.Context, id string, refs []string) ([]string, error) {
	var tagged []string
	for _, ref := range refs {
		if _, err := b.docker.ImageTag(ctx, client.ImageTagOptions{Source: id, Target: ref}); err != nil {
			return tagged, fmt.Errorf("docker: tagging %s: %w", ref, err)
		}
		tagged = append(tagged, ref)
	}
	return tagged, nil
}

// pushAll pushes each reference and returns the manifest digest, which
// they must all share.
func (b *Builder) pushAll(ctx context.Context, repo string, refs []string, log *buildLog) (string, error) {
	var dgst string
	for _, ref := range refs {
		d, err := b.push(ctx, repo, ref, log)
		if err != nil {
			return "", err
		}
		if dgst != "" && d != dgst {
			return "", fmt.Errorf("pushing %s gave digest %s, but an earlier tag gave %s", ref, d, dgst)
		}
		dgst = d
	}
	return dgst, nil
}

// push pushes one reference and returns the manifest digest, pushing
// again (twice at most, a moment apart) when the registry's answer was a
// gateway's: behind a load balancer, a replica that stops mid-push makes
// the balancer answer 502, 503 or 504, and another replica takes the next
// attempt. What was uploaded stays: the engine skips the blobs the
// registry has.
func (b *Builder) push(ctx context.Context, repo, ref string, log *buildLog) (string, error) {
	for attempt := 1; ; attempt++ {
		dgst, err := b.pushOnce(ctx, repo, ref, log)
		var be *Error
		if err == nil || attempt == 3 || !errors.As(err, &be) || !gatewayFailure(be.Message) {
			return dgst, err
		}
		_ = log.Printf("the registry answered %q; pushing %s again (attempt %d of 3)", be.Message, ref, attempt+1)
		select {
		case <-ctx.Done():
			return "", err
		case <-time.After(time.Duration(attempt) * time.Second):
		}
	}
}

// gatewayFailure tells a push that failed in front of the registry (a load
// balancer's 502, 503 or 504) from one the registry refused; the engine
// reports it only in words.
func gatewayFailure(msg string) bool {
	for _, s := range []string{"502 Bad Gateway", "503 Service Unavailable", "504 Gateway Timeout"} {
		if strings.Contains(msg, s) {
			return true
		}
	}
	return false
}

// pushOnce pushes one reference and returns the manifest digest from the
// push's aux message.
func (b *Builder) pushOnce(ctx context.Context, repo, ref string, log *buildLog) (string, error) {
	resp, err := b.docker.ImagePush(ctx, ref, client.ImagePushOptions{RegistryAuth: b.auth})
	if err != nil {
		return "", fmt.Errorf("docker: pushing %s: %w", ref, err)
	}
	defer resp.Close()
	var dgst string
	err = decodeMessages(resp, defaultMaxMessageBytes, func(m *message) error {
		if err := log.WriteString(m.text()); err != nil {
			return err
		}
		if msg := m.errorMessage(); msg != "" {
			return b.streamError(log, "push", repo, msg)
		}
		if m.Aux != nil {
			if d, ok := parsePushAux(m.Aux); ok {
				dgst = d
			}
		}
		return nil
	})
	if err != nil {
		return "", err
	}
	if dgst == "" {
		return "", b.streamError(log, "push", repo, "the daemon reported no digest for "+ref)
	}
	return dgst, nil
}

// parsePushAux reads the manifest digest from a push's aux message,
// {"Tag": "…", "Digest": "sha256:…", "Size": N}.
func parsePushAux(raw json.RawMessage) (string, bool) {
	var aux struct {
		Digest string `json:"Digest"`
	}
	if json.Unmarshal(raw, &aux) != nil {
		return "", false
	}
	d, err := digest.Parse(aux.Digest)
	if err != nil || d.Algorithm() != digest.SHA256 {
		return "", false
	}
	return d.String(), true
}

// untag removes the local tags of a build, even when ctx is done. The
// daemon deletes the image with its last tag, but keeps its parent layers
// as cache. A failure is noted in the log, not returned: the image is
// pushed by then, or the build failed for a better reason.
func (b *Builder) untag(ctx context.Context, refs []string, log *buildLog) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), cleanupTimeout)
	defer cancel()
	for _, ref := range refs {
		_, err := b.docker.ImageRemove(ctx, ref, client.ImageRemoveOptions{PruneChildren: false})
		if err != nil {
			_ = log.Printf("warning: removing the local tag %s: %v", ref, err)
		}
	}
}
