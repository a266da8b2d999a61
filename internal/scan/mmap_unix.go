package scan

import (
	"errors"
	"os"
	"syscall"
	"unsafe"
)

// mapFile maps f read-only; an empty file is an empty slice.
func mapFile(f *os.File) ([]byte, error) {
	fi, err := f.Stat()
	if err != nil {
		return nil, err
	}
	if fi.Size() == 0 {
		return []byte{}, nil
	}
	if fi.Size() > 1<<40 || int64(int(fi.Size())) != fi.Size() {
		return nil, errors.New("too large to map")
	}
	return syscall.Mmap(int(f.Fd()), 0, int(fi.Size()), syscall.PROT_READ, syscall.MAP_SHARED)
}

// release gives back the pages of part of a read-only file mapping once
// read: they stay in the page cache, and count in the scan's memory again
// only if they are read again. part need not be page-aligned: the pages
// it touches are all given back, its neighbours' too, which only costs a
// fault if they are read again.
func release(part []byte) {
	if len(part) == 0 {
		return
	}
	page := uintptr(os.Getpagesize())
	start := uintptr(unsafe.Pointer(unsafe.SliceData(part)))
	end := start + uintptr(len(part))
	start &^= page - 1
	end = (end + page - 1) &^ (page - 1)
	syscall.Syscall(syscall.SYS_MADVISE, start, end-start, syscall.MADV_DONTNEED)
}

func unmap(data []byte) {
	if len(data) > 0 {
		syscall.Munmap(data)
	}
}
