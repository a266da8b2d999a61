package build

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
)

func TestLogCleansText(t *testing.T) {
	var out strings.Builder
	l := newBuildLog(&out, 1<<20)
	for _, s := range []string{
		"\x1b[31mred\x1b[0m plain\r\n",
		"tab\there\x07bell\x00nul\u0085c1\n",
		"progress 1\rprogress 2\r",
		"\nhalf a li", "ne\n",
		"\x1b", "[1mbold split\x1b[0m\n",
		"unicode ✓\n",
	} {
		if err := l.WriteString(s); err != nil {
			t.Fatal(err)
		}
	}
	want := "red plain\ntab\therebellnulc1\nprogress 1\nprogress 2\nhalf a line\nbold split\nunicode ✓\n"
	if out.String() != want {
		t.Errorf("log = %q, want %q", out.String(), want)
	}
	if tail := l.Tail(); !slices.Equal(tail, strings.Split(strings.TrimSuffix(want, "\n"), "\n")) {
		t.Errorf("tail = %q", tail)
	}
}

func TestLogCap(t *testing.T) {
	var out strings.Builder
	l := newBuildLog(&out, 100)
	for i := range 50 {
		if err := l.Printf("line %02d of the build", i); err != nil {
			t.Fatal(err)
		}
	}
	got := out.String()
	if !strings.HasPrefix(got, "line 00 of the build\nline 01 of the build\n") ||
		!strings.HasSuffix(got, "line 03 of the build\n[build log truncated: over 100 bytes]\n") {
		t.Errorf("capped log = %q", got)
	}
	tail := l.Tail()
	if len(tail) != tailLines || tail[0] != "line 30 of the build" || tail[tailLines-1] != "line 49 of the build" {
		t.Errorf("tail after the cap = %q, want lines 30 to 49", tail)
	}
}

func TestLogTailCutsLongLines(t *testing.T) {
	l := newBuildLog(nil, 1<<20)
	_ = l.WriteString(strings.Repeat("é", maxTailLineBytes) + "\nunfinished")
	tail := l.Tail()
	if len(tail) != 2 || tail[1] != "unfinished" {
		t.Fatalf("tail = %q", tail)
	}
	if !strings.HasSuffix(tail[0], "…") || len(tail[0]) > maxTailLineBytes+len("…") || !strings.HasPrefix(tail[0], "éé") {
		t.Errorf("long line kept as %q", tail[0])
	}
	if strings.ContainsRune(strings.TrimSuffix(tail[0], "…"), '\uFFFD') {
		t.Errorf("long line cut inside a rune: %q", tail[0])
	}
}

type failingWriter struct{ n int }

func (w *failingWriter) Write(p []byte) (int, error) {
	w.n++
	if w.n > 1 {
		return 0, errors.New("disk full")
	}
	return len(p), nil
}

func TestLogWriteError(t *testing.T) {
	l := newBuildLog(&failingWriter{}, 1<<20)
	if err := l.WriteString("one\n"); err != nil {
		t.Fatal(err)
	}
	err := l.WriteString("two\n")
	if err == nil || !strings.Contains(err.Error(), "disk full") {
		t.Fatalf("err = %v, want disk full", err)
	}
	if err2 := l.WriteString("three\n"); err2 == nil {
		t.Error("a later write hides the error")
	}
	if tail := l.Tail(); fmt.Sprint(tail) != "[one two three]" {
		t.Errorf("tail = %q", tail)
	}
}
