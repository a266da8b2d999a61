package build_test

import (
	"strings"
	"testing"

	"github.com/distribution/reference"

	"github.com/scangate/scangate/internal/build"
)

func TestBases(t *testing.T) {
	df := "# escape=`\n" +
		"ARG REG=127.0.0.1:5000\n" +
		"ARG TAG=12\n" +
		"FROM --platform=linux/amd64 ${REG}/base/debian:${TAG} AS build\n" +
		"RUN echo `\n  building\n" +
		"FROM `\n  scratch\n" +
		"FROM build AS again\n" +
		"FROM ${REG}/base/distroless@sha256:" + strings.Repeat("a", 64) + "\n" +
		"FROM debian\n"
	bases, err := build.Bases([]byte(df), map[string]string{"TAG": "12-old"})
	if err != nil {
		t.Fatal(err)
	}
	want := []struct {
		line, end      int
		image, ref     string
		stage, scratch bool
	}{
		{4, 4, "127.0.0.1:5000/base/debian:12-old", "127.0.0.1:5000/base/debian:12-old", false, false},
		{7, 8, "scratch", "", false, true},
		{9, 9, "build", "", true, false},
		{10, 10, "127.0.0.1:5000/base/distroless@sha256:" + strings.Repeat("a", 64), "127.0.0.1:5000/base/distroless@sha256:" + strings.Repeat("a", 64), false, false},
		{11, 11, "debian", "docker.io/library/debian:latest", false, false},
	}
	if len(bases) != len(want) {
		t.Fatalf("%d bases, want %d: %+v", len(bases), len(want), bases)
	}
	for i, w := range want {
		b := bases[i]
		ref := ""
		if b.Ref != nil {
			ref = b.Ref.String()
		}
		if b.Line != w.line || b.EndLine != w.end || b.Image != w.image || ref != w.ref || b.Stage != w.stage || b.Scratch != w.scratch {
			t.Errorf("base %d = %+v (ref %s), want %+v", i, b, ref, w)
		}
	}
	if bases[0].Platform != "linux/amd64" || bases[0].Name != "build" {
		t.Errorf("first base's platform %q and name %q", bases[0].Platform, bases[0].Name)
	}

	// Pinning keeps every other line, and the line count.
	pinned, err := build.Pin([]byte(df), bases, map[string]string{
		bases[0].Image: "sha256:" + strings.Repeat("b", 64),
		bases[4].Image: "sha256:" + strings.Repeat("c", 64),
	})
	if err != nil {
		t.Fatal(err)
	}
	got := strings.Split(string(pinned), "\n")
	if n := strings.Count(df, "\n"); len(got)-1 != n {
		t.Errorf("pinned has %d lines, want %d", len(got)-1, n)
	}
	for i, w := range map[int]string{
		3:  "FROM --platform=linux/amd64 127.0.0.1:5000/base/debian@sha256:" + strings.Repeat("b", 64) + " AS build",
		4:  "RUN echo `",
		10: "FROM docker.io/library/debian@sha256:" + strings.Repeat("c", 64),
	} {
		if got[i] != w {
			t.Errorf("line %d = %q, want %q", i+1, got[i], w)
		}
	}
}

func TestBasesErrors(t *testing.T) {
	for _, tc := range []struct{ name, df, want string }{
		{"no image once expanded", "ARG BASE\nFROM ${BASE}\n", "Dockerfile:2: FROM ${BASE} names no image"},
		{"bad reference", "FROM Upper/Case:1\n", "Dockerfile:1: FROM Upper/Case:1: not an image reference"},
		{"no FROM", "RUN true\n", "Dockerfile"},
		{"too large", "FROM scratch\n#" + strings.Repeat("x", build.MaxDockerfileBytes), "more than the"},
		{"too many stages", strings.Repeat("FROM scratch\n", build.MaxStages+1), "stages, more than"},
		{"too many instructions", "FROM scratch\n" + strings.Repeat("LABEL a=b\n", build.MaxInstructions), "instructions, more than"},
		// The classic builder would read the heredoc's FROM as an
		// instruction of its own, unchecked and unpinned.
		{"a heredoc", "FROM 127.0.0.1:5000/base:1\nRUN <<EOF\nFROM evil.example/x:1\nEOF\n", "Dockerfile:2: heredocs (<<EOF) are not supported"},
	} {
		if _, err := build.Bases([]byte(tc.df), nil); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: err = %v, want one containing %q", tc.name, err, tc.want)
		}
	}
}

func TestAllowed(t *testing.T) {
	allow := []string{"127.0.0.1:5000", "registry.example/trusted/", "docker.io/library"}
	for ref, want := range map[string]bool{
		"127.0.0.1:5000/anything/at/all:1":   true,
		"127.0.0.1:5001/base:1":              false,
		"registry.example/trusted/base:1":    true,
		"registry.example/trusted:1":         true,
		"registry.example/trustedevil/x:1":   false,
		"registry.example/other/base:1":      false,
		"debian:12":                          true,
		"someone/debian:12":                  false,
		"evil.example/127.0.0.1:5000/base:1": false,
	} {
		r, err := reference.ParseNormalizedNamed(ref)
		if err != nil {
			if !want {
				continue
			}
			t.Fatal(err)
		}
		if got := build.Allowed(r, allow); got != want {
			t.Errorf("Allowed(%s) = %v, want %v", ref, got, want)
		}
	}
}

// FuzzBases: any Dockerfile is read or refused with an error, never a
// panic, and pinning what was read keeps its line count.
func FuzzBases(f *testing.F) {
	for _, s := range []string{
		"FROM debian:12\nRUN true\n", "# escape=`\nFROM `\n scratch\n", "ARG A=b\nFROM ${A:-c}/d AS e\nFROM e\n",
		"FROM --platform=$BUILDPLATFORM x AS y\n", "FROM\n", "from a as b\nFROM B\n", "FROM a@sha256:" + strings.Repeat("0", 64),
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, df []byte) {
		bases, err := build.Bases(df, map[string]string{"A": "z"})
		if err != nil {
			return
		}
		pins := map[string]string{}
		for _, b := range bases {
			pins[b.Image] = "sha256:" + strings.Repeat("1", 64)
		}
		out, err := build.Pin(df, bases, pins)
		if err != nil {
			return
		}
		if strings.Count(string(out), "\n") != strings.Count(string(df), "\n") {
			t.Fatalf("pinning changed the line count:\n%q\n%q", df, out)
		}
	})
}
