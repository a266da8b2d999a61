// Package s3test starts a real S3-compatible server for tests: versitygw
// (Apache-2.0) as a gateway over a temporary folder, on 127.0.0.1.
//
// The binary is found as $SCANGATE_VERSITYGW, else versitygw on PATH, else
// in the Go build cache's sibling folder scangate-tools (where .ci/run
// installs it); failing all three it is built there from the Go module
// proxy. A test that cannot have it fails: it never skips.
package s3test

import (
	"context"
	"crypto/rand"
	"fmt"
	"net"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go/aws"
	"github.com/aws/aws-sdk-go/aws/credentials"
	"github.com/aws/aws-sdk-go/aws/session"
	"github.com/aws/aws-sdk-go/service/s3"

	"github.com/scangate/scangate/internal/nettest"
)

// Module is versitygw's module and version, the one .ci/run installs.
const Module = "github.com/versity/versitygw/cmd/versitygw@v1.8.0"

// Server is a running versitygw.
type Server struct {
	// Endpoint is its http://127.0.0.1:PORT.
	Endpoint string
	// AccessKey and SecretKey are its root user's credentials.
	AccessKey, SecretKey string
	stop                 func()
}

// Stop kills the server (to test what happens when storage is gone);
// stopping twice is harmless.
func (s *Server) Stop() { s.stop() }

var (
	findOnce sync.Once
	binary   string
	findErr  error
)

// Binary returns versitygw's path, building it if it is nowhere.
func Binary() (string, error) {
	findOnce.Do(func() { binary, findErr = find() })
	return binary, findErr
}

func find() (string, error) {
	if p := os.Getenv("SCANGATE_VERSITYGW"); p != "" {
		return p, nil
	}
	if p, err := exec.LookPath("versitygw"); err == nil {
		return p, nil
	}
	out, err := exec.Command("go", "env", "GOCACHE").Output()
	if err != nil {
		return "", fmt.Errorf("versitygw: go env GOCACHE: %w", err)
	}
	dir := filepath.Join(filepath.Dir(strings.TrimSpace(string(out))), "scangate-tools")
	p := filepath.Join(dir, "versitygw")
	if _, err := os.Stat(p); err == nil {
		return p, nil
	}
	cmd := exec.Command("go", "install", Module)
	cmd.Env = append(os.Environ(), "GOBIN="+dir, "GOFLAGS=-mod=mod", "GOWORK=off")
	cmd.Dir = os.TempDir() // outside this module: its go.mod must not change
	if b, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("versitygw is not installed and building it failed (go install %s): %v\n%s", Module, err, b)
	}
	return p, nil
}

// Start runs versitygw over a temporary folder until the test ends.
func Start(t testing.TB) *Server {
	t.Helper()
	bin, err := Binary()
	if err != nil {
		t.Fatal(err)
	}
	s := &Server{AccessKey: "scangate" + randHex(t, 4), SecretKey: randHex(t, 16)}
	addr := fmt.Sprintf("127.0.0.1:%d", nettest.FreePort(t))
	s.Endpoint = "http://" + addr
	root := t.TempDir()
	logf, err := os.Create(filepath.Join(t.TempDir(), "versitygw.log"))
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, "--port", addr, "--quiet", "posix", root)
	// Credentials through the environment, never on a command line others
	// can read.
	cmd.Env = append(os.Environ(), "ROOT_ACCESS_KEY_ID="+s.AccessKey, "ROOT_SECRET_ACCESS_KEY="+s.SecretKey)
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		t.Fatalf("versitygw: %v", err)
	}
	done := make(chan struct{})
	go func() { _ = cmd.Wait(); close(done) }()
	var once sync.Once
	s.stop = func() {
		once.Do(func() {
			_ = cmd.Process.Kill()
			<-done
		})
	}
	t.Cleanup(func() {
		s.stop()
		logf.Close()
	})
	deadline := time.Now().Add(30 * time.Second)
	for {
		c, err := net.DialTimeout("tcp", addr, time.Second)
		if err == nil {
			c.Close()
			break
		}
		select {
		case <-done:
			b, _ := os.ReadFile(logf.Name())
			t.Fatalf("versitygw exited at start: %s", b)
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("versitygw did not listen on %s: %v", addr, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
	return s
}

// Bucket makes a bucket and returns its name.
func (s *Server) Bucket(t testing.TB) string {
	t.Helper()
	name := "sg-" + randHex(t, 6)
	sess, err := session.NewSession(&aws.Config{
		Region:           aws.String("us-east-1"),
		Endpoint:         aws.String(s.Endpoint),
		S3ForcePathStyle: aws.Bool(true),
		Credentials:      credentials.NewStaticCredentials(s.AccessKey, s.SecretKey, ""),
	})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if _, err := s3.New(sess).CreateBucketWithContext(ctx, &s3.CreateBucketInput{Bucket: aws.String(name)}); err != nil {
		t.Fatalf("create bucket %s: %v", name, err)
	}
	return name
}

// Storage returns --registry-storage for bucket under prefix ("" for
// none), and sets AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY for the test.
func (s *Server) Storage(t testing.TB, bucket, prefix string) string {
	t.Helper()
	t.Setenv("AWS_ACCESS_KEY_ID", s.AccessKey)
	t.Setenv("AWS_SECRET_ACCESS_KEY", s.SecretKey)
	u := url.URL{Scheme: "s3", Host: bucket, Path: "/" + prefix}
	u.RawQuery = url.Values{"endpoint": {s.Endpoint}, "force-path-style": {"true"}, "region": {"us-east-1"}}.Encode()
	return u.String()
}

func randHex(t testing.TB, n int) string {
	t.Helper()
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return fmt.Sprintf("%x", b)
}
