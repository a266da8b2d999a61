package auth

import (
	"net/http/httptest"
	"testing"
)

// The registry's anonymous token is no credential: a client pulling
// anonymously is never limited, nor counted, as one guessing tokens is.
func TestHasCredentials(t *testing.T) {
	for _, c := range []struct {
		method, path, header string
		want                 bool
	}{
		{"GET", "/v2/", "", false},
		{"GET", "/v2/app/manifests/1", "Bearer " + AnonymousToken, false},
		{"GET", "/v2/app/manifests/1", "Bearer sgt_x", true},
		{"GET", "/api/v1/images", "Basic Y2k6c2d0X3g=", true},
		{"POST", LoginPath, "", true},
	} {
		r := httptest.NewRequest(c.method, c.path, nil)
		if c.header != "" {
			r.Header.Set("Authorization", c.header)
		}
		if got := hasCredentials(r); got != c.want {
			t.Errorf("%s %s %q: %v, want %v", c.method, c.path, c.header, got, c.want)
		}
	}
}
