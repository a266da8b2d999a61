package cli

import (
	"fmt"
	"os"
	"path/filepath"
	"testing"
)

// TestMain keeps the tests away from the user's own client configuration
// and credentials: a configuration file of the tests' own, and no server
// or token from the environment.
func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "scangate-cli-test-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	os.Setenv(configEnv, filepath.Join(dir, "config.yaml"))
	for _, v := range []string{"SCANGATE_SERVER", tokenEnv, "SCANGATE_CONTEXT", "SCANGATE_TOKEN_FILE", "SCANGATE_DATA_DIR", "SCANGATE_FORMAT"} {
		os.Unsetenv(v)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}
