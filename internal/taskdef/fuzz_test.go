package taskdef

import (
	"encoding/json"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

// FuzzParse: Parse never panics, and what it accepts is written as JSON
// that Parse reads back the same; Validate judges both alike, and what it
// passes reads back and passes again unchanged.
func FuzzParse(f *testing.F) {
	files, err := filepath.Glob("testdata/*.*")
	if err != nil {
		f.Fatal(err)
	}
	for _, name := range files {
		if filepath.Ext(name) == ".json" || filepath.Ext(name) == ".yaml" {
			b, err := os.ReadFile(name)
			if err != nil {
				f.Fatal(err)
			}
			f.Add(b)
		}
	}
	f.Add([]byte(base))
	f.Add([]byte("family: web\ncontainerDefinitions: [{name: web, image: nginx, essential: false, healthCheck: {command: [CMD, 'true']}}]\n"))
	f.Add([]byte(`{"family": "web", "volumes": [{"name": "v", "host": {}}], "containerDefinitions": [{"name": "web", "image": "nginx", "linuxParameters": {"capabilities": {}}, "mountPoints": [{"sourceVolume": "v"}]}]}`))
	f.Add([]byte(`{"taskDefinition": {"family": "web", "networkMode": "bridge", "pidMode": "task", "containerDefinitions": [{"name": "web", "image": "nginx", "privileged": true, "volumesFrom": [{"sourceContainer": "x"}], "linuxParameters": {"devices": [{"hostPath": "/dev/x", "permissions": ["read"]}]}, "portMappings": [{"containerPort": 53, "protocol": "udp", "name": "dns"}], "user": null, "ulimits": []}]}, "tags": []}`))
	f.Add([]byte("family: web\ncpu: 0.5 vCPU\nmemory: 1GB\ncontainerDefinitions:\n  - name: web\n    image: nginx\n    environment: [{name: A, value: 0x1F}, {name: B, value: yes}, {name: C, value: 2024-01-01}]\n    portMappings: [{containerPort: 0o17, hostPort: 1_000}]\n    dependsOn: [{containerName: db, condition: COMPLETE}]\n  - name: db\n    image: postgres\n    essential: false\n"))

	f.Fuzz(func(t *testing.T, data []byte) {
		d, err := Parse(data)
		if err != nil {
			return
		}
		d2 := roundTrip(t, d)
		if !reflect.DeepEqual(withoutIgnored(d), withoutIgnored(d2)) {
			t.Fatalf("read back differs:\n%s\n%s", dump(d), dump(d2))
		}
		opts := Options{AllowPrivileged: len(data)%2 == 0}
		err1, err2 := d.Validate(opts), d2.Validate(opts)
		if (err1 == nil) != (err2 == nil) || (err1 != nil && err1.Error() != err2.Error()) {
			t.Fatalf("Validate differs after the round trip: %v, then %v", err1, err2)
		}
		if err1 != nil {
			return
		}
		// Validated, stored, read back: valid, and the same.
		d3 := roundTrip(t, d)
		if err := d3.Validate(opts); err != nil {
			t.Fatalf("a validated definition read back fails: %v\n%s", err, dump(d))
		}
		if !reflect.DeepEqual(withoutIgnored(d), withoutIgnored(d3)) {
			t.Fatalf("validated definition read back differs:\n%s\n%s", dump(d), dump(d3))
		}
		if len(d.ContainerDefinitions) > 0 {
			name := d.ContainerDefinitions[0].Name
			n, err := d.WithImage(name, "registry.example/app@sha256:0000000000000000000000000000000000000000000000000000000000000000")
			if err != nil {
				t.Fatalf("WithImage(%q): %v", name, err)
			}
			// A longer image can take a definition past MaxSize; nothing
			// else may make it invalid.
			if err := n.Validate(opts); err != nil && !strings.Contains(err.Error(), "once written as JSON") {
				t.Fatalf("WithImage made an invalid definition: %v", err)
			}
		}
	})
}

func roundTrip(t *testing.T, d *Definition) *Definition {
	t.Helper()
	b, err := json.Marshal(d)
	if err != nil {
		t.Fatalf("marshal: %v", err)
	}
	d2, err := Parse(b)
	if err != nil {
		t.Fatalf("Parse refuses what it accepted, as JSON: %v\n%s", err, b)
	}
	return d2
}

func withoutIgnored(d *Definition) *Definition {
	c := d.Clone()
	c.Ignored = nil
	return c
}
