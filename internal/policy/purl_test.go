package policy

import (
	"reflect"
	"strings"
	"testing"
)

func TestParsePURL(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want purl
	}{
		{"pkg:deb/debian/zlib1g@1%3A1.2.13.dfsg-1?arch=amd64&distro=debian-12",
			purl{typ: "deb", namespace: "debian", name: "zlib1g", version: "1:1.2.13.dfsg-1",
				qualifiers: map[string]string{"arch": "amd64", "distro": "debian-12"}}},
		{"pkg:golang/golang.org/x/net@v0.17.0",
			purl{typ: "golang", namespace: "golang.org/x", name: "net", version: "v0.17.0"}},
		{"pkg:npm/%40types/node@20.1.0", purl{typ: "npm", namespace: "@types", name: "node", version: "20.1.0"}},
		{"pkg:npm/@types/node", purl{typ: "npm", namespace: "@types", name: "node"}},
		{"PKG://Maven/org.apache/log4j-core@2.4#sub/path/",
			purl{typ: "maven", namespace: "org.apache", name: "log4j-core", version: "2.4", subpath: "sub/path"}},
		{"pkg:apk/alpine/busybox?Arch=x86_64&empty=", purl{typ: "apk", namespace: "alpine", name: "busybox",
			qualifiers: map[string]string{"arch": "x86_64"}}},
		{"pkg:oci/app@sha256%3Aabc?repository_url=ghcr.io/org/app", purl{typ: "oci", name: "app", version: "sha256:abc",
			qualifiers: map[string]string{"repository_url": "ghcr.io/org/app"}}},
	} {
		got, err := parsePURL(tc.in)
		if err != nil {
			t.Errorf("%s: %v", tc.in, err)
			continue
		}
		if len(got.qualifiers) == 0 {
			got.qualifiers = nil
		}
		if !reflect.DeepEqual(got, tc.want) {
			t.Errorf("%s:\n got %+v\nwant %+v", tc.in, got, tc.want)
		}
	}
}

func TestParsePURLErrors(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"", `does not start with "pkg:"`},
		{"deb/debian/zlib1g", `does not start with "pkg:"`},
		{"pkg:", "type"},
		{"pkg:deb", "type"},
		{"pkg:1deb/x", "type"},
		{"pkg:deb/", "no name"},
		{"pkg:deb/debian/zlib%zz", "percent-encoding"},
		{"pkg:deb/debian/zlib?arch", "not key=value"},
		{"pkg:deb/debian/zlib?arch=a&ARCH=b", "given twice"},
		{"pkg:deb/x/" + strings.Repeat("x", maxPURLLen), "longer than"},
	} {
		if _, err := parsePURL(tc.in); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%q: error %v, want %q", tc.in, err, tc.want)
		}
	}
}

func TestPURLMatches(t *testing.T) {
	const pkg = "pkg:deb/debian/zlib1g@1%3A1.2.13.dfsg-1?arch=amd64&distro=debian-12"
	for _, tc := range []struct {
		pattern, pkg string
		want         bool
	}{
		{"pkg:deb/debian/zlib1g", pkg, true},
		{"pkg:deb/debian/ZLIB1G", pkg, true},
		{"pkg:deb/debian/zlib", pkg, false},
		{"pkg:deb/ubuntu/zlib1g", pkg, false},
		{"pkg:deb/debian/zlib1g@1:1.2.13.dfsg-1", pkg, true},
		{"pkg:deb/debian/zlib1g@1.2.13.dfsg-1", pkg, false},
		{"pkg:deb/debian/zlib1g?distro=debian-12", pkg, true},
		{"pkg:deb/debian/zlib1g?distro=debian-11", pkg, false},
		{"pkg:deb/debian/zlib1g#x", pkg, false},
		{"pkg:pypi/Django_REST", "pkg:pypi/django-rest@1.0", true},
		{"pkg:golang/github.com/Foo/bar", "pkg:golang/github.com/foo/bar@v1", false},
	} {
		p, err := parsePURL(tc.pattern)
		if err != nil {
			t.Fatal(err)
		}
		q, err := parsePURL(tc.pkg)
		if err != nil {
			t.Fatal(err)
		}
		if got := p.matches(q); got != tc.want {
			t.Errorf("%s matches %s = %v", tc.pattern, tc.pkg, got)
		}
	}
}
