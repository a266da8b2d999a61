package egress_test

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strings"
	"testing"

	"github.com/scangate/scangate/internal/dnstest"
	"github.com/scangate/scangate/internal/egress"
)

// The addresses a default guard refuses, each with the kind the error
// names, and some it lets through.
func TestCheckRefusesInternalAddresses(t *testing.T) {
	g := egress.New(nil)
	refused := map[string]string{
		"127.0.0.1":        "loopback",
		"127.5.6.7":        "loopback",
		"::1":              "loopback",
		"::ffff:127.0.0.1": "loopback",
		"169.254.169.254":  "cloud metadata",
		"fd00:ec2::254":    "cloud metadata",
		"169.254.10.1":     "link-local",
		"fe80::1":          "link-local",
		"10.1.2.3":         "private",
		"172.16.0.1":       "private",
		"172.31.255.255":   "private",
		"192.168.1.1":      "private",
		"fc00::1":          "private",
		"fd12:3456::1":     "private",
		"0.0.0.0":          "unspecified",
		"::":               "unspecified",
		"224.0.0.1":        "multicast",
		"ff05::1":          "multicast",
		"100.64.0.1":       "special-purpose",
		"192.0.2.10":       "special-purpose",
	}
	for s, kind := range refused {
		err := g.Check(netip.MustParseAddr(s))
		var re *egress.RefusedError
		if !errors.As(err, &re) || !errors.Is(err, egress.ErrRefused) {
			t.Errorf("%s: %v, want refused", s, err)
			continue
		}
		if !strings.Contains(err.Error(), kind) || !strings.Contains(err.Error(), "--allow-private-targets") {
			t.Errorf("%s: %q, want it to say %q and how to allow it", s, err, kind)
		}
	}
	for _, s := range []string{"8.8.8.8", "1.1.1.1", "172.32.0.1", "2606:4700:4700::1111"} {
		if err := g.Check(netip.MustParseAddr(s)); err != nil {
			t.Errorf("%s: %v, want allowed", s, err)
		}
	}
}

// An admin's allow-list lets its prefixes through, and only those.
func TestAllowListLetsItsPrefixesThrough(t *testing.T) {
	allow, err := egress.ParseAllow([]string{"10.20.0.0/16", "127.0.0.1", "fd00::/8"})
	if err != nil {
		t.Fatal(err)
	}
	g := egress.New(allow)
	for _, s := range []string{"10.20.1.1", "127.0.0.1", "fd00::5"} {
		if err := g.Check(netip.MustParseAddr(s)); err != nil {
			t.Errorf("%s: %v, want allowed", s, err)
		}
	}
	for _, s := range []string{"10.21.0.1", "127.0.0.2", "169.254.169.254", "fc00::1"} {
		if err := g.Check(netip.MustParseAddr(s)); err == nil {
			t.Errorf("%s allowed, want refused", s)
		}
	}
	for _, bad := range []string{"10.0.0.0/33", "example.com", "fe80::1%eth0"} {
		if _, err := egress.ParseAllow([]string{bad}); err == nil {
			t.Errorf("ParseAllow(%q) took it", bad)
		}
	}
}

// The check is made on the address dialled, after the name is resolved:
// "localhost", a name, is refused as 127.0.0.1 is, when the client
// connects; with 127.0.0.0/8 allow-listed the same request goes through.
func TestTransportChecksTheDialledAddress(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { _, _ = w.Write([]byte("internal")) }))
	defer srv.Close()
	port := srv.URL[strings.LastIndex(srv.URL, ":")+1:]
	for _, u := range []string{srv.URL, "http://localhost:" + port + "/"} {
		c := &http.Client{Transport: egress.New(nil).Transport()}
		resp, err := c.Get(u)
		if err == nil {
			resp.Body.Close()
			t.Errorf("GET %s through a default guard: %s, want refused", u, resp.Status)
		} else if !errors.Is(err, egress.ErrRefused) {
			t.Errorf("GET %s: %v, want ErrRefused", u, err)
		}
		c = &http.Client{Transport: egress.New(egress.Loopback).Transport()}
		resp, err = c.Get(u)
		if err != nil {
			t.Errorf("GET %s with loopback allowed: %v", u, err)
			continue
		}
		resp.Body.Close()
	}
}

// At put time, a URL whose host is or resolves to refused addresses only
// is refused with the host and its kind, and none of the URL's secrets.
func TestCheckURLNamesTheHostOnly(t *testing.T) {
	g := egress.New(nil)
	ctx := context.Background()
	for raw, kind := range map[string]string{
		"http://169.254.169.254/latest/meta-data/iam?token=s3cr3t": "cloud metadata",
		"http://user:s3cr3t@127.0.0.1:9/hook":                      "loopback",
		"https://localhost/s3cr3t":                                 "loopback",
		"http://[::1]:8080/s3cr3t":                                 "loopback",
	} {
		err := g.CheckURL(ctx, raw)
		if !errors.Is(err, egress.ErrRefused) || !strings.Contains(err.Error(), kind) {
			t.Errorf("%s: %v, want refused as %s", raw, err, kind)
			continue
		}
		if strings.Contains(err.Error(), "s3cr3t") {
			t.Errorf("%s: the error %q holds the URL's secret", raw, err)
		}
	}
	if err := egress.New(egress.Loopback).CheckURL(ctx, "http://127.0.0.1:9/hook"); err != nil {
		t.Errorf("loopback allowed: %v", err)
	}
	if err := g.CheckURL(ctx, "https://8.8.8.8/hook"); err != nil {
		t.Errorf("a public address: %v", err)
	}
}

// DNS rebinding: a name that resolves to a public address when it is put
// and to 127.0.0.1 when the request is made is refused then, because the
// check is on the address dialled.
func TestRebindingIsRefusedAtDialTime(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { _, _ = w.Write([]byte("internal")) }))
	defer srv.Close()
	port := srv.URL[strings.LastIndex(srv.URL, ":")+1:]
	dns := dnstest.Start(t)
	g := egress.New(nil).WithResolver(dns.Resolver())
	dns.Set("hooks.rebind.test", "8.8.8.8")
	if err := g.CheckURL(context.Background(), "http://hooks.rebind.test:"+port+"/hook"); err != nil {
		t.Fatalf("put time, resolving to 8.8.8.8: %v", err)
	}
	dns.Set("hooks.rebind.test", "127.0.0.1")
	c := &http.Client{Transport: g.Transport()}
	resp, err := c.Get("http://hooks.rebind.test:" + port + "/hook")
	if err == nil {
		resp.Body.Close()
		t.Fatalf("the rebound name reached 127.0.0.1: %s", resp.Status)
	}
	if !errors.Is(err, egress.ErrRefused) || !strings.Contains(err.Error(), "loopback") {
		t.Fatalf("GET after rebinding: %v, want refused as loopback", err)
	}
	if dns.Asked("hooks.rebind.test") < 2 {
		t.Errorf("the name was asked %d times, want a lookup at put time and at dial time", dns.Asked("hooks.rebind.test"))
	}
}

// FuzzParseAllow: an allow-list from a flag, the environment or a config
// file is read into valid, masked prefixes, or refused.
func FuzzParseAllow(f *testing.F) {
	for _, s := range []string{"127.0.0.0/8", "10.1.2.3", "fd00::/8", "::1", "10.0.0.0/33", "fe80::1%eth0", "", " 1.2.3.4/32 "} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		got, err := egress.ParseAllow(strings.Split(s, ","))
		if err != nil {
			return
		}
		for _, p := range got {
			if !p.IsValid() || p != p.Masked() || p.Addr().Zone() != "" {
				t.Fatalf("ParseAllow(%q) gave %v", s, p)
			}
		}
	})
}
