package image

import (
	"os"
	"syscall"
)

// mapArchive maps the archive read-only, or returns nil (it is then read
// with pread). A file cut short under the mapping faults on the pages
// past its new end: its readers guard against that (see Mapped).
func mapArchive(f *os.File, size int64) []byte {
	if size <= 0 || int64(int(size)) != size {
		return nil
	}
	data, err := syscall.Mmap(int(f.Fd()), 0, int(size), syscall.PROT_READ, syscall.MAP_SHARED)
	if err != nil {
		return nil
	}
	return data
}

func unmapArchive(data []byte) {
	if data != nil {
		syscall.Munmap(data)
	}
}
