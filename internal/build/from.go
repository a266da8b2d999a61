package build

import (
	"bytes"
	"errors"
	"fmt"
	"strings"

	"github.com/distribution/reference"
	"github.com/moby/buildkit/frontend/dockerfile/instructions"
	"github.com/moby/buildkit/frontend/dockerfile/parser"
	"github.com/moby/buildkit/frontend/dockerfile/shell"
)

// Dockerfiles are read with BuildKit's own parser (frontend/dockerfile),
// the one `docker build` uses, so that line continuations, the escape
// directive, ARGs before FROM and stage names mean here what they mean to
// the engine.

const (
	// MaxDockerfileBytes bounds a Dockerfile read for its base images.
	MaxDockerfileBytes = 1 << 20
	// MaxStages bounds a Dockerfile's FROM instructions.
	MaxStages = 100
	// MaxInstructions bounds a Dockerfile's instructions.
	MaxInstructions = 10000
)

// A Base is one FROM instruction of a Dockerfile.
type Base struct {
	// Line is the FROM instruction's first line (from 1); EndLine its last.
	Line, EndLine int
	// Image is the FROM's image as written, build arguments expanded
	// ("debian:12", "127.0.0.1:5000/base/debian@sha256:…").
	Image string
	// Ref is Image normalized (docker.io/library/debian:12); nil for a
	// stage or scratch.
	Ref reference.Named
	// Stage is set when Image names an earlier stage; Scratch for "scratch".
	Stage, Scratch bool
	// Platform and Name are the FROM's --platform flag and AS name.
	Platform, Name string
}

// Bases reads the FROM instructions of a Dockerfile, with build
// arguments given to the build overriding the ARG defaults before the
// first FROM, as the engine expands them.
func Bases(dockerfile []byte, buildArgs map[string]string) ([]Base, error) {
	if len(dockerfile) > MaxDockerfileBytes {
		return nil, fmt.Errorf("Dockerfile: %d bytes, more than the %d a build may have", len(dockerfile), MaxDockerfileBytes)
	}
	res, err := parser.Parse(bytes.NewReader(dockerfile))
	if err != nil {
		return nil, fmt.Errorf("Dockerfile: %w", err)
	}
	if n := len(res.AST.Children); n > MaxInstructions {
		return nil, fmt.Errorf("Dockerfile: %d instructions, more than the %d a build may have", n, MaxInstructions)
	}
	for _, node := range res.AST.Children {
		if len(node.Heredocs) > 0 {
			// The engine's classic builder knows no heredocs: it would read
			// the heredoc's lines as instructions, a FROM among them that
			// was never checked or pinned.
			return nil, fmt.Errorf("Dockerfile:%d: heredocs (<<EOF) are not supported by the engine's classic builder", node.StartLine)
		}
	}
	stages, metaArgs, err := instructions.Parse(res.AST, nil)
	if err != nil {
		return nil, fmt.Errorf("Dockerfile: %w", err)
	}
	if len(stages) > MaxStages {
		return nil, fmt.Errorf("Dockerfile: %d stages, more than the %d a build may have", len(stages), MaxStages)
	}
	env := map[string]string{}
	for _, a := range metaArgs {
		for _, kv := range a.Args {
			if v, ok := buildArgs[kv.Key]; ok {
				env[kv.Key] = v
			} else if kv.Value != nil {
				env[kv.Key] = *kv.Value
			} else {
				delete(env, kv.Key)
			}
		}
	}
	lex := shell.NewLex(res.EscapeToken)
	names := map[string]bool{}
	var out []Base
	for _, s := range stages {
		image, _, err := lex.ProcessWord(s.BaseName, envGetter(env))
		if err != nil {
			return nil, fmt.Errorf("Dockerfile:%d: FROM %s: %w", line(s.Location), s.BaseName, err)
		}
		b := Base{Image: image, Platform: s.Platform, Name: s.Name}
		if len(s.Location) > 0 {
			b.Line, b.EndLine = s.Location[0].Start.Line, s.Location[len(s.Location)-1].End.Line
		}
		switch {
		case image == "":
			return nil, fmt.Errorf("Dockerfile:%d: FROM %s names no image once its build arguments are expanded", b.Line, s.BaseName)
		case names[strings.ToLower(image)]:
			b.Stage = true
		case strings.EqualFold(image, "scratch"):
			b.Scratch = true
		default:
			ref, err := reference.ParseNormalizedNamed(image)
			if err != nil {
				return nil, fmt.Errorf("Dockerfile:%d: FROM %s: not an image reference: %w", b.Line, image, err)
			}
			b.Ref = reference.TagNameOnly(ref)
		}
		if s.Name != "" {
			names[strings.ToLower(s.Name)] = true
		}
		out = append(out, b)
	}
	return out, nil
}

func line(loc []parser.Range) int {
	if len(loc) == 0 {
		return 0
	}
	return loc[0].Start.Line
}

// envGetter is the ARG values a FROM line sees.
type envGetter map[string]string

func (e envGetter) Get(key string) (string, bool) { v, ok := e[key]; return v, ok }
func (e envGetter) Keys() []string {
	keys := make([]string, 0, len(e))
	for k := range e {
		keys = append(keys, k)
	}
	return keys
}

// Allowed says whether ref is in a registry, or under a repository
// prefix, that allow lists. Entries are "host[:port]" or
// "host[:port]/path/prefix"; Docker Hub is "docker.io".
func Allowed(ref reference.Named, allow []string) bool {
	domain, p := reference.Domain(ref), reference.Path(ref)
	for _, a := range allow {
		host, prefix, _ := strings.Cut(strings.TrimSuffix(a, "/"), "/")
		if host != domain {
			continue
		}
		if prefix == "" || p == prefix || strings.HasPrefix(p, prefix+"/") {
			return true
		}
	}
	return false
}

// errNotAllowed marks a FROM outside the allow-list.
var errNotAllowed = errors.New("not from an allowed registry")

// Pin rewrites the Dockerfile's FROM instructions that name images to the
// digests pinned gives them (keyed by Base.Image), keeping every other
// line and the line count, so that the engine's messages still name the
// user's lines. A FROM's --platform and AS name are kept.
func Pin(dockerfile []byte, bases []Base, pinned map[string]string) ([]byte, error) {
	lines := strings.SplitAfter(string(dockerfile), "\n")
	for _, b := range bases {
		d, ok := pinned[b.Image]
		if b.Ref == nil || !ok {
			continue
		}
		if b.Line < 1 || b.EndLine < b.Line || b.EndLine > len(lines) {
			return nil, fmt.Errorf("Dockerfile:%d: FROM %s: lines %d-%d are not in the file", b.Line, b.Image, b.Line, b.EndLine)
		}
		from := "FROM "
		if b.Platform != "" {
			from += "--platform=" + b.Platform + " "
		}
		from += b.Ref.Name() + "@" + d
		if b.Name != "" {
			from += " AS " + b.Name
		}
		lines[b.Line-1] = from + ending(lines[b.Line-1])
		for i := b.Line; i < b.EndLine; i++ {
			lines[i] = ending(lines[i])
		}
	}
	return []byte(strings.Join(lines, "")), nil
}

// ending is the line ending of one line of a Dockerfile: "\n", or none
// for a last line without one.
func ending(line string) string {
	if strings.HasSuffix(line, "\n") {
		return "\n"
	}
	return ""
}
