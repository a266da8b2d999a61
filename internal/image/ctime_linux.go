package image

import (
	"os"
	"syscall"
	"time"
)

// changeTime is a file's change time (ctime), which every write moves.
func changeTime(fi os.FileInfo) time.Time {
	if st, ok := fi.Sys().(*syscall.Stat_t); ok {
		return time.Unix(st.Ctim.Unix())
	}
	return time.Time{}
}
