package source

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
)

// A push's notes are lines the pusher's git prints as "remote: …": what the
// push started ("scangate: execution 8fdc… started for shop-api"), or why
// it started nothing. OnPush adds them with Note; they are sent on git's
// side band 2 (progress) before the push's answer ends, when the client
// asked for a side band, as every git since 1.6 does.

// maxNotes bounds the notes of one push, and maxNote one note.
const (
	maxNotes = 32
	maxNote  = 500
)

type notesKey struct{}

// notes collects the notes of one push.
type notes struct {
	mu    sync.Mutex
	lines []string
}

// Note adds a line for the pusher to see, when ctx is a push's (the one
// OnPush is given); elsewhere (polls, webhooks) it does nothing.
func Note(ctx context.Context, format string, args ...any) {
	n, _ := ctx.Value(notesKey{}).(*notes)
	if n == nil {
		return
	}
	line := strings.Join(strings.Fields(fmt.Sprintf(format, args...)), " ")
	if len(line) > maxNote {
		line = line[:maxNote]
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	if len(n.lines) < maxNotes {
		n.lines = append(n.lines, line)
	}
}

// heldWriter passes a response through but holds back its last four
// bytes, the flush packet that ends receive-pack's answer, so that the
// notes can go before it. It drops Content-Length, which the notes would
// make wrong.
type heldWriter struct {
	http.ResponseWriter
	held []byte
}

func (h *heldWriter) WriteHeader(code int) {
	h.Header().Del("Content-Length")
	h.ResponseWriter.WriteHeader(code)
}

func (h *heldWriter) Write(p []byte) (int, error) {
	buf := append(h.held, p...)
	if len(buf) <= 4 {
		h.held = buf
		return len(p), nil
	}
	if _, err := h.ResponseWriter.Write(buf[:len(buf)-4]); err != nil {
		return 0, err
	}
	h.held = append([]byte(nil), buf[len(buf)-4:]...)
	return len(p), nil
}

// finish writes the notes as side-band 2 packets before the final flush,
// if the answer ends with one and the client asked for a side band; then
// what was held back.
func (h *heldWriter) finish(n *notes, sideBand bool) {
	if sideBand && string(h.held) == "0000" {
		n.mu.Lock()
		for _, line := range n.lines {
			payload := "\x02" + line + "\n"
			_, _ = fmt.Fprintf(h.ResponseWriter, "%04x%s", len(payload)+4, payload)
		}
		n.mu.Unlock()
	}
	_, _ = h.ResponseWriter.Write(h.held)
	h.held = nil
}

// Flush lets the CGI handler's flushes through.
func (h *heldWriter) Flush() {
	if f, ok := h.ResponseWriter.(http.Flusher); ok {
		f.Flush()
	}
}

// asksSideBand reads the capabilities on the first command of a push's
// request body (pkt-line "old new ref\x00caps") and rewinds the body.
func asksSideBand(body io.ReadSeeker) bool {
	defer body.Seek(0, io.SeekStart)
	br := bufio.NewReaderSize(body, 70000)
	var size [4]byte
	if _, err := io.ReadFull(br, size[:]); err != nil {
		return false
	}
	var n int
	if _, err := fmt.Sscanf(string(size[:]), "%04x", &n); err != nil || n < 4 {
		return false
	}
	line := make([]byte, n-4)
	if _, err := io.ReadFull(br, line); err != nil {
		return false
	}
	_, caps, ok := bytes.Cut(line, []byte{0})
	if !ok {
		return false
	}
	for _, c := range strings.Fields(string(caps)) {
		if c == "side-band-64k" || c == "side-band" {
			return true
		}
	}
	return false
}
