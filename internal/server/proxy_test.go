package server

import (
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strings"
	"testing"
)

var testProxies = proxies{netip.MustParsePrefix("10.0.0.0/8"), netip.MustParsePrefix("127.0.0.1/32")}

// The client is the nearest address that is not a trusted proxy; what the
// client wrote further left is not believed.
func TestForwardedClient(t *testing.T) {
	for _, c := range []struct {
		xff  []string
		want string
	}{
		{[]string{"203.0.113.7"}, "203.0.113.7"},
		{[]string{"198.51.100.1, 203.0.113.7"}, "203.0.113.7"}, // the left one is the client's word
		{[]string{"203.0.113.7, 10.1.2.3"}, "203.0.113.7"},     // through a second proxy of ours
		{[]string{"203.0.113.7", "10.1.2.3"}, "203.0.113.7"},   // the same in two headers
		{[]string{"203.0.113.7, nonsense, 10.1.2.3"}, ""},      // a malformed entry stops the walk...
		{[]string{"nonsense, 203.0.113.7"}, "203.0.113.7"},     // ...right of the client it does not matter
		{[]string{"10.9.9.9"}, "10.9.9.9"},                     // only proxies: the furthest one
		{[]string{"::ffff:203.0.113.7"}, "203.0.113.7"},        // IPv4 in IPv6
		{[]string{"2001:db8::1, 10.0.0.1"}, "2001:db8::1"},     // IPv6
		{[]string{strings.Repeat("1.1.1.1,", 100) + "203.0.113.7"}, "203.0.113.7"},
	} {
		got, ok := testProxies.client(c.xff)
		if c.want == "" {
			if ok && got.String() != "10.1.2.3" {
				t.Errorf("%q: %v, want the proxy's own address or none", c.xff, got)
			}
			continue
		}
		if !ok || got.String() != c.want {
			t.Errorf("%q: %v %v, want %s", c.xff, got, ok, c.want)
		}
	}
}

func TestForwardedHeadersRemoved(t *testing.T) {
	var seen *http.Request
	h := testProxies.wrap(http.HandlerFunc(func(_ http.ResponseWriter, r *http.Request) { seen = r }))
	r := httptest.NewRequest(http.MethodGet, "/", nil)
	r.RemoteAddr = "192.0.2.1:4000"
	for _, k := range forwardedHeaders {
		r.Header.Set(k, "203.0.113.7")
	}
	h.ServeHTTP(httptest.NewRecorder(), r)
	for _, k := range forwardedHeaders {
		if seen.Header.Get(k) != "" {
			t.Errorf("%s from an untrusted peer was kept", k)
		}
	}
	if seen.RemoteAddr != "192.0.2.1:4000" {
		t.Errorf("RemoteAddr %s, want the peer's", seen.RemoteAddr)
	}
}

// X-Forwarded-For is read from any client through a proxy: it must never
// panic, and what it makes of the header is a valid address.
func FuzzForwardedFor(f *testing.F) {
	for _, s := range []string{"203.0.113.7", "198.51.100.1, 203.0.113.7, 10.0.0.1", "", ",,,", "::1", "zz, 10.0.0.1", "[::1]:80"} {
		f.Add(s, "10.0.0.2")
	}
	f.Fuzz(func(t *testing.T, xff, second string) {
		if got, ok := testProxies.client([]string{xff, second}); ok && !got.IsValid() {
			t.Fatalf("%q, %q: an invalid address %v", xff, second, got)
		}
		r := httptest.NewRequest(http.MethodGet, "/", nil)
		r.RemoteAddr = "10.0.0.1:1"
		r.Header.Add("X-Forwarded-For", xff)
		r.Header.Add("X-Forwarded-For", second)
		testProxies.wrap(http.HandlerFunc(func(_ http.ResponseWriter, r *http.Request) {
			if _, err := netip.ParseAddrPort(r.RemoteAddr); err != nil {
				t.Fatalf("RemoteAddr %q after the proxy: %v", r.RemoteAddr, err)
			}
		})).ServeHTTP(httptest.NewRecorder(), r)
	})
}
