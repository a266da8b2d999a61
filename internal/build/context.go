package build

import (
	"archive/tar"
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"io"
	"path"
	"slices"
	"strings"

	"github.com/distribution/reference"
	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/moby/patternmatcher"
	"github.com/moby/patternmatcher/ignorefile"
)

// The context's .dockerignore is applied here, as the docker CLI applies
// it before it sends a context (the engine's legacy builder does not): a
// git archive of the commit holds every file, and an ignored secret must
// not reach COPY. Git writes .dockerignore before other files (it sorts
// by name); a file it excludes that came first fails the build rather
// than slip through.
//
// A build never takes a base image from whatever the engine happens to
// hold under a name: each FROM is checked against the allow-list, resolved
// to a digest in its registry, and the engine is given a Dockerfile whose
// FROM lines name those digests. The user's Dockerfile stays in the
// context as it was; the pinned one is added beside it under a name of
// scangate's own, which a .dockerignore keeps out of the image, as `docker
// build -f -` adds a Dockerfile from outside the context.

// pinnedPrefix starts the name of the pinned Dockerfile in the context.
const pinnedPrefix = ".scangate-dockerfile-"

// pinned is what pinning a build's context found.
type pinned struct {
	dockerfile string   // the pinned Dockerfile's name in the context
	bases      []string // "IMAGE -> NAME@DIGEST", for the log
}

// pinContext copies the build context tar from in to the returned reader,
// and at its end adds the pinned Dockerfile and a .dockerignore that
// leaves it out. The result arrives on done once the copy ends: an error
// there (a FROM outside the allow-list, a base that cannot be resolved, a
// context with no Dockerfile) is the build's error.
func (b *Builder) pinContext(ctx context.Context, in io.Reader, p *plan) (io.Reader, string, <-chan pinResult) {
	var rnd [8]byte
	_, _ = rand.Read(rnd[:])
	dfName := pinnedPrefix + hex.EncodeToString(rnd[:])
	pr, pw := io.Pipe()
	done := make(chan pinResult, 1)
	go func() {
		res, err := b.copyPinned(ctx, in, pw, p, dfName)
		res.err = err
		pw.CloseWithError(err)
		done <- res
	}()
	return pr, dfName, done
}

type pinResult struct {
	pinned
	err error
}

func (b *Builder) copyPinned(ctx context.Context, in io.Reader, out io.Writer, p *plan, dfName string) (pinResult, error) {
	want := path.Clean(p.req.Dockerfile)
	tr, tw := tar.NewReader(in), tar.NewWriter(out)
	var dockerfile, ignore []byte
	var excludes *patternmatcher.PatternMatcher
	var before []string // files written before .dockerignore was read
	found := false
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			return pinResult{}, fmt.Errorf("build context: %w", err)
		}
		clean := path.Clean(strings.TrimPrefix(h.Name, "./"))
		if strings.HasPrefix(clean, pinnedPrefix) {
			continue // a name of scangate's own, never the user's
		}
		if clean == ".dockerignore" && h.Typeflag == tar.TypeReg {
			if ignore, err = readLimited(tr, MaxDockerfileBytes); err != nil {
				return pinResult{}, fmt.Errorf("build context: .dockerignore: %w", err)
			}
			if excludes, err = readIgnore(ignore, before); err != nil {
				return pinResult{}, err
			}
			continue // written at the end, with the pinned Dockerfile added
		}
		if excludes != nil && clean != want {
			// The Dockerfile is always sent, as the docker CLI sends it.
			if skip, err := excludes.MatchesOrParentMatches(clean); err != nil {
				return pinResult{}, fmt.Errorf("build context: .dockerignore: %w", err)
			} else if skip {
				continue
			}
		} else if excludes == nil && clean != want {
			before = append(before, clean)
		}
		if err := tw.WriteHeader(h); err != nil {
			return pinResult{}, err
		}
		if clean == want && h.Typeflag == tar.TypeReg {
			if dockerfile, err = readLimited(tr, MaxDockerfileBytes); err != nil {
				return pinResult{}, fmt.Errorf("build context: %s: %w", want, err)
			}
			found = true
			if _, err := tw.Write(dockerfile); err != nil {
				return pinResult{}, err
			}
			continue
		}
		if _, err := io.Copy(tw, tr); err != nil {
			return pinResult{}, err
		}
	}
	if !found {
		return pinResult{}, fmt.Errorf("the build context has no %s", want)
	}
	pinnedFile, res, err := b.pin(ctx, dockerfile, p)
	if err != nil {
		return pinResult{}, err
	}
	res.dockerfile = dfName
	if len(ignore) > 0 && !bytes.HasSuffix(ignore, []byte("\n")) {
		ignore = append(ignore, '\n')
	}
	ignore = append(ignore, dfName+"\n"...)
	for _, f := range []struct {
		name string
		data []byte
	}{{dfName, pinnedFile}, {".dockerignore", ignore}} {
		if err := tw.WriteHeader(&tar.Header{Name: f.name, Mode: 0o644, Size: int64(len(f.data)), Typeflag: tar.TypeReg}); err != nil {
			return pinResult{}, err
		}
		if _, err := tw.Write(f.data); err != nil {
			return pinResult{}, err
		}
	}
	return res, tw.Close()
}

// readIgnore reads a .dockerignore; a file it excludes among those
// already sent is an error.
func readIgnore(data []byte, before []string) (*patternmatcher.PatternMatcher, error) {
	patterns, err := ignorefile.ReadAll(bytes.NewReader(data))
	if err != nil {
		return nil, fmt.Errorf("build context: .dockerignore: %w", err)
	}
	pm, err := patternmatcher.New(patterns)
	if err != nil {
		return nil, fmt.Errorf("build context: .dockerignore: %w", err)
	}
	for _, name := range before {
		if skip, _ := pm.MatchesOrParentMatches(name); skip {
			return nil, fmt.Errorf("build context: %s comes before .dockerignore, which excludes it; rename it so that it sorts after", name)
		}
	}
	return pm, nil
}

func readLimited(r io.Reader, n int64) ([]byte, error) {
	data, err := io.ReadAll(io.LimitReader(r, n+1))
	if err == nil && int64(len(data)) > n {
		err = fmt.Errorf("larger than %d bytes", n)
	}
	return data, err
}

// pin checks each FROM against the allow-list and resolves it to a digest.
func (b *Builder) pin(ctx context.Context, dockerfile []byte, p *plan) ([]byte, pinResult, error) {
	args := map[string]string{}
	for k, v := range p.buildArgs {
		if v != nil {
			args[k] = *v
		}
	}
	bases, err := Bases(dockerfile, args)
	if err != nil {
		return nil, pinResult{}, err
	}
	digests := map[string]string{}
	var res pinResult
	for _, base := range bases {
		if base.Ref == nil {
			continue
		}
		if !Allowed(base.Ref, b.opts.BaseRegistries) {
			return nil, pinResult{}, fmt.Errorf("%s:%d: FROM %s is %w (%s); push the image there, or ask an admin to allow its registry (--build-registries)",
				p.req.Dockerfile, base.Line, base.Image, errNotAllowed, strings.Join(b.opts.BaseRegistries, ", "))
		}
		if _, ok := digests[base.Image]; ok {
			continue
		}
		d, err := b.resolve(ctx, base.Ref)
		if err != nil {
			return nil, pinResult{}, fmt.Errorf("%s:%d: FROM %s: %w", p.req.Dockerfile, base.Line, base.Image, err)
		}
		digests[base.Image] = d
		res.bases = append(res.bases, base.Image+" -> "+base.Ref.Name()+"@"+d)
	}
	out, err := Pin(dockerfile, bases, digests)
	return out, res, err
}

// resolve finds the digest a base image's tag (or digest) names in its
// registry, with scangate's own credentials for its own registry.
func (b *Builder) resolve(ctx context.Context, ref reference.Named) (string, error) {
	if c, ok := ref.(reference.Canonical); ok {
		// A digest names its content already; the registry must still
		// have it, or the pull would fall back to nothing.
		if _, err := b.head(ctx, c.String(), reference.Domain(ref)); err != nil {
			return "", err
		}
		return c.Digest().String(), nil
	}
	return b.head(ctx, ref.String(), reference.Domain(ref))
}

func (b *Builder) head(ctx context.Context, s, domain string) (string, error) {
	r, err := name.ParseReference(s, name.StrictValidation)
	if err != nil {
		return "", fmt.Errorf("not an image reference: %w", err)
	}
	opts := []remote.Option{remote.WithContext(ctx)}
	if domain == b.opts.Registry && (b.opts.Username != "" || b.opts.Password != "") {
		opts = append(opts, remote.WithAuth(&authn.Basic{Username: b.opts.Username, Password: b.opts.Password}))
	} else {
		opts = append(opts, remote.WithAuthFromKeychain(authn.DefaultKeychain))
	}
	if b.opts.Transport != nil {
		opts = append(opts, remote.WithTransport(b.opts.Transport))
	}
	desc, err := remote.Head(r, opts...)
	if err != nil {
		return "", fmt.Errorf("not found in its registry: %w", err)
	}
	return desc.Digest.String(), nil
}

// networks a build's RUN steps may use: Docker's default bridge (which
// cannot reach the host's loopback, where scangate listens by default) or
// none. Host networking is never offered: it would let a Dockerfile reach
// every service on the build machine's loopback.
var networks = []string{"", NetworkBridge, NetworkNone}

// Build networks.
const (
	NetworkBridge = "bridge"
	NetworkNone   = "none"
)

func checkNetwork(n string) error {
	if !slices.Contains(networks, n) {
		return fmt.Errorf("build network %q: want %s or %s (host networking is not offered)", n, NetworkBridge, NetworkNone)
	}
	return nil
}
