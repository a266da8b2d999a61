package server_test

import (
	"bufio"
	"bytes"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/scangate/scangate/internal/imagetest"
	sgserver "github.com/scangate/scangate/internal/server"
	"github.com/scangate/scangate/internal/servertest"
)

// 300 connections that send their headers a byte at a time do not stop a
// normal request from being served, with the connection cap at 100: the
// cap closes the oldest connections that serve no request.
func TestSlowConnectionsDoNotHoldTheServer(t *testing.T) {
	s := servertest.Start(t, servertest.Options{Feeds: []string{}, Config: sgserver.Config{Limits: sgserver.Limits{MaxConnections: 100}}})
	const slow = 300
	var closed atomic.Int32
	stop := make(chan struct{})
	var wg sync.WaitGroup
	defer func() { close(stop); wg.Wait() }()
	for range slow {
		c, err := net.Dial("tcp", s.Addr)
		if err != nil {
			t.Fatalf("dial: %v", err)
		}
		wg.Add(2)
		go func() { // the server closing it ends the read
			defer wg.Done()
			_, _ = io.Copy(io.Discard, c)
			closed.Add(1)
		}()
		go func() {
			defer wg.Done()
			defer c.Close()
			for _, b := range []byte("GET /healthz HTTP/1.1\r\nHost: x\r\nX-Slow: " + strings.Repeat("a", 1000)) {
				if _, err := c.Write([]byte{b}); err != nil {
					return
				}
				select {
				case <-stop:
					return
				case <-time.After(100 * time.Millisecond):
				}
			}
		}()
	}
	resp, body := do(t, &http.Client{Timeout: time.Minute}, http.MethodGet, "http://"+s.Addr+"/readyz", "", nil, nil)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("a normal request among %d slow connections: %d %s", slow, resp.StatusCode, body)
	}
	// Past the cap, each new connection closed an old one that was still
	// sending its headers.
	waitUntil(t, time.Minute, "the slow connections past the cap to be closed", func() bool { return closed.Load() >= slow+1-100 })
}

// slowReader gives chunk bytes of data at a time, waiting every between
// them, so that a transfer lasts longer than the server's timeouts.
type slowReader struct {
	data  []byte
	chunk int
	every time.Duration
}

func (r *slowReader) Read(p []byte) (int, error) {
	if len(r.data) == 0 {
		return 0, io.EOF
	}
	time.Sleep(r.every)
	n := copy(p[:min(len(p), r.chunk)], r.data)
	r.data = r.data[n:]
	return n, nil
}

// With read and write timeouts of 3 s, a blob upload and a blob download
// that each take twice as long but keep moving succeed, while an API
// request and a blob upload whose bodies stop coming are cut.
func TestDeadlinesPerRoute(t *testing.T) {
	s := servertest.Start(t, servertest.Options{Feeds: []string{}, Config: sgserver.Config{
		Limits: sgserver.Limits{ReadTimeout: 3 * time.Second, WriteTimeout: 3 * time.Second}}})
	base := "http://" + s.Addr
	blob := make([]byte, 8<<20)
	if _, err := rand.Read(blob); err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(blob)
	digest := "sha256:" + hex.EncodeToString(sum[:])
	c := &http.Client{Timeout: 2 * time.Minute}
	startUpload := func() string {
		resp, body := do(t, c, http.MethodPost, base+"/v2/slow/blob/blobs/uploads/", s.Token, nil, nil)
		if resp.StatusCode != http.StatusAccepted {
			t.Fatalf("start an upload: %d %s", resp.StatusCode, body)
		}
		return resp.Header.Get("Location")
	}

	// 8 MiB at 256 KiB every 200 ms: over 6 s, two read timeouts.
	req, err := http.NewRequest(http.MethodPut, startUpload()+"&digest="+digest, &slowReader{data: blob, chunk: 256 << 10, every: 200 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	req.ContentLength = int64(len(blob))
	req.Header.Set("Authorization", "Bearer "+s.Token)
	resp, err := c.Do(req)
	if err != nil {
		t.Fatalf("a slow upload: %v", err)
	}
	msg, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusCreated {
		t.Fatalf("a slow upload that keeps moving: %d %s, want 201", resp.StatusCode, msg)
	}

	// The download read as slowly: more than the socket buffers hold, so
	// the server's writes wait on the client.
	req, err = http.NewRequest(http.MethodGet, base+"/v2/slow/blob/blobs/"+digest, nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+s.Token)
	resp, err = c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	h := sha256.New()
	buf := make([]byte, 256<<10)
	var n int64
	var readErr error
	for readErr == nil {
		time.Sleep(200 * time.Millisecond)
		var k int
		k, readErr = io.ReadFull(resp.Body, buf)
		h.Write(buf[:k])
		n += int64(k)
	}
	resp.Body.Close()
	if got := "sha256:" + hex.EncodeToString(h.Sum(nil)); resp.StatusCode != http.StatusOK || got != digest {
		t.Errorf("a slow download: %d, %d bytes of %s (%v); want 200 and %s", resp.StatusCode, n, got, readErr, digest)
	}

	// Bodies that stop: the server answers, or hangs up, without them.
	upload := startUpload()
	for _, c := range []struct{ name, head string }{
		{"an API request", fmt.Sprintf("POST /api/v1/repositories HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer %s\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{\"name\":", s.Token)},
		{"a blob upload", fmt.Sprintf("PATCH %s HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer %s\r\nContent-Length: 1048576\r\n\r\n%s",
			strings.TrimPrefix(upload, base), s.Token, strings.Repeat("x", 10000))},
	} {
		conn, err := net.Dial("tcp", s.Addr)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := io.WriteString(conn, c.head); err != nil {
			t.Fatal(err)
		}
		// The test's own guard, far past the server's 3 s: a server that
		// waits for the rest of the body fails here.
		_ = conn.SetReadDeadline(time.Now().Add(time.Minute))
		status, err := bufio.NewReader(conn).ReadString('\n')
		conn.Close()
		if ne, ok := err.(net.Error); ok && ne.Timeout() {
			t.Errorf("%s whose body stopped: still waiting after a minute", c.name)
			continue
		}
		if strings.Contains(status, " 2") {
			t.Errorf("%s whose body stopped: %q, want an error or a closed connection", c.name, status)
		}
	}
}

// A repository holds at most its quota: a second image that would take it
// past is refused with the reason, and another repository takes it.
func TestRepositoryQuota(t *testing.T) {
	s := servertest.Start(t, servertest.Options{Feeds: []string{}, Config: sgserver.Config{Limits: sgserver.Limits{RepositoryQuota: 1 << 20}}})
	random := func() string {
		b := make([]byte, 600<<10)
		if _, err := rand.Read(b); err != nil {
			t.Fatal(err)
		}
		return string(b)
	}
	first := imagetest.Build(t, imagetest.Layer(t, imagetest.Entry{Name: "data/one", Body: random()}))
	second := imagetest.Build(t, imagetest.Layer(t, imagetest.Entry{Name: "data/two", Body: random()}))
	s.Push(t, "quota/a:1", first)
	err := remote.Write(s.Ref(t, "quota/a:2"), second, remote.WithAuth(s.Auth()))
	if err == nil || !strings.Contains(err.Error(), "DENIED") || !strings.Contains(err.Error(), "over its quota of 1048576 bytes") {
		t.Fatalf("a push past the repository's quota: %v, want DENIED naming the quota", err)
	}
	s.Push(t, "quota/b:1", second)
	if _, err := remote.Image(s.Ref(t, "quota/a:1"), remote.WithAuth(s.Auth())); err != nil {
		t.Errorf("the image within the quota after the refusal: %v", err)
	}
}

// A clone's request body is bounded to a few MiB, and at most
// MaxSpooledBodies push bodies are spooled at once: past it a push is
// answered 503, and once the spool frees git pushes again.
func TestGitBodies(t *testing.T) {
	s := servertest.Start(t, servertest.Options{Feeds: []string{}, Config: sgserver.Config{Limits: sgserver.Limits{MaxSpooledBodies: 1}}})
	base := "http://" + s.Addr
	if code, body := s.API(t, http.MethodPost, "/api/v1/repositories", map[string]string{"name": "bodies"}); code != http.StatusCreated {
		t.Fatalf("create a repository: %d %s", code, body)
	}
	big := bytes.Repeat([]byte("0032want 0000000000000000000000000000000000000000\n"), 5<<20/50)
	resp, body := do(t, http.DefaultClient, http.MethodPost, base+"/git/bodies.git/git-upload-pack", s.Token, big,
		http.Header{"Content-Type": {"application/x-git-upload-pack-request"}})
	if resp.StatusCode != http.StatusRequestEntityTooLarge {
		t.Errorf("a 5 MiB upload-pack request: %d %s, want 413", resp.StatusCode, body)
	}

	// A push whose chunked body stops half way holds the one spool slot.
	// On a loaded machine a probe can reach the slot before it, and then
	// the held push is the one refused: it is replaced, and probed again.
	var held net.Conn
	defer func() {
		if held != nil {
			held.Close()
		}
	}()
	var refused *http.Response
	waitUntil(t, time.Minute, "a second push to be refused while the first holds the spool", func() bool {
		if held == nil {
			c, err := net.Dial("tcp", s.Addr)
			if err != nil {
				t.Fatal(err)
			}
			fmt.Fprintf(c, "POST /git/bodies.git/git-receive-pack HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer %s\r\n"+
				"Content-Type: application/x-git-receive-pack-request\r\nTransfer-Encoding: chunked\r\n\r\n400\r\n%s", s.Token, strings.Repeat("x", 512))
			held = c
			time.Sleep(100 * time.Millisecond) // let the server take the slot
		}
		req, err := http.NewRequest(http.MethodPost, base+"/git/bodies.git/git-receive-pack", io.MultiReader(strings.NewReader("0000")))
		if err != nil {
			t.Fatal(err)
		}
		req.ContentLength = -1 // chunked, as git sends a large push
		req.Header.Set("Authorization", "Bearer "+s.Token)
		req.Header.Set("Content-Type", "application/x-git-receive-pack-request")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode == http.StatusServiceUnavailable {
			refused = resp
			return true
		}
		// Was the held push answered (refused) instead? Then hold again.
		_ = held.SetReadDeadline(time.Now().Add(10 * time.Millisecond))
		n, err := held.Read(make([]byte, 1))
		if ne, ok := err.(net.Error); n > 0 || !ok || !ne.Timeout() {
			held.Close()
			held = nil
		}
		return false
	})
	if refused.Header.Get("Retry-After") == "" {
		t.Errorf("the refusal has no Retry-After")
	}
	held.Close()
	held = nil

	// The slot is free again: git pushes with a chunked body (a post
	// buffer smaller than the pack).
	home := t.TempDir()
	env := append(os.Environ(), "HOME="+home, "GIT_CONFIG_NOSYSTEM=1", "GIT_TERMINAL_PROMPT=0",
		"GIT_AUTHOR_NAME=Dev", "GIT_AUTHOR_EMAIL=dev@example.com", "GIT_COMMITTER_NAME=Dev", "GIT_COMMITTER_EMAIL=dev@example.com")
	work := filepath.Join(home, "work")
	noise := make([]byte, 64<<10)
	if _, err := rand.Read(noise); err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(work, 0o750); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(work, "noise"), noise, 0o600); err != nil {
		t.Fatal(err)
	}
	remoteURL := fmt.Sprintf("http://ci:%s@%s/git/bodies.git", s.Token, s.Addr)
	waitUntil(t, time.Minute, "a git push once the spool is free", func() bool {
		for _, args := range [][]string{{"init", "-q", "-b", "main"}, {"add", "noise"}, {"commit", "-qm", "noise"},
			{"-c", "http.postBuffer=1024", "push", remoteURL, "main"}} {
			cmd := exec.Command("git", args...)
			cmd.Dir, cmd.Env = work, env
			if out, err := cmd.CombinedOutput(); err != nil {
				if args[0] == "-c" && strings.Contains(string(out), "503") {
					return false // the held body's slot is not free yet
				}
				if args[0] != "-c" && strings.Contains(string(out), "nothing to commit") {
					continue
				}
				t.Fatalf("git %s: %v\n%s", strings.Join(args, " "), err, out)
			}
		}
		return true
	})
}
