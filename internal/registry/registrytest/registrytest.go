// Package registrytest is what tests of the registry, alone or inside a
// whole server, share: a raw request helper that reads the distribution
// spec's error bodies, checks of 401/403 answers, and unique small images.
package registrytest

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote/transport"

	"github.com/scangate/scangate/internal/auth"
	"github.com/scangate/scangate/internal/imagetest"
	"github.com/scangate/scangate/internal/registry"
	"github.com/scangate/scangate/internal/store"
)

// Unique makes repository names and tags no other run, nor another test of
// this run, uses.
func Unique(prefix string) string {
	return fmt.Sprintf("%s-%d", prefix, time.Now().UnixNano())
}

// specError is a distribution-spec error body.
type specError struct {
	Errors []struct {
		Code    string `json:"code"`
		Message string `json:"message"`
	} `json:"errors"`
}

// Result is a registry response read in full.
type Result struct {
	Status int
	Header http.Header
	Body   []byte
}

// Code returns the first error code of a distribution-spec error body, and
// fails the test when the body is not one.
func (r Result) Code(t testing.TB) string {
	t.Helper()
	if ct := r.Header.Get("Content-Type"); !strings.HasPrefix(ct, "application/json") {
		t.Fatalf("status %d: Content-Type %q, want application/json; body %q", r.Status, ct, r.Body)
	}
	var e specError
	if err := json.Unmarshal(r.Body, &e); err != nil || len(e.Errors) == 0 || e.Errors[0].Code == "" {
		t.Fatalf("status %d: body %q is not a distribution-spec error (%v)", r.Status, r.Body, err)
	}
	return e.Errors[0].Code
}

// Do sends one registry request; creds is "" (none), "basic:SECRET" or
// "bearer:SECRET".
func Do(t testing.TB, method, url, creds string, body []byte, header map[string]string) Result {
	t.Helper()
	req, err := http.NewRequest(method, url, bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	switch kind, secret, _ := strings.Cut(creds, ":"); kind {
	case "basic":
		req.SetBasicAuth("ci", secret)
	case "bearer":
		req.Header.Set("Authorization", "Bearer "+secret)
	}
	for k, v := range header {
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return Result{Status: resp.StatusCode, Header: resp.Header, Body: data}
}

// SmallImage is a one-layer image no other test pushes.
func SmallImage(t testing.TB) v1.Image {
	t.Helper()
	return imagetest.Build(t, imagetest.Layer(t, imagetest.Entry{Name: "etc/id", Body: Unique("image")}))
}

// WantAuthChallenge checks a 401 that asks for Basic credentials.
func WantAuthChallenge(t testing.TB, what string, r Result) {
	t.Helper()
	WantChallenge(t, what, r, `Basic realm="scangate"`)
}

// WantChallenge checks a 401 with an UNAUTHORIZED error and the challenge
// want (WWW-Authenticate).
func WantChallenge(t testing.TB, what string, r Result, want string) {
	t.Helper()
	if r.Status != http.StatusUnauthorized {
		t.Fatalf("%s: status %d, want 401; body %q", what, r.Status, r.Body)
	}
	if got := r.Header.Get("WWW-Authenticate"); got != want {
		t.Errorf("%s: WWW-Authenticate %q, want %q", what, got, want)
	}
	if c := r.Code(t); c != "UNAUTHORIZED" {
		t.Errorf("%s: error code %s, want UNAUTHORIZED", what, c)
	}
}

// WantDenied checks a 403 with a DENIED error.
func WantDenied(t testing.TB, what string, r Result) {
	t.Helper()
	if r.Status != http.StatusForbidden {
		t.Fatalf("%s: status %d, want 403; body %q", what, r.Status, r.Body)
	}
	if c := r.Code(t); c != "DENIED" {
		t.Errorf("%s: error code %s, want DENIED", what, c)
	}
}

// WantTransportStatus checks that a go-containerregistry call failed with
// status.
func WantTransportStatus(t testing.TB, what string, err error, status int) {
	t.Helper()
	var te *transport.Error
	if !errors.As(err, &te) || te.StatusCode != status {
		t.Fatalf("%s: error %v, want HTTP %d", what, err, status)
	}
}

// AdminTokens returns the tokens of a database of their own, in a
// temporary folder, and the secret of an admin token among them.
func AdminTokens(t testing.TB) (*auth.Tokens, string) {
	t.Helper()
	ctx := context.Background()
	st, err := store.Open(ctx, filepath.Join(t.TempDir(), store.FileName))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	tokens := auth.NewTokens(st)
	secret, _, err := tokens.Create(ctx, "admin", auth.RoleAdmin)
	if err != nil {
		t.Fatal(err)
	}
	return tokens, secret
}

// Start serves a registry of its own on loopback, with its own database in
// a temporary folder and hooks h (nil for none), and returns it, its base
// URL (http://127.0.0.1:PORT) and an admin token's secret. Tests of a part
// that only needs a registry to pull from or push to use it rather than a
// whole server.
func Start(t testing.TB, h registry.Hooks) (*registry.Registry, string, string) {
	t.Helper()
	tokens, secret := AdminTokens(t)
	reg, err := registry.New(context.Background(), registry.Config{Root: filepath.Join(t.TempDir(), "registry"), Tokens: tokens, Hooks: h})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { reg.Close() })
	srv := httptest.NewServer(reg)
	t.Cleanup(srv.Close)
	return reg, srv.URL, secret
}
