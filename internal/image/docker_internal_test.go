package image

import (
	"encoding/json"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// FuzzEngineRecord reads engine records (docker.go) from the layer cache's
// folder, which anything on the machine with the user's rights can write:
// a record is refused or is of the image it names, never a panic.
func FuzzEngineRecord(f *testing.F) {
	config := []byte(`{"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":["sha256:` + hex64('a') + `"]}}`)
	id := sha256Of(config)
	diffID := v1.Hash{Algorithm: "sha256", Hex: hex64('a')}
	manifest, err := json.Marshal(v1.Manifest{
		SchemaVersion: 2, MediaType: types.DockerManifestSchema2,
		Config: v1.Descriptor{MediaType: types.DockerConfigJSON, Size: int64(len(config)), Digest: v1.Hash{Algorithm: "sha256", Hex: id[len("sha256:"):]}},
		Layers: []v1.Descriptor{{MediaType: types.DockerUncompressedLayer, Size: 10240, Digest: diffID}},
	})
	if err != nil {
		f.Fatal(err)
	}
	good, err := json.Marshal(engineRecord{Format: engineRecordFormat, Config: config, Manifest: manifest})
	if err != nil {
		f.Fatal(err)
	}
	if _, err := decodeEngineRecord(id, []string{diffID.String()}, good); err != nil {
		f.Fatalf("the seed record: %v", err)
	}
	f.Add(good)
	f.Add([]byte(`{"format":"` + engineRecordFormat + `","config":"e30=","manifest":"e30="}`))
	f.Add([]byte(`{}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		ai, err := decodeEngineRecord(id, nil, data)
		if err != nil {
			return
		}
		if sha256Of(ai.rawConfig) != id || ai.configName.String() != id || len(ai.manifest.Layers) != len(ai.config.RootFS.DiffIDs) {
			t.Fatalf("a record of another image was taken: config %s, %d layers for %d DiffIDs",
				sha256Of(ai.rawConfig), len(ai.manifest.Layers), len(ai.config.RootFS.DiffIDs))
		}
	})
}

func hex64(c byte) string {
	b := make([]byte, 64)
	for i := range b {
		b[i] = c
	}
	return string(b)
}
