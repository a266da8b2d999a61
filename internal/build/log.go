package build

import (
	"fmt"
	"io"
	"unicode/utf8"
)

const (
	// defaultMaxLogBytes caps the log written out for one build.
	defaultMaxLogBytes = 8 << 20
	// tailLines is how many last lines of the log an Error carries.
	tailLines = 20
	// maxTailLineBytes cuts long lines kept for the tail.
	maxTailLineBytes = 512
	// maxEscapeBytes ends an escape sequence that runs on too long.
	maxEscapeBytes = 32
)

// buildLog is the log of one build as plain text: what the daemon says,
// without terminal control characters, written through to w up to a size
// cap, with its last lines kept for error messages whatever the cap.
type buildLog struct {
	w       io.Writer
	limit   int64
	written int64
	full    bool  // the cap was reached and the log said so
	err     error // the first error writing to w

	esc    int  // 0, or 1 after ESC, or 2+ inside a CSI sequence
	lastCR bool // the last character was a carriage return

	line    []byte // the current line, cut at maxTailLineBytes
	lineCut bool
	tail    []string // the last complete lines, a ring
	head    int      // where the oldest line of a full ring is
}

// newBuildLog returns a log that writes at most limit bytes to w (nil
// for none), then one line saying the rest was left out.
func newBuildLog(w io.Writer, limit int64) *buildLog {
	if w == nil {
		w = io.Discard
	}
	return &buildLog{w: w, limit: limit, tail: make([]string, 0, tailLines)}
}

// WriteString adds text from the daemon to the log. It returns the first
// error from the underlying writer; the tail is kept even after one.
func (l *buildLog) WriteString(s string) error {
	clean := l.clean(s)
	for _, c := range clean {
		l.keep(c)
	}
	l.out(clean)
	return l.err
}

// Printf adds a line of scangate's own to the log.
func (l *buildLog) Printf(format string, args ...any) error {
	return l.WriteString(fmt.Sprintf(format, args...) + "\n")
}

// clean removes terminal escape sequences and control characters but tab
// and newline; a carriage return, alone or before a newline, ends a line.
func (l *buildLog) clean(s string) []byte {
	out := make([]byte, 0, len(s))
	for _, r := range s {
		cr := l.lastCR
		l.lastCR = false
		switch {
		case l.esc == 1:
			l.esc = 0
			if r == '[' {
				l.esc = 2
			}
		case l.esc >= 2:
			l.esc++
			if (r >= 0x40 && r <= 0x7e) || l.esc > maxEscapeBytes {
				l.esc = 0
			}
		case r == 0x1b:
			l.esc = 1
		case r == '\r':
			l.lastCR = true
			out = append(out, '\n')
		case r == '\n':
			if !cr {
				out = append(out, '\n')
			}
		case r == '\t' || (r >= 0x20 && r != 0x7f && (r < 0x80 || r > 0x9f)):
			out = utf8.AppendRune(out, r)
		}
	}
	return out
}

// keep adds one byte of clean text to the tail.
func (l *buildLog) keep(c byte) {
	if c != '\n' {
		if len(l.line) < maxTailLineBytes {
			l.line = append(l.line, c)
		} else {
			l.lineCut = true
		}
		return
	}
	s := string(l.line)
	if l.lineCut {
		s = string(cutUTF8(l.line)) + "…"
	}
	l.line, l.lineCut = l.line[:0], false
	if len(l.tail) < tailLines {
		l.tail = append(l.tail, s)
		return
	}
	l.tail[l.head] = s
	l.head = (l.head + 1) % tailLines
}

// cutUTF8 drops a rune cut in two at the end of b.
func cutUTF8(b []byte) []byte {
	for i := len(b) - 1; i >= 0 && i >= len(b)-utf8.UTFMax; i-- {
		if utf8.RuneStart(b[i]) {
			if !utf8.FullRune(b[i:]) {
				return b[:i]
			}
			break
		}
	}
	return b
}

// out writes clean text to w within the cap. The part that passes the cap
// is cut at its last full line and replaced by a note.
func (l *buildLog) out(clean []byte) {
	if l.full || l.err != nil || len(clean) == 0 {
		return
	}
	if l.written+int64(len(clean)) <= l.limit {
		l.write(clean)
		return
	}
	fit := clean[:max(l.limit-l.written, 0)]
	for len(fit) > 0 && fit[len(fit)-1] != '\n' {
		fit = fit[:len(fit)-1]
	}
	l.write(fit)
	l.full = true
	l.write(fmt.Appendf(nil, "[build log truncated: over %d bytes]\n", l.limit))
}

func (l *buildLog) write(p []byte) {
	if l.err != nil || len(p) == 0 {
		return
	}
	n, err := l.w.Write(p)
	l.written += int64(n)
	if err != nil {
		l.err = fmt.Errorf("writing the build log: %w", err)
	}
}

// Tail returns the last lines of the log, oldest first, the current
// unfinished line included.
func (l *buildLog) Tail() []string {
	lines := make([]string, 0, tailLines+1)
	lines = append(lines, l.tail[l.head:]...)
	lines = append(lines, l.tail[:l.head]...)
	if len(l.line) > 0 {
		lines = append(lines, string(cutUTF8(l.line)))
	}
	if len(lines) > tailLines {
		lines = lines[len(lines)-tailLines:]
	}
	return lines
}
