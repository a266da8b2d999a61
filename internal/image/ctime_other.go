//go:build !linux

package image

import (
	"os"
	"time"
)

// changeTime is not read here: unchanged goes by size and modification
// time alone.
func changeTime(os.FileInfo) time.Time { return time.Time{} }
