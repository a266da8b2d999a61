package registry_test

import (
	"context"
	"net/http"
	"slices"
	"sync"
	"testing"

	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/scangate/scangate/internal/registry/registrytest"
	"github.com/scangate/scangate/internal/scanner"
	"github.com/scangate/scangate/internal/servertest"
)

// Concurrent pushes of different images to one tag leave scangate's
// record of the tag naming the manifest the registry serves for it, after
// every round: findings asked for by tag describe what a pull of the tag
// gets.
func TestConcurrentTagPushesRecordWhatIsServed(t *testing.T) {
	t.Parallel()
	s := servertest.Start(t, servertest.Options{Feeds: []string{}})
	const repo, tag, rounds, pushers = "race/app", "live", 20, 8
	for round := range rounds {
		var wg sync.WaitGroup
		errs := make([]error, pushers)
		for i := range pushers {
			img := registrytest.SmallImage(t)
			wg.Add(1)
			go func() {
				defer wg.Done()
				errs[i] = remote.Write(s.Ref(t, repo+":"+tag), img, remote.WithAuth(s.Auth()))
			}()
		}
		wg.Wait()
		for i, err := range errs {
			if err != nil {
				t.Fatalf("round %d, push %d: %v", round, i, err)
			}
		}
		served := registrytest.Do(t, http.MethodGet, "http://"+s.Addr+"/v2/"+repo+"/manifests/"+tag, "basic:"+s.Token, nil,
			map[string]string{"Accept": "application/vnd.docker.distribution.manifest.v2+json, application/vnd.oci.image.manifest.v1+json"})
		if served.Status != http.StatusOK {
			t.Fatalf("round %d: GET the tag: %d %s", round, served.Status, served.Body)
		}
		want := served.Header.Get("Docker-Content-Digest")
		imgs, err := scanner.NewResults(s.Store).ListImages(context.Background(), repo)
		if err != nil {
			t.Fatal(err)
		}
		var recorded []string
		for _, im := range imgs {
			if slices.Contains(im.Tags, tag) {
				recorded = append(recorded, im.Digest)
			}
		}
		if len(recorded) != 1 || recorded[0] != want {
			t.Errorf("round %d: the registry serves %s:%s as %s; scangate's record says %v", round, repo, tag, want, recorded)
		}
	}
}
