package build

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
)

// defaultMaxMessageBytes bounds one line of the daemon's JSON message
// stream. Build output arrives in chunks far smaller than this; a longer
// line is a broken or hostile stream, not a log.
const defaultMaxMessageBytes = 1 << 20

// errMessageTooLong reports a line of the message stream over the limit.
var errMessageTooLong = errors.New("message longer than the limit")

// message is one line of the Docker Engine's JSON message stream, as its
// build and push endpoints write it. Daemons up to API 1.41 set both the
// error string and errorDetail; only one of them may be present.
type message struct {
	Stream         string          `json:"stream"`
	Status         string          `json:"status"`
	ID             string          `json:"id"`
	Progress       string          `json:"progress"`
	ProgressDetail *progressDetail `json:"progressDetail"`
	ErrorDetail    *errorDetail    `json:"errorDetail"`
	Error          string          `json:"error"`
	Aux            json.RawMessage `json:"aux"`
}

type progressDetail struct {
	Current int64 `json:"current"`
	Total   int64 `json:"total"`
}

type errorDetail struct {
	Code    int    `json:"code"`
	Message string `json:"message"`
}

// errorMessage returns the error the message reports, or "" if none.
func (m *message) errorMessage() string {
	if m.ErrorDetail != nil && m.ErrorDetail.Message != "" {
		return m.ErrorDetail.Message
	}
	if m.Error != "" {
		return m.Error
	}
	if m.ErrorDetail != nil {
		return fmt.Sprintf("error code %d", m.ErrorDetail.Code)
	}
	return ""
}

// text returns the message as `docker build` and `docker push` print it
// when not on a terminal: stream output as it is, a status line with its
// id, and nothing for progress updates and out-of-band data.
func (m *message) text() string {
	switch {
	case m.Stream != "":
		return m.Stream
	case m.Status == "" || m.hasProgress():
		return ""
	case m.ID != "":
		return m.ID + ": " + m.Status + "\n"
	default:
		return m.Status + "\n"
	}
}

func (m *message) hasProgress() bool {
	if m.Progress != "" {
		return true
	}
	return m.ProgressDetail != nil && (m.ProgressDetail.Current != 0 || m.ProgressDetail.Total != 0)
}

// decodeMessages reads the stream r, one JSON object a line, and calls fn
// for each message in order. Blank lines are skipped. A line longer than
// limit bytes, or one that is not exactly one JSON object of the message's
// shape, ends the stream with an error, as does an error from fn. Memory
// stays within about limit bytes whatever r holds.
func decodeMessages(r io.Reader, limit int, fn func(*message) error) error {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, min(limit, 64<<10)), limit)
	for n := 1; sc.Scan(); n++ {
		line := bytes.TrimSpace(sc.Bytes())
		if len(line) == 0 {
			continue
		}
		m, err := parseMessage(line)
		if err != nil {
			return fmt.Errorf("daemon message %d: %w", n, err)
		}
		if err := fn(m); err != nil {
			return err
		}
	}
	if err := sc.Err(); err != nil {
		if errors.Is(err, bufio.ErrTooLong) {
			err = fmt.Errorf("%w (%d bytes)", errMessageTooLong, limit)
		}
		return fmt.Errorf("reading the daemon's messages: %w", err)
	}
	return nil
}

// parseMessage decodes one line of the stream. json.Unmarshal refuses
// trailing data, so a line holds exactly one value; it must be an object.
func parseMessage(line []byte) (*message, error) {
	if line[0] != '{' {
		return nil, fmt.Errorf("not a JSON object: %s", quoteStart(line))
	}
	var m message
	if err := json.Unmarshal(line, &m); err != nil {
		return nil, fmt.Errorf("malformed: %w", err)
	}
	return &m, nil
}

// quoteStart quotes the start of a malformed line for an error message.
func quoteStart(line []byte) string {
	const n = 40
	if len(line) > n {
		return fmt.Sprintf("%q…", line[:n])
	}
	return fmt.Sprintf("%q", line)
}

// Error is a build or a push that the Docker Engine reported as failed, in
// its message stream. It carries the last lines of the build log, which is
// where the reason usually is.
type Error struct {
	Op         string   // "build" or "push"
	Repository string   // the image repository, e.g. "shop/api"
	Message    string   // the daemon's error message
	Tail       []string // the last lines of the log, oldest first
	// Err is why the build was stopped, when it was: the timeout, or the
	// cancellation of its context. It is nil for a failure the daemon
	// reported.
	Err error
}

// Unwrap returns e.Err.
func (e *Error) Unwrap() error {
	return e.Err
}

// Error returns the daemon's message followed by the tail of the log.
func (e *Error) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s %s: %s", e.Op, e.Repository, e.Message)
	if len(e.Tail) > 0 {
		fmt.Fprintf(&b, "\nlast %d lines of the log:", len(e.Tail))
		for _, l := range e.Tail {
			b.WriteString("\n  ")
			b.WriteString(l)
		}
	}
	return b.String()
}
