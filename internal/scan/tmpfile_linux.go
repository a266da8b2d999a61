package scan

import (
	"os"

	"golang.org/x/sys/unix"
)

// unnamedTemp opens a file in dir that never has a name (O_TMPFILE): a
// scan killed at any moment leaves nothing behind, not even in the
// instant between creating a named file and unlinking it. Filesystems
// without O_TMPFILE refuse it, and the caller falls back to a named file
// unlinked at once.
func unnamedTemp(dir string) (*os.File, error) {
	return os.OpenFile(dir, os.O_RDWR|unix.O_TMPFILE, 0o600)
}
