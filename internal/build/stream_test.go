package build

import (
	"bytes"
	"encoding/json"
	"errors"
	"strings"
	"testing"
)

// A build and a push as Docker Engine 20.10 streams them.
const (
	buildStream = `{"stream":"Step 1/3 : FROM scangate-buildtest/base:1\n"}
{"stream":" ---\u003e 4d638e3b0b67\n"}
{"stream":"Step 2/3 : COPY app.txt /app/\n"}
{"stream":" ---\u003e 9f1d2c3b4a59\n"}
{"stream":"Step 3/3 : RUN exit 3\n"}
{"stream":" ---\u003e Running in f89d6b80e435\n"}
{"errorDetail":{"code":3,"message":"The command '/bin/sh -c exit 3' returned a non-zero code: 3"},"error":"The command '/bin/sh -c exit 3' returned a non-zero code: 3"}
`
	pushStream = "{\"status\":\"The push refers to repository [127.0.0.1:5000/shop/api]\"}\r\n" +
		"{\"status\":\"Preparing\",\"progressDetail\":{},\"id\":\"4cea6eb4224a\"}\r\n" +
		"{\"status\":\"Pushing\",\"progressDetail\":{\"current\":512,\"total\":1024},\"progress\":\"[=====\\u003e     ]\",\"id\":\"4cea6eb4224a\"}\r\n" +
		"{\"status\":\"Pushed\",\"progressDetail\":{},\"id\":\"4cea6eb4224a\"}\r\n" +
		"{\"status\":\"latest: digest: sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef size: 528\"}\r\n" +
		"{\"progressDetail\":{},\"aux\":{\"Tag\":\"latest\",\"Digest\":\"sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef\",\"Size\":528}}\r\n"
)

func decodeAll(t *testing.T, stream string) ([]*message, string, error) {
	t.Helper()
	var msgs []*message
	var text strings.Builder
	err := decodeMessages(strings.NewReader(stream), defaultMaxMessageBytes, func(m *message) error {
		msgs = append(msgs, m)
		text.WriteString(m.text())
		return nil
	})
	return msgs, text.String(), err
}

func TestDecodeBuildStream(t *testing.T) {
	msgs, text, err := decodeAll(t, buildStream)
	if err != nil {
		t.Fatal(err)
	}
	if len(msgs) != 7 {
		t.Fatalf("got %d messages, want 7", len(msgs))
	}
	want := "Step 1/3 : FROM scangate-buildtest/base:1\n ---> 4d638e3b0b67\nStep 2/3 : COPY app.txt /app/\n"
	if !strings.HasPrefix(text, want) {
		t.Errorf("text = %q, want it to start with %q", text, want)
	}
	if got, want := msgs[6].errorMessage(), "The command '/bin/sh -c exit 3' returned a non-zero code: 3"; got != want {
		t.Errorf("error = %q, want %q", got, want)
	}
	for _, m := range msgs[:6] {
		if m.errorMessage() != "" {
			t.Errorf("%+v reports an error", m)
		}
	}
}

func TestDecodePushStream(t *testing.T) {
	msgs, text, err := decodeAll(t, pushStream)
	if err != nil {
		t.Fatal(err)
	}
	want := "The push refers to repository [127.0.0.1:5000/shop/api]\n" +
		"4cea6eb4224a: Preparing\n" +
		"4cea6eb4224a: Pushed\n" +
		"latest: digest: sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef size: 528\n"
	if text != want {
		t.Errorf("text = %q, want %q (progress updates left out)", text, want)
	}
	d, ok := parsePushAux(msgs[len(msgs)-1].Aux)
	if !ok || d != "sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef" {
		t.Errorf("push aux digest = %q, %v", d, ok)
	}
}

func TestParseAux(t *testing.T) {
	for _, c := range []struct {
		aux  string
		push bool
		ok   bool
	}{
		{`{"ID":"sha256:4d638e3b0b67c64c8c7549a6f680afacafb2c91e27e12f942294426b7c9126e2"}`, false, true},
		{`{"ID":"4d638e3b0b67"}`, false, false},
		{`{"ID":42}`, false, false},
		{`"sha256:4d638e3b0b67c64c8c7549a6f680afacafb2c91e27e12f942294426b7c9126e2"`, false, false},
		{`{"Tag":"latest","Digest":"sha256:4d638e3b0b67c64c8c7549a6f680afacafb2c91e27e12f942294426b7c9126e2","Size":528}`, true, true},
		{`{"Tag":"latest","Digest":"sha512:4d63","Size":528}`, true, false},
		{`{"Tag":"latest","Digest":"sha256:../../etc/passwd"}`, true, false},
		{`{"Tag":"latest"}`, true, false},
	} {
		parse := parseBuildAux
		if c.push {
			parse = parsePushAux
		}
		if _, ok := parse(json.RawMessage(c.aux)); ok != c.ok {
			t.Errorf("parse(%s) ok = %v, want %v", c.aux, ok, c.ok)
		}
	}
}

func TestDecodeMalformed(t *testing.T) {
	for _, stream := range []string{
		"not json\n",
		"{\"stream\":\"a\"}\n[1,2]\n",
		"{\"stream\":\"a\"} {\"stream\":\"b\"}\n",
		"{\"stream\":\"unterminated\n",
		"{\"stream\":42}\n",
		"null\n",
		"\"a string\"\n",
	} {
		if _, _, err := decodeAll(t, stream); err == nil {
			t.Errorf("%q: no error", stream)
		}
	}
}

func TestDecodeStopsAtFnError(t *testing.T) {
	stop := errors.New("stop")
	n := 0
	err := decodeMessages(strings.NewReader(buildStream), defaultMaxMessageBytes, func(*message) error {
		n++
		if n == 2 {
			return stop
		}
		return nil
	})
	if !errors.Is(err, stop) || n != 2 {
		t.Errorf("err = %v after %d messages, want stop after 2", err, n)
	}
}

// endless is a stream that never ends nor has a newline.
type endless struct{}

func (endless) Read(p []byte) (int, error) {
	for i := range p {
		p[i] = 'a'
	}
	return len(p), nil
}

func TestDecodeLineLimit(t *testing.T) {
	err := decodeMessages(endless{}, 1<<16, func(*message) error { return nil })
	if !errors.Is(err, errMessageTooLong) {
		t.Errorf("endless line: err = %v, want errMessageTooLong", err)
	}
	long := `{"stream":"` + strings.Repeat("x", 1<<16) + "\"}\n"
	err = decodeMessages(strings.NewReader(long), 1<<16, func(*message) error { return nil })
	if !errors.Is(err, errMessageTooLong) {
		t.Errorf("long line: err = %v, want errMessageTooLong", err)
	}
}

// FuzzDecodeMessages checks that the decoder never panics, refuses any
// line that is not a JSON object, and never hands on a line over its
// limit: what it keeps of a stream is bounded by the limit.
func FuzzDecodeMessages(f *testing.F) {
	f.Add([]byte(buildStream))
	f.Add([]byte(pushStream))
	f.Add([]byte("{}\n\n  \r\n{\"aux\":null}"))
	f.Add([]byte("{\"stream\":\"\\u001b[31mred\\r\\n\"}\n"))
	f.Add([]byte("{\"errorDetail\":{\"message\":\"x\"}}\n{"))
	f.Add([]byte(strings.Repeat("{\"status\":\"x\"}", 30)))
	f.Fuzz(func(t *testing.T, data []byte) {
		const limit = 256
		n := 0
		err := decodeMessages(bytes.NewReader(data), limit, func(m *message) error {
			n++
			_ = m.text()
			_ = m.errorMessage()
			parseBuildAux(m.Aux)
			parsePushAux(m.Aux)
			return nil
		})
		lines := 0
		for line := range bytes.SplitSeq(data, []byte("\n")) {
			if len(line) > limit && err == nil {
				t.Fatalf("a line of %d bytes passed a limit of %d", len(line), limit)
			}
			line = bytes.TrimSpace(line)
			if len(line) == 0 {
				continue
			}
			lines++
			if (line[0] != '{' || !json.Valid(line)) && err == nil {
				t.Fatalf("malformed line %q accepted", line)
			}
		}
		if err == nil && n != lines {
			t.Fatalf("%d messages for %d lines", n, lines)
		}
		if err != nil && len(err.Error()) > 1024 {
			t.Fatalf("error message of %d bytes", len(err.Error()))
		}
	})
}

func TestErrorMessage(t *testing.T) {
	e := &Error{Op: "build", Repository: "shop/api", Message: "boom", Tail: []string{"Step 1/1 : RUN boom", "boom"}}
	want := "build shop/api: boom\nlast 2 lines of the log:\n  Step 1/1 : RUN boom\n  boom"
	if e.Error() != want {
		t.Errorf("Error() = %q, want %q", e.Error(), want)
	}
	if errors.Unwrap(e) != nil {
		t.Errorf("a daemon-reported failure unwraps to %v", errors.Unwrap(e))
	}
}

// A push that failed in front of the registry (a load balancer whose
// replica stopped mid-push) is pushed again; one the registry refused is
// not.
func TestGatewayFailure(t *testing.T) {
	for _, c := range []struct {
		msg  string
		want bool
	}{
		{"received unexpected HTTP status: 502 Bad Gateway", true},
		{"received unexpected HTTP status: 503 Service Unavailable", true},
		{"received unexpected HTTP status: 504 Gateway Timeout", true},
		{"denied: tag shop/app:latest is immutable: pipeline app moves it", false},
		{"unauthorized: authentication required", false},
		{"received unexpected HTTP status: 500 Internal Server Error", false},
	} {
		if got := gatewayFailure(c.msg); got != c.want {
			t.Errorf("%q: %v, want %v", c.msg, got, c.want)
		}
	}
}
