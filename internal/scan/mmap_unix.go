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
func release(part []byte) { advise(part, syscall.MADV_DONTNEED) }

// madvPopulateRead is Linux's MADV_POPULATE_READ (5.14).
const madvPopulateRead = 22

// populate maps the pages of part of a read-only file mapping ahead of
// its readers, as a read would fill a buffer: the faults are taken here,
// in the read-ahead's own goroutine, not in the hasher's and the parser's.
// Where the kernel cannot (before 5.14, or past the file's end), the
// readers fault the pages in themselves.
func populate(part []byte) { advise(part, madvPopulateRead) }

// advise gives the kernel advice on the pages part touches; part need not
// be page-aligned.
func advise(part []byte, advice uintptr) {
	if len(part) == 0 {
		return
	}
	page := uintptr(os.Getpagesize())
	start := uintptr(unsafe.Pointer(unsafe.SliceData(part)))
	end := start + uintptr(len(part))
	start &^= page - 1
	end = (end + page - 1) &^ (page - 1)
	syscall.Syscall(syscall.SYS_MADVISE, start, end-start, advice)
}

func unmap(data []byte) {
	if len(data) > 0 {
		syscall.Munmap(data)
	}
}
