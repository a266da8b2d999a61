//go:build !linux

package scan

import (
	"errors"
	"os"
)

// unnamedTemp needs Linux's O_TMPFILE; elsewhere the caller makes a named
// file and unlinks it at once.
func unnamedTemp(string) (*os.File, error) { return nil, errors.ErrUnsupported }
