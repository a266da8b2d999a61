package build

import (
	"slices"
	"strings"
	"testing"
)

func TestBuildRequestChecks(t *testing.T) {
	b, err := New(Options{Registry: "127.0.0.1:5000"})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	ok := Request{Context: strings.NewReader(""), Repository: "shop/api", Tags: []string{"latest"}}
	for name, change := range map[string]func(*Request){
		"no context":          func(r *Request) { r.Context = nil },
		"Dockerfile outside":  func(r *Request) { r.Dockerfile = "../Dockerfile" },
		"absolute Dockerfile": func(r *Request) { r.Dockerfile = "/etc/Dockerfile" },
		"no tags":             func(r *Request) { r.Tags = nil },
		"bad tag":             func(r *Request) { r.Tags = []string{"no spaces"} },
		"upper-case repo":     func(r *Request) { r.Repository = "Shop/API" },
		"repo with a tag":     func(r *Request) { r.Repository = "shop/api:v1" },
		"repo with a digest": func(r *Request) {
			r.Repository = "shop/api@sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
		},
		"empty repo": func(r *Request) { r.Repository = "" },
	} {
		req := ok
		change(&req)
		if _, err := b.plan(req); err == nil {
			t.Errorf("%s: no error", name)
		}
	}
	p, err := b.plan(Request{Context: strings.NewReader(""), Repository: "shop/api", Tags: []string{"abc", "latest", "abc"}})
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(p.refs, []string{"127.0.0.1:5000/shop/api:abc", "127.0.0.1:5000/shop/api:latest"}) || p.container != "api" || p.req.Dockerfile != "Dockerfile" {
		t.Errorf("plan %+v", p)
	}
	for _, bad := range []string{"", "https://127.0.0.1:5000", "host/path"} {
		if _, err := New(Options{Registry: bad}); err == nil {
			t.Errorf("registry %q accepted", bad)
		}
	}
}
