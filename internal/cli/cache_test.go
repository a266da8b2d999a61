package cli

import (
	"encoding/json"
	"path/filepath"
	"testing"

	"github.com/scangate/scangate/internal/imagetest"
)

// TestLayerCacheCommands: a scan fills the data folder's layer cache, a
// rebuilt image's scan reports what a scan without the cache reports, and
// `cache prune` empties it.
func TestLayerCacheCommands(t *testing.T) {
	dir, archive := scanSetup(t)
	status := func() cacheUsage {
		t.Helper()
		var u cacheUsage
		r := run(t, dir, "--format", "json", "cache", "status").must(t)
		if err := json.Unmarshal([]byte(r.stdout), &u); err != nil {
			t.Fatalf("cache status: %v\n%s", err, r.stdout)
		}
		return u
	}
	run(t, dir, "--format", "json", "scan", "docker-archive:"+archive).must(t)
	if u := status(); u.Layers != 3 || u.Bytes == 0 {
		t.Fatalf("after one scan of 3 layers: %+v", u)
	}

	_, layers := imagetest.BookwormApp(t)
	update := imagetest.Layer(t,
		imagetest.Entry{Name: "app/node_modules/lodash/package.json", Body: `{"name": "lodash", "version": "4.17.21"}`},
		imagetest.Entry{Name: "var/lib/dpkg/status", Body: "Package: zlib1g\nStatus: install ok installed\nVersion: 1:1.3.dfsg-3.1\nSource: zlib\nArchitecture: amd64\n\n"},
	)
	rebuilt := imagetest.WriteDockerArchive(t, filepath.Join(t.TempDir(), "rebuilt.tar"), "127.0.0.1:5000/app:2",
		imagetest.Build(t, append(layers, update)...))
	type report struct {
		Packages []map[string]any
		Findings []map[string]any
		Summary  map[string]int
	}
	scanJSON := func(args ...string) report {
		t.Helper()
		r := run(t, dir, append([]string{"--format", "json", "scan"}, args...)...).must(t)
		var rep report
		if err := json.Unmarshal([]byte(r.stdout), &rep); err != nil {
			t.Fatal(err)
		}
		return rep
	}
	cached := scanJSON("docker-archive:" + rebuilt)
	if u := status(); u.Layers != 4 {
		t.Errorf("after the rebuilt image: %d cached layers; want 4 (its one new layer added)", u.Layers)
	}
	uncached := scanJSON("--layer-cache-bytes", "0", "docker-archive:"+rebuilt)
	a, _ := json.Marshal(cached)
	b, _ := json.Marshal(uncached)
	if string(a) != string(b) {
		t.Errorf("with the cache:\n%s\nwithout:\n%s", a, b)
	}
	for _, p := range cached.Packages {
		if p["name"] == "lodash" && p["version"] != "4.17.21" || p["name"] == "zlib1g" && p["version"] != "1:1.3.dfsg-3.1" {
			t.Errorf("upgraded package listed at its old version: %v", p)
		}
	}

	var pruned struct{ Removed, Left cacheUsage }
	r := run(t, dir, "--format", "json", "cache", "prune").must(t)
	if err := json.Unmarshal([]byte(r.stdout), &pruned); err != nil {
		t.Fatal(err)
	}
	if pruned.Removed.Layers != 4 || pruned.Left.Layers != 0 || status().Layers != 0 {
		t.Errorf("cache prune: %+v; then %+v", pruned, status())
	}
	if r := run(t, dir, "cache", "prune", "--keep-bytes", "-1"); r.code != ExitBadInput {
		t.Errorf("--keep-bytes -1: exit %d", r.code)
	}
}
