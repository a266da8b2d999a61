package servertest

import (
	"os/exec"
	"slices"
	"strings"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"
)

// PushBase pushes img to the server's registry as a base image for builds,
// and returns its reference, REGISTRY/REF. Builds take their bases from
// allowed registries only, by digest (Docker Hub is out of reach here
// anyway), so a test's base lives where a user's would. When the test
// ends, the Docker Engine's copy of the base, pulled by a build, and every
// image built on it are removed: img must be the test's own (a file of the
// test's id in it will do), or another test's cache goes with it.
func (s *Server) PushBase(t testing.TB, ref string, img v1.Image) string {
	t.Helper()
	s.Push(t, ref, img)
	id, err := img.ConfigName()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { RemoveImageFamily(t, id.String()) })
	return s.Addr + "/" + ref
}

// RemoveImageFamily removes image id from the Docker Engine with every
// image built on it, children first, as the legacy builder leaves its
// intermediate images. An id the engine lacks removes nothing.
func RemoveImageFamily(t testing.TB, id string) {
	out, err := exec.Command("docker", "image", "ls", "--all", "--quiet", "--no-trunc").Output()
	if err != nil {
		t.Logf("docker image ls: %v", err)
		return
	}
	ids := strings.Fields(string(out))
	if !slices.Contains(ids, id) {
		return
	}
	parents := map[string]string{}
	out, err = exec.Command("docker", append([]string{"image", "inspect", "--format", "{{.Id}} {{.Parent}}"}, ids...)...).Output()
	if err != nil {
		t.Logf("docker image inspect: %v", err)
		return
	}
	for _, line := range strings.Split(string(out), "\n") {
		if f := strings.Fields(line); len(f) == 2 {
			parents[f[0]] = f[1]
		}
	}
	family := []string{id}
	for grew := true; grew; {
		grew = false
		for child, parent := range parents {
			if slices.Contains(family, parent) && !slices.Contains(family, child) {
				family, grew = append(family, child), true
			}
		}
	}
	for _, img := range slices.Backward(family) {
		if out, err := exec.Command("docker", "rmi", "-f", img).CombinedOutput(); err != nil {
			t.Logf("docker rmi %s: %v %s", img, err, out)
		}
	}
}
