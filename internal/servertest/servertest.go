// Package servertest starts a real scangate server for tests: in this
// process, on 127.0.0.1 and a free port, over a data folder of its own with
// fixture feeds imported and an admin token made.
package servertest

import (
	"bytes"
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/scangate/scangate/internal/auth"
	"github.com/scangate/scangate/internal/egress"
	"github.com/scangate/scangate/internal/feed"
	"github.com/scangate/scangate/internal/imagetest"
	"github.com/scangate/scangate/internal/jobs"
	"github.com/scangate/scangate/internal/scanner"
	"github.com/scangate/scangate/internal/server"
	"github.com/scangate/scangate/internal/store"
	"github.com/scangate/scangate/internal/storetest"
	"github.com/scangate/scangate/internal/vulndb"
)

// Fixtures is the repository's feed fixture folder (imagetest.Fixtures).
var Fixtures = imagetest.Fixtures

// databases maps a test's data folder to its PostgreSQL database, so that
// a restart on the same folder finds the same state.
var databases sync.Map

// Options configure a test server.
type Options struct {
	// Feeds are fixture feeds to import first, relative to Fixtures
	// (default: debian and ghsa). Use []string{} for an empty database.
	Feeds []string
	// Config overrides the server's settings; Addr, DataDir and Ready
	// are the test's.
	Config server.Config
	// DataDir reuses a data folder, as a restart does.
	DataDir string
	// StrictEgress starts the server with the default egress settings:
	// webhooks and external sources on loopback or private addresses are
	// refused. Otherwise, unless Config says, the server is started with
	// --allow-private-targets 127.0.0.0/8,::1, since the receivers and
	// git servers of tests run on this machine.
	StrictEgress bool
}

// Server is a running test server.
type Server struct {
	Addr    string // host:port
	Token   string // an admin token's secret
	DataDir string
	// Database is the server's --database: empty (SQLite in DataDir) or
	// the test's PostgreSQL database.
	Database string
	Store    *store.Store // a second connection to the server's database
	stop     context.CancelFunc
	done     chan error
}

// Start starts a server and stops it when the test ends.
func Start(t testing.TB, opts Options) *Server {
	t.Helper()
	ctx := context.Background()
	dir := opts.DataDir
	if dir == "" {
		dir = t.TempDir()
	}
	// The test run's database (storetest): SQLite in dir, or a PostgreSQL
	// database of this test's, the same one again when dir is reused.
	database := opts.Config.Database
	if database == "" {
		if v, ok := databases.Load(dir); ok {
			database = v.(string)
		} else {
			database = storetest.Database(t)
			databases.Store(dir, database)
		}
	}
	st, err := store.OpenDatabase(ctx, database, dir)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	feeds := opts.Feeds
	if feeds == nil {
		feeds = []string{"debian", "ghsa"}
	}
	if len(feeds) > 0 && opts.DataDir == "" {
		Import(t, st, feeds...)
	}
	s := &Server{DataDir: dir, Database: database, Store: st, done: make(chan error, 1)}
	if opts.DataDir == "" {
		secret, _, err := auth.NewTokens(st).Create(ctx, "test-admin", auth.RoleAdmin)
		if err != nil {
			t.Fatal(err)
		}
		s.Token = secret
	}
	cfg := opts.Config
	cfg.Addr, cfg.DataDir, cfg.Database = "127.0.0.1:0", dir, database
	if cfg.AllowPrivateTargets == nil && !opts.StrictEgress {
		cfg.AllowPrivateTargets = egress.Loopback
	}
	if cfg.ShutdownTimeout == 0 {
		cfg.ShutdownTimeout = 5 * time.Second
	}
	ready := make(chan string, 1)
	cfg.Ready = ready
	runCtx, cancel := context.WithCancel(ctx)
	s.stop = cancel
	go func() { s.done <- server.Run(runCtx, cfg) }()
	select {
	case s.Addr = <-ready:
	case err := <-s.done:
		cancel()
		t.Fatalf("server did not start: %v", err)
	case <-time.After(30 * time.Second):
		cancel()
		t.Fatal("server did not start in 30 s")
	}
	t.Cleanup(func() { s.Stop(t) })
	return s
}

// Import imports fixture feeds into st.
func Import(t testing.TB, st *store.Store, feeds ...string) {
	t.Helper()
	paths := make([]string, len(feeds))
	for i, f := range feeds {
		paths[i] = filepath.Join(Fixtures, f)
	}
	loaded, err := feed.Load(context.Background(), paths, "", feed.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if err := vulndb.New(st).Replace(context.Background(), loaded.Feeds, vulndb.ReplaceOptions{}); err != nil {
		t.Fatal(err)
	}
}

// Stop stops the server and waits for it; stopping twice is harmless.
func (s *Server) Stop(t testing.TB) {
	t.Helper()
	if s.stop == nil {
		return
	}
	s.stop()
	s.stop = nil
	if err := <-s.done; err != nil {
		t.Errorf("server stopped with an error: %v", err)
	}
}

// Ref names repository:tag (or @digest) in the server's registry.
func (s *Server) Ref(t testing.TB, ref string) name.Reference {
	t.Helper()
	r, err := name.ParseReference(s.Addr+"/"+ref, name.Insecure)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// Auth is the admin token as registry credentials.
func (s *Server) Auth() authn.Authenticator {
	return &authn.Basic{Username: "test", Password: s.Token}
}

// Push pushes img as ref (repository:tag) and returns its digest.
func (s *Server) Push(t testing.TB, ref string, img v1.Image) string {
	t.Helper()
	if err := remote.Write(s.Ref(t, ref), img, remote.WithAuth(s.Auth())); err != nil {
		t.Fatalf("push %s: %v", ref, err)
	}
	d, err := img.Digest()
	if err != nil {
		t.Fatal(err)
	}
	return d.String()
}

// WaitScan waits until repository@digest has a scan result, and returns it.
func (s *Server) WaitScan(t testing.TB, repository, digest string, timeout time.Duration) scanner.Image {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		imgs, err := scanner.NewResults(s.Store).ListImages(context.Background(), repository)
		if err != nil {
			t.Fatal(err)
		}
		for _, im := range imgs {
			if im.Digest == digest && im.ScanStatus != "PENDING" {
				return im
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s@%s not scanned within %s", repository, digest, timeout)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// API calls the REST API with the admin token; body, if not nil, is sent
// as JSON. It returns the status and the response body.
func (s *Server) API(t testing.TB, method, path string, body any) (int, []byte) {
	t.Helper()
	return s.APIAs(t, s.Token, method, path, body)
}

// APIAs calls the API with another token ("" for none).
func (s *Server) APIAs(t testing.TB, token, method, path string, body any) (int, []byte) {
	t.Helper()
	var raw []byte
	if body != nil {
		if r, ok := body.([]byte); ok {
			raw = r
		} else {
			data, err := json.Marshal(body)
			if err != nil {
				t.Fatal(err)
			}
			raw = data
		}
	}
	req, err := http.NewRequest(method, "http://"+s.Addr+path, bytes.NewReader(raw))
	if err != nil {
		t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	if err != nil && !errors.Is(err, io.EOF) {
		t.Fatal(err)
	}
	CheckOpenAPI(t, s.Addr, req, raw, resp, data)
	return resp.StatusCode, data
}

// ImportQueued imports fixture feeds into the running server's database as
// `scangate db import` does: the re-evaluation of stored images is queued
// in the import's transaction, for the server to run.
func (s *Server) ImportQueued(t testing.TB, feeds ...string) {
	t.Helper()
	ctx := context.Background()
	client, err := jobs.New(s.Store, nil, jobs.Config{})
	if err != nil {
		t.Fatal(err)
	}
	paths := make([]string, len(feeds))
	for i, f := range feeds {
		paths[i] = filepath.Join(Fixtures, f)
	}
	loaded, err := feed.Load(ctx, paths, "", feed.Options{})
	if err != nil {
		t.Fatal(err)
	}
	err = vulndb.New(s.Store).Replace(ctx, loaded.Feeds, vulndb.ReplaceOptions{InTx: func(ctx context.Context, tx *sql.Tx) error {
		return scanner.QueueReevaluation(ctx, tx, client)
	}})
	if err != nil {
		t.Fatal(err)
	}
}

// HasLine says whether one line of a command's output holds every part, as
// a user reading a table looks along one row.
func HasLine(out string, parts ...string) bool {
	for _, line := range strings.Split(out, "\n") {
		all := true
		for _, p := range parts {
			all = all && strings.Contains(line, p)
		}
		if all {
			return true
		}
	}
	return false
}
