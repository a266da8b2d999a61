package source

import (
	"bytes"
	"testing"
)

// FuzzRewriteReport checks that any answer is either left alone (an
// error) or rewritten into well-formed pkt-lines.
func FuzzRewriteReport(f *testing.F) {
	var inner, outer bytes.Buffer
	writePkt(&inner, []byte("unpack ok\n"))
	writePkt(&inner, []byte("ng refs/heads/main pre-receive hook declined\n"))
	writePkt(&inner, nil)
	writePkt(&outer, append([]byte{2}, "remote: no\n"...))
	writePkt(&outer, append([]byte{1}, inner.Bytes()...))
	writePkt(&outer, nil)
	f.Add(outer.Bytes())
	f.Add(inner.Bytes())
	f.Add([]byte("0004"))
	f.Fuzz(func(t *testing.T, body []byte) {
		out, err := rewriteReport(body, map[string]string{"refs/heads/main": reasonForcePush})
		if err != nil {
			return
		}
		if _, err := readPkts(out); err != nil {
			t.Fatalf("rewritten answer %q: %v", out, err)
		}
	})
}

func TestRewriteReport(t *testing.T) {
	var inner, outer bytes.Buffer
	writePkt(&inner, []byte("unpack ok\n"))
	writePkt(&inner, []byte("ng refs/heads/main pre-receive hook declined\n"))
	writePkt(&inner, []byte("ng refs/heads/x pre-receive hook declined\n"))
	writePkt(&inner, nil)
	writePkt(&outer, append([]byte{1}, inner.Bytes()[:7]...)) // band 1 cut anywhere
	writePkt(&outer, append([]byte{2}, "remote: no\n"...))
	writePkt(&outer, append([]byte{1}, inner.Bytes()[7:]...))
	writePkt(&outer, nil)
	out, err := rewriteReport(outer.Bytes(), map[string]string{"refs/heads/main": reasonDeletion})
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"ng refs/heads/main " + reasonDeletion + "\n", "ng refs/heads/x " + reasonOther + "\n", "remote: no\n"} {
		if !bytes.Contains(out, []byte(want)) {
			t.Errorf("answer %q lacks %q", out, want)
		}
	}
}
