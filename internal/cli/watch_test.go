package cli

import (
	"bytes"
	"context"
	"strings"
	"testing"
	"time"
)

// watch prints a view when it changes, not when it stays the same, marks
// each new print with the time, and ends without an error when
// interrupted.
func TestWatchPrintsChanges(t *testing.T) {
	defer func(d time.Duration) { pollEvery = d }(pollEvery)
	pollEvery = time.Millisecond
	var out bytes.Buffer
	g := &globals{stdout: &out, format: formatTable}
	views := []string{"desired 1, running 0\n", "desired 1, running 0\n", "desired 1, running 1\n"}
	ctx, cancel := context.WithCancel(context.Background())
	n := 0
	err := g.watch(ctx, func() (any, string, error) {
		v := views[min(n, len(views)-1)]
		if n++; n > len(views) {
			cancel()
		}
		return nil, v, nil
	})
	if err != nil {
		t.Fatal(err)
	}
	got := out.String()
	if strings.Count(got, "running 0") != 1 || strings.Count(got, "running 1") != 1 || strings.Count(got, "\n--- ") != 1 {
		t.Errorf("watch printed:\n%s", got)
	}
}
