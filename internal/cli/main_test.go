package cli

import (
	"fmt"
	"os"
	"path/filepath"
	"testing"
)

// TestMain keeps the tests away from the user's own client configuration
// and credentials: a configuration file of the tests' own (in a folder
// that exists only if a test logs in without its own, which the tests do
// not: each sets SCANGATE_CLIENT_CONFIG), and no server or token from the
// environment. Nothing is made here: some tests kill a child process of
// this binary and check it left nothing behind.
func TestMain(m *testing.M) {
	if os.Getenv(ConfigEnv) == "" {
		os.Setenv(ConfigEnv, filepath.Join(os.TempDir(), fmt.Sprintf("scangate-cli-test-%d", os.Getpid()), "config.yaml"))
	}
	for _, v := range []string{"SCANGATE_SERVER", tokenEnv, "SCANGATE_CONTEXT", "SCANGATE_TOKEN_FILE", "SCANGATE_DATA_DIR", "SCANGATE_FORMAT"} {
		os.Unsetenv(v)
	}
	os.Exit(m.Run())
}
