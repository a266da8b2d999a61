// Command demoimage writes the demo's image: Debian bookworm minbase (its
// real dpkg status) with an npm app on top, as a docker save archive. It
// builds from the repository's fixtures, with no Docker Engine or network.
//
//	go run ./scripts/demoimage OUT.tar [TAG]
package main

import (
	"fmt"
	"os"

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
		fmt.Fprintln(os.Stderr, "usage: demoimage OUT.tar [TAG]")
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
	imagetest.WriteDockerArchive(r, os.Args[1], tag, img)
}
