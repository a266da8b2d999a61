package source

import (
	"bytes"
	"context"
	"fmt"
	"net/http/httptest"
	"strings"
	"testing"
)

// The side band is found in the first command's capabilities, and only
// there; the body is rewound for git.
func TestAsksSideBand(t *testing.T) {
	line := func(s string) string { return fmt.Sprintf("%04x%s", len(s)+4, s) }
	zero := strings.Repeat("0", 40)
	for body, want := range map[string]bool{
		line(zero+" "+zero+" refs/heads/main\x00report-status side-band-64k agent=git/2.39\n") + "0000": true,
		line(zero+" "+zero+" refs/heads/main\x00report-status\n") + "0000":                              false,
		line(zero+" "+zero+" refs/heads/main\n") + "0000":                                               false,
		"zzzz": false, "": false, "0003": false,
	} {
		r := bytes.NewReader([]byte(body))
		if got := asksSideBand(r); got != want {
			t.Errorf("asksSideBand(%q) = %v, want %v", body, got, want)
		}
		if pos, _ := r.Seek(0, 1); pos != 0 {
			t.Errorf("asksSideBand(%q) left the body at %d", body, pos)
		}
	}
}

// Notes go as side-band 2 packets before the answer's final flush, and
// only then; elsewhere the answer passes unchanged.
func TestHeldWriterNotes(t *testing.T) {
	n := &notes{}
	ctx := context.WithValue(context.Background(), notesKey{}, n)
	Note(ctx, "scangate: execution %s started for %s", "abc", "shop")
	Note(context.Background(), "nobody hears this")
	rec := httptest.NewRecorder()
	hw := &heldWriter{ResponseWriter: rec}
	hw.Write([]byte("0010\x01000eunpack ok"))
	hw.Write([]byte("00"))
	hw.Write([]byte("00"))
	hw.finish(n, true)
	want := "0010\x01000eunpack ok" + "002e\x02scangate: execution abc started for shop\n" + "0000"
	if rec.Body.String() != want {
		t.Errorf("answer %q, want %q", rec.Body.String(), want)
	}
	rec = httptest.NewRecorder()
	hw = &heldWriter{ResponseWriter: rec}
	hw.Write([]byte("000eunpack ok\n0000"))
	hw.finish(n, false)
	if rec.Body.String() != "000eunpack ok\n0000" {
		t.Errorf("without a side band: %q", rec.Body.String())
	}
}

// FuzzAsksSideBand: any request body, however broken, gives an answer and
// rewinds the body; nothing panics.
func FuzzAsksSideBand(f *testing.F) {
	f.Add([]byte("0000"))
	f.Add([]byte("0094" + strings.Repeat("0", 40) + " " + strings.Repeat("0", 40) + " refs/heads/main\x00report-status side-band-64k\n0000"))
	f.Add([]byte("ffff"))
	f.Fuzz(func(t *testing.T, body []byte) {
		r := bytes.NewReader(body)
		asksSideBand(r)
		if pos, _ := r.Seek(0, 1); pos != 0 {
			t.Errorf("body left at %d", pos)
		}
	})
}
