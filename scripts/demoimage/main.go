// Command demoimage writes the demo's image: Debian bookworm minbase (its
// real dpkg status) with an npm app on top, as a docker save archive. It
// builds from the repository's fixtures, with no Docker Engine or network.
// With push, it pushes the image to a registry instead, the token as the
// password, as `docker push` would after `docker login`.
//
// With "fixed" after the tag, the image is the same Debian release with no
// packages installed: a base image that passes a policy.
//
//	go run ./scripts/demoimage OUT.tar [TAG [fixed]]
//	go run ./scripts/demoimage push HOST:PORT/REPO:TAG TOKEN [fixed]
package main

import (
	"fmt"
	"os"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/scangate/scangate/internal/imagetest"
)

// reporter lets the image builders report to a program, not a test.
type reporter struct{ dir string }

func (reporter) Helper() {}

func (reporter) Fatal(args ...any) {
	fmt.Fprintln(os.Stderr, append([]any{"demoimage:"}, args...)...)
	os.Exit(1)
}

func (r reporter) Fatalf(format string, args ...any) { r.Fatal(fmt.Sprintf(format, args...)) }

func (r reporter) TempDir() string { return r.dir }

func main() {
	if len(os.Args) < 2 {
		fmt.Fprintln(os.Stderr, "usage: demoimage OUT.tar [TAG [fixed]] | demoimage push REF TOKEN [fixed]")
		os.Exit(2)
	}
	tag := "127.0.0.1:5000/demo/app:1"
	if len(os.Args) > 2 {
		tag = os.Args[2]
	}
	dir, err := os.MkdirTemp("", "demoimage-")
	if err != nil {
		reporter{}.Fatal(err)
	}
	defer os.RemoveAll(dir)
	r := reporter{dir: dir}
	imagetest.Fixtures = "testdata/vulndata" // run from the repository's root
	img, _ := imagetest.BookwormApp(r)
	fixed := len(os.Args) > 3 && os.Args[3] == "fixed"
	if os.Args[1] == "push" {
		fixed = len(os.Args) == 5 && os.Args[4] == "fixed"
	}
	if fixed {
		img = imagetest.Build(r, imagetest.Layer(r,
			imagetest.Entry{Name: "etc/os-release", Body: imagetest.ReadFixture(r, "debian", "os-release")},
			imagetest.Entry{Name: "var/lib/dpkg/status", Body: ""}))
	}
	if os.Args[1] == "push" && (len(os.Args) == 4 || len(os.Args) == 5) {
		push(r, img, os.Args[2], os.Args[3])
		return
	}
	imagetest.WriteDockerArchive(r, os.Args[1], tag, img)
}

func push(r reporter, img v1.Image, to, token string) {
	ref, err := name.ParseReference(to, name.Insecure)
	if err != nil {
		r.Fatal(err)
	}
	if err := remote.Write(ref, img, remote.WithAuth(&authn.Basic{Username: "demo", Password: token})); err != nil {
		r.Fatal(err)
	}
	d, err := img.Digest()
	if err != nil {
		r.Fatal(err)
	}
	fmt.Printf("pushed %s@%s\n", to, d)
}
