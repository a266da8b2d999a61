package scan

import (
	"os"
	"strings"
	"testing"
)

func TestBottlerocketInventory(t *testing.T) {
	f, err := os.Open("testdata/bottlerocket/application-inventory-2025-02.json")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	got, err := parseBottlerocketInventory(f)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 3 || got[0].Name != "glibc" || got[0].epoch != 1 || got[0].Version != "2.40" || got[0].Release != "1.1740525475.e3a5862c.br1" || got[1].epoch != 0 {
		t.Errorf("%+v", got)
	}
	if eco := osEcosystem(&OS{ID: "bottlerocket", VersionID: "1.34.0"}); eco != "Bottlerocket" {
		t.Errorf("ecosystem %q", eco)
	}
}

func TestBottlerocketInventoryBadInput(t *testing.T) {
	for name, in := range map[string]string{
		"not json":     `{"Content": [`,
		"no content":   `{}`,
		"not a list":   `{"Content": {}}`,
		"no name":      `{"Content": [{"Version": "1", "Release": "1"}]}`,
		"blank name":   `{"Content": [{"Name": "a b", "Version": "1", "Release": "1"}]}`,
		"long version": `{"Content": [{"Name": "a", "Version": "` + strings.Repeat("9", 300) + `", "Release": "1"}]}`,
		"bad epoch":    `{"Content": [{"Name": "a", "Version": "1", "Release": "1", "Epoch": "x"}]}`,
		"negative":     `{"Content": [{"Name": "a", "Version": "1", "Release": "1", "Epoch": "-1"}]}`,
		"too large":    `{"Content": [` + strings.Repeat(" ", bottlerocketMaxBytes) + `]}`,
	} {
		if _, err := parseBottlerocketInventory(strings.NewReader(in)); err == nil || len(err.Error()) > 300 {
			t.Errorf("%s: err %.300v", name, err)
		}
	}
	if got, err := parseBottlerocketInventory(strings.NewReader(`{"Content": []}`)); err != nil || len(got) != 0 {
		t.Errorf("an empty inventory: %v, %v", got, err)
	}
}

func FuzzBottlerocketInventory(f *testing.F) {
	data, err := os.ReadFile("testdata/bottlerocket/application-inventory-2026-06.json")
	if err != nil {
		f.Fatal(err)
	}
	f.Add(data)
	f.Fuzz(func(t *testing.T, data []byte) {
		es, err := parseBottlerocketInventory(strings.NewReader(string(data)))
		if err != nil {
			return
		}
		for _, e := range es {
			if !rpmField(e.Name) || !rpmField(e.Version) || !rpmField(e.Release) || e.epoch < 0 {
				t.Fatalf("entry %+v", e)
			}
		}
	})
}
