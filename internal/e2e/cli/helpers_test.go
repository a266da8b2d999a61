package cli_test

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"testing"

	"github.com/scangate/scangate/internal/cli"
)

// result is what one scangate command printed and its exit code.
type result struct {
	stdout, stderr string
	code           int
}

// run runs scangate as a user would, with its own data directory (its
// config of servers and contexts when a client).
func run(t *testing.T, dataDir string, args ...string) result {
	t.Helper()
	var out, errb bytes.Buffer
	code := cli.Main(context.Background(), append([]string{"--data-dir", dataDir}, args...), &out, &errb)
	return result{out.String(), errb.String(), code}
}

func (r result) must(t *testing.T) result {
	t.Helper()
	if r.code != 0 {
		t.Fatalf("exit %d\nstdout: %s\nstderr: %s", r.code, r.stdout, r.stderr)
	}
	return r
}

// writeFile writes name in dir and returns its path.
func writeFile(t *testing.T, dir, name, content string) string {
	t.Helper()
	path := filepath.Join(dir, name)
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}
