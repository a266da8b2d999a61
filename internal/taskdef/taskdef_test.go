package taskdef

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
)

func readTestdata(t testing.TB, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func mustParse(t testing.TB, doc string) *Definition {
	t.Helper()
	d, err := Parse([]byte(doc))
	if err != nil {
		t.Fatalf("Parse: %v", err)
	}
	return d
}

// sampleAppCommand is the command of both containers of
// render-task-definition.json.
const sampleAppCommand = `/bin/sh -c "echo '<html> <head> <title>Amazon ECS Sample App</title> <style>body {margin-top: 40px; background-color: #333;} </style> </head><body> <div style=color:white;text-align:center> <h1>Amazon ECS Sample App</h1> <h2>Congratulations!</h2> <p>Your application is now running on a container in Amazon ECS.</p> </div></body></html>' >  /usr/local/apache2/htdocs/index.html && httpd-foreground"`

// The GitHub action's Fargate task definition, as given to
// register-task-definition, in ECS's JSON and in scangate's YAML.
func TestParseECSTaskDefinition(t *testing.T) {
	want := &Definition{
		Family:      "github-actions-render-task-definition-integ-tests",
		Cpu:         "256",
		Memory:      "512",
		NetworkMode: "awsvpc",
		ContainerDefinitions: []Container{{
			Name:              "sample-app",
			Image:             "httpd:2.4",
			EntryPoint:        []string{"sh", "-c"},
			Command:           []string{sampleAppCommand},
			PortMappings:      []PortMapping{{ContainerPort: 80, HostPort: 80, Protocol: "tcp"}},
			Cpu:               256,
			MemoryReservation: 512,
			Essential:         new(true),
		}, {
			Name:         "sample-app-2",
			Image:        "httpd:2.4",
			EntryPoint:   []string{"sh", "-c"},
			Command:      []string{sampleAppCommand},
			PortMappings: []PortMapping{{ContainerPort: 8080, HostPort: 8080, Protocol: "tcp"}},
		}},
		Ignored: []string{
			"requiresCompatibilities: ignored (scangate runs every task on its Docker Engine)",
			"tags: ignored (tags are not kept)",
			"networkMode: ignored (every task joins its cluster's network)",
			"cpu: ignored (kept, but scangate limits each container, not the task)",
			"memory: ignored (kept, but scangate limits each container, not the task)",
		},
	}
	for _, file := range []string{"render-task-definition.json", "render-task-definition.yaml"} {
		t.Run(file, func(t *testing.T) {
			d, err := Parse(readTestdata(t, file))
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(d, want) {
				t.Errorf("got\n%s\nwant\n%s", dump(d), dump(want))
			}
			if err := d.Validate(Options{}); err != nil {
				t.Fatal(err)
			}
			// The second container's essential is filled in; nothing else changes.
			if e := d.ContainerDefinitions[1].Essential; e == nil || !*e {
				t.Errorf("sample-app-2: essential %v, want the default true", e)
			}
		})
	}
}

// describe-task-definition's output: the wrapper, and what ECS adds.
func TestParseDescribeOutput(t *testing.T) {
	d, err := Parse(readTestdata(t, "sleep360-registered.json"))
	if err != nil {
		t.Fatal(err)
	}
	if err := d.Validate(Options{}); err != nil {
		t.Fatal(err)
	}
	b, _ := json.Marshal(d)
	const want = `{"family":"sleep360","containerDefinitions":[{"name":"sleep","image":"busybox","command":["sleep","360"],"cpu":10,"memory":10,"essential":true}]}`
	if string(b) != want {
		t.Errorf("stored as\n%s\nwant\n%s", b, want)
	}
	const byECS = ": ignored (written by ECS when it registered the definition; scangate's store numbers revisions)"
	wantIgnored := []string{
		"taskDefinition.taskDefinitionArn" + byECS,
		"taskDefinition.revision" + byECS,
		"taskDefinition.status" + byECS,
		"taskDefinition.placementConstraints: ignored (one engine: there is nowhere else to place a task)",
		"taskDefinition.compatibilities" + byECS,
	}
	if !slices.Equal(d.Ignored, wantIgnored) {
		t.Errorf("ignored\n%s\nwant\n%s", strings.Join(d.Ignored, "\n"), strings.Join(wantIgnored, "\n"))
	}
}

// Real ECS definitions scangate refuses, with the reason.
func TestRealDefinitionsRefused(t *testing.T) {
	// A volume at a host path, mounted into both containers.
	d, err := Parse(readTestdata(t, "web-timer.json"))
	if err != nil {
		t.Fatal(err)
	}
	err = d.Validate(Options{AllowPrivileged: true})
	const wantMount = `task definition web-timer: containerDefinitions[0].mountPoints[0]: volume "webdata" is the host path /ecs/webdata: bind mounts of host paths are refused`
	if err == nil || err.Error() != wantMount {
		t.Errorf("web-timer: %v\nwant %s", err, wantMount)
	}
	// wordpress links to mysql: Docker links, which scangate does not make.
	_, err = Parse(readTestdata(t, "hello_world-described.json"))
	const wantLinks = "task definition: taskDefinition.containerDefinitions[0].links: not supported (legacy Docker links, which scangate's engine does not make); remove it"
	if err == nil || err.Error() != wantLinks {
		t.Errorf("hello_world: %v\nwant %s", err, wantLinks)
	}
	// Without its links, hello_world is read, with what describe added.
	b := bytes.Replace(readTestdata(t, "hello_world-described.json"), []byte(`"mysql"`), nil, 1)
	d, err = Parse(b)
	if err != nil {
		t.Fatal(err)
	}
	if err := d.Validate(Options{}); err != nil {
		t.Fatal(err)
	}
	for _, field := range []string{"taskDefinition.registeredAt", "taskDefinition.registeredBy", "tags"} {
		if !slices.ContainsFunc(d.Ignored, func(s string) bool { return strings.HasPrefix(s, field+": ignored (") }) {
			t.Errorf("%s not in Ignored: %q", field, d.Ignored)
		}
	}
}

// Every ECS field scangate ignores is listed once, with why.
func TestIgnored(t *testing.T) {
	doc := `{
  "taskDefinitionArn": "arn:aws:ecs:us-east-1:123456789012:task-definition/web:3",
  "revision": 3, "status": "ACTIVE",
  "requiresAttributes": [{"name": "com.amazonaws.ecs.capability.docker-remote-api.1.18"}],
  "compatibilities": ["EC2", "FARGATE"],
  "registeredAt": "2024-06-21T11:15:12.669000-05:00", "registeredBy": "arn:aws:sts::123456789012:assumed-role/r/x",
  "deregisteredAt": "2024-06-22T11:15:12.669000-05:00",
  "executionRoleArn": "arn:aws:iam::123456789012:role/ecsTaskExecutionRole",
  "taskRoleArn": "arn:aws:iam::123456789012:role/app",
  "requiresCompatibilities": ["FARGATE"],
  "networkMode": "bridge",
  "runtimePlatform": {"operatingSystemFamily": "LINUX", "cpuArchitecture": "X86_64"},
  "tags": [{"key": "team", "value": "shop"}],
  "family": "web",
  "containerDefinitions": [{
    "name": "web", "image": "nginx:1.27",
    "logConfiguration": {"logDriver": "awslogs", "options": {"awslogs-group": "/ecs/web"}},
    "portMappings": [{"containerPort": 80, "name": "http", "appProtocol": "http"}],
    "user": "", "readonlyRootFilesystem": false, "ulimits": [], "dockerLabels": {}, "systemControls": [],
    "restartPolicy": {"enabled": false}, "linuxParameters": {"capabilities": {"drop": []}, "initProcessEnabled": false}
  }]
}`
	d := mustParse(t, doc)
	want := []string{
		"taskDefinitionArn: ignored (written by ECS when it registered the definition; scangate's store numbers revisions)",
		"revision: ignored (written by ECS when it registered the definition; scangate's store numbers revisions)",
		"status: ignored (written by ECS when it registered the definition; scangate's store numbers revisions)",
		"requiresAttributes: ignored (written by ECS when it registered the definition; scangate's store numbers revisions)",
		"compatibilities: ignored (written by ECS when it registered the definition; scangate's store numbers revisions)",
		"registeredAt: ignored (written by ECS when it registered the definition; scangate's store numbers revisions)",
		"registeredBy: ignored (written by ECS when it registered the definition; scangate's store numbers revisions)",
		"deregisteredAt: ignored (written by ECS when it registered the definition; scangate's store numbers revisions)",
		"executionRoleArn: ignored (no IAM in scangate)",
		"taskRoleArn: ignored (no IAM in scangate)",
		"requiresCompatibilities: ignored (scangate runs every task on its Docker Engine)",
		"runtimePlatform: ignored (tasks run on the engine's own platform)",
		"tags: ignored (tags are not kept)",
		"containerDefinitions[0].logConfiguration: ignored (scangate reads container logs from the engine)",
		"containerDefinitions[0].portMappings[0].name: ignored (no Service Connect in scangate)",
		"containerDefinitions[0].portMappings[0].appProtocol: ignored (no Service Connect in scangate)",
		"networkMode: ignored (every task joins its cluster's network)",
	}
	if !slices.Equal(d.Ignored, want) {
		t.Errorf("ignored\n%s\nwant\n%s", strings.Join(d.Ignored, "\n"), strings.Join(want, "\n"))
	}
	if err := d.Validate(Options{}); err != nil {
		t.Fatal(err)
	}
	// What is ignored is not kept; networkMode is, to be judged again.
	b, _ := json.Marshal(d)
	const stored = `{"family":"web","containerDefinitions":[{"name":"web","image":"nginx:1.27","portMappings":[{"containerPort":80,"protocol":"tcp"}],"essential":true,"linuxParameters":{"capabilities":{}}}],"networkMode":"bridge"}`
	if string(b) != stored {
		t.Errorf("stored as\n%s\nwant\n%s", b, stored)
	}
}

func TestParseErrors(t *testing.T) {
	minimal := `{"family": "web", "containerDefinitions": [{"name": "web", "image": "nginx"}]}`
	for _, tc := range []struct{ name, doc, want string }{
		{"too large", `{"family": "` + strings.Repeat("x", MaxSize) + `"}`, "65550 bytes, at most 65536 (ECS's limit)"},
		{"too large as JSON", "family: web\ncontainerDefinitions: [{name: web, image: nginx, command: [" + strings.Repeat("a,", 20000) + "a]}]\n", "80088 bytes once written as JSON, at most 65536 (ECS's limit)"},
		{"empty", "", "the document is empty"},
		{"only a comment", "# nothing\n", "the document is empty"},
		{"not an object", "[1, 2]", "want an object with family and containerDefinitions, found a list"},
		{"yaml scalar", "web", "want an object with family and containerDefinitions, found a string"},
		{"json syntax", "{\n  \"family\": \"web\",\n  \"containerDefinitions\": [}\n}", "JSON: line 3, column 28: invalid character '}' looking for beginning of value"},
		{"json truncated", `{"family": "web", "containerDefinitions": [`, "JSON: unexpected end of the document"},
		{"two json values", minimal + " {}", "more than one JSON value"},
		{"json too deep", `{"family": "web", "tags": ` + strings.Repeat("[", 40) + strings.Repeat("]", 40) + `}`, "tags" + strings.Repeat("[0]", 31) + ": nested more than 32 deep"},
		{"yaml too deep", "family: web\ntags: " + strings.Repeat("[", 40) + strings.Repeat("]", 40), "tags" + strings.Repeat("[0]", 31) + ": line 2: nested more than 32 deep"},
		{"json key twice", `{"family": "web", "containerDefinitions": [{"name": "web", "image": "nginx", "privileged": false, "privileged": true}]}`, "containerDefinitions[0].privileged: given twice"},
		{"yaml key twice", "family: web\nfamily: api\n", "family: line 2: given twice"},
		{"two yaml documents", "family: web\n---\nfamily: api\n", "more than one YAML document"},
		{"yaml alias", "family: &f web\ncontainerDefinitions:\n  - name: *f\n    image: nginx\n", "containerDefinitions[0].name: line 3: YAML aliases are not allowed"},
		{"yaml alias bomb", "family: web\ntags:\n  a: &a [x, x, x, x, x, x, x, x, x]\n  b: &b [*a, *a, *a, *a, *a, *a, *a, *a, *a]\n  c: [*b, *b, *b, *b, *b, *b, *b, *b, *b]\n", "tags.b[0]: line 4: YAML aliases are not allowed"},
		{"yaml merge key", "family: web\ncontainerDefinitions:\n  - <<: {name: web}\n    image: nginx\n", `containerDefinitions[0]["<<"]: unknown field`},
		{"yaml tag", "family: !!binary d2Vi\n", "family: line 1: YAML tag !!binary is not supported"},
		{"yaml syntax", "family: web\n  image: [\n", "yaml: line 2: mapping values are not allowed in this context"},
		{"unknown field", `{"family": "web", "containerDefinitions": [{"name": "web", "imagee": "nginx"}]}`, "containerDefinitions[0].imagee: unknown field (did you mean image?)"},
		{"unknown field, case", `{"Family": "web"}`, "Family: unknown field (did you mean family?)"},
		{"unknown field, far", `{"family": "web", "colour": "blue"}`, "colour: unknown field"},
		{"unknown field, not a name", "{\"family\": \"web\", \"a b\\n\": 1}", `["a b\n"]: unknown field`},
		{"unknown in wrapper", `{"taskDefinition": {"family": "web", "containerDefinition": []}}`, "taskDefinition.containerDefinition: unknown field (did you mean containerDefinitions?)"},
		{"wrapper null", `{"taskDefinition": null}`, "taskDefinition: null"},
		{"string for a number", `{"family": "web", "containerDefinitions": [{"name": "web", "image": "nginx", "cpu": "256"}]}`, "containerDefinitions[0].cpu: want a whole number, found a string"},
		{"fraction", `{"family": "web", "containerDefinitions": [{"name": "web", "image": "nginx", "memory": 1.5}]}`, "containerDefinitions[0].memory: want a whole number, found 1.5"},
		{"too large a number", `{"family": "web", "containerDefinitions": [{"name": "web", "image": "nginx", "memory": 99999999999999999999}]}`, "containerDefinitions[0].memory: 99999999999999999999 is too large"},
		{"yaml quoted number", "family: web\ncontainerDefinitions:\n  - name: web\n    image: nginx\n    portMappings:\n      - containerPort: \"80\"\n", "containerDefinitions[0].portMappings[0].containerPort: want a whole number, found a string"},
		{"number for a string", `{"family": 7}`, "family: want a string, found the number 7"},
		{"object for a list", `{"family": "web", "containerDefinitions": {"name": "web"}}`, "containerDefinitions: want a list, found an object"},
		{"string for a bool", `{"family": "web", "containerDefinitions": [{"name": "web", "image": "nginx", "essential": "yes"}]}`, "containerDefinitions[0].essential: want true or false, found a string"},
		{"yaml yes is no bool", "family: web\ncontainerDefinitions:\n  - name: web\n    image: nginx\n    essential: yes\n", "containerDefinitions[0].essential: want true or false, found a string"},
		{"list for an object", `{"family": "web", "containerDefinitions": [{"name": "web", "image": "nginx", "healthCheck": []}]}`, "containerDefinitions[0].healthCheck: want an object, found a list"},
		{"secrets", `{"family": "web", "containerDefinitions": [{"name": "web", "image": "nginx", "secrets": [{"name": "DB", "valueFrom": "arn:aws:secretsmanager:x"}]}]}`, "containerDefinitions[0].secrets: not supported (no secret store in scangate: the container would start without them); remove it"},
		{"user", "family: web\ncontainerDefinitions:\n  - name: web\n    image: nginx\n    user: nobody\n", "containerDefinitions[0].user: not supported (the container would run as the image's user, not this one); remove it"},
		{"capabilities drop", `{"family": "web", "containerDefinitions": [{"name": "web", "image": "nginx", "linuxParameters": {"capabilities": {"drop": ["ALL"]}}}]}`, "containerDefinitions[0].linuxParameters.capabilities.drop: not supported (the container would keep the capabilities it asks to drop); remove it"},
		{"restart policy", `{"family": "web", "containerDefinitions": [{"name": "web", "image": "nginx", "restartPolicy": {"enabled": true}}]}`, "containerDefinitions[0].restartPolicy: not supported"},
		{"efs volume", `{"family": "web", "volumes": [{"name": "d", "efsVolumeConfiguration": {"fileSystemId": "fs-1"}}]}`, "volumes[0].efsVolumeConfiguration: not supported (scangate's engine mounts no volumes); remove it"},
		{"proxy", `{"family": "web", "proxyConfiguration": {"type": "APPMESH", "containerName": "envoy"}}`, "proxyConfiguration: not supported (App Mesh's proxy is not part of scangate); remove it"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			d, err := Parse([]byte(tc.doc))
			if err == nil {
				t.Fatalf("accepted: %s", dump(d))
			}
			if want := "task definition: " + tc.want; !strings.HasPrefix(err.Error(), want) {
				t.Errorf("error %q\nwant %q", err, want)
			}
		})
	}
	mustParse(t, minimal)
}

// Both syntaxes read null as absent, and YAML's numbers and booleans as
// written where a string is wanted.
func TestParseLenient(t *testing.T) {
	// As Terraform's templates write them: nulls and empty lists everywhere.
	d := mustParse(t, `{"family": "web", "cpu": null, "containerDefinitions": [{"name": "web", "image": "nginx", "essential": null, "command": [],
		"linuxParameters": null, "privileged": null, "stopTimeout": null, "user": null, "interactive": null, "links": [], "dockerLabels": {},
		"ulimits": [], "secrets": [], "extraHosts": [], "startTimeout": null, "hostname": null}]}`)
	if d.Cpu != "" || d.ContainerDefinitions[0].Essential != nil || d.ContainerDefinitions[0].Command != nil || len(d.Ignored) != 0 {
		t.Errorf("nulls: %s", dump(d))
	}
	d = mustParse(t, "\ufefffamily: web\ncpu: 0.25 vCPU\nmemory: 1024\ncontainerDefinitions:\n  - name: web\n    image: nginx\n    command: [sleep, 360]\n    portMappings: [{containerPort: 0x50}]\n    environment:\n      - {name: DEBUG, value: true}\n      - {name: RATIO, value: 1.50}\n      - {name: EMPTY, value: ~}\n")
	c := d.ContainerDefinitions[0]
	if d.Cpu != "0.25 vCPU" || d.Memory != "1024" || !slices.Equal(c.Command, []string{"sleep", "360"}) || c.PortMappings[0].ContainerPort != 80 ||
		!slices.Equal(c.Environment, []KeyValue{{"DEBUG", "true"}, {"RATIO", "1.50"}, {"EMPTY", ""}}) {
		t.Errorf("yaml scalars: %s", dump(d))
	}
	if err := d.Validate(Options{}); err != nil {
		t.Error(err)
	}
}

// base is a valid task definition that exercises every rule.
const base = `
family: shop
containerDefinitions:
  - name: api
    image: 127.0.0.1:5000/shop/api@sha256:2d8f2d2bd44c5a7df0f2e3c3e1e6c1c2b4c0e0a4d6b0c9a3a3f5e1c2b3a4d5e6
    cpu: 256
    memory: 256
    memoryReservation: 128
    stopTimeout: 30
    portMappings:
      - containerPort: 8080
        hostPort: 8080
    environment:
      - name: PORT
        value: "8080"
    healthCheck:
      command: [CMD-SHELL, "wget -q -O- http://localhost:8080/healthz || exit 1"]
    dependsOn:
      - containerName: migrate
        condition: SUCCESS
      - containerName: db
        condition: HEALTHY
  - name: db
    image: postgres:16
    healthCheck:
      command: [CMD, pg_isready]
  - name: migrate
    image: 127.0.0.1:5000/shop/api:migrate
    essential: false
    command: [migrate, up]
    dependsOn:
      - containerName: db
        condition: HEALTHY
`

func TestValidate(t *testing.T) {
	d := mustParse(t, base)
	if err := d.Validate(Options{}); err != nil {
		t.Fatal(err)
	}
	// The defaults are filled in.
	api, db, migrate := d.ContainerDefinitions[0], d.ContainerDefinitions[1], d.ContainerDefinitions[2]
	if *api.Essential != true || *db.Essential != true || *migrate.Essential != false {
		t.Errorf("essential: %v %v %v", *api.Essential, *db.Essential, *migrate.Essential)
	}
	if api.PortMappings[0].Protocol != "tcp" {
		t.Errorf("protocol %q, want tcp", api.PortMappings[0].Protocol)
	}
	wantHealth := HealthCheck{Command: []string{"CMD", "pg_isready"}, Interval: 30, Timeout: 5, Retries: 3}
	if !reflect.DeepEqual(*db.HealthCheck, wantHealth) {
		t.Errorf("health check %+v, want %+v", *db.HealthCheck, wantHealth)
	}
	// Validating again changes nothing.
	before, _ := json.Marshal(d)
	if err := d.Validate(Options{}); err != nil {
		t.Fatal(err)
	}
	if after, _ := json.Marshal(d); !bytes.Equal(before, after) {
		t.Errorf("second Validate changed\n%s\nto\n%s", before, after)
	}
}

// Each rule, broken once: the message names the field and says why.
func TestValidateErrors(t *testing.T) {
	type edit = func(d *Definition)
	api := func(f func(c *Container)) edit { return func(d *Definition) { f(&d.ContainerDefinitions[0]) } }
	db := func(f func(c *Container)) edit { return func(d *Definition) { f(&d.ContainerDefinitions[1]) } }
	health := func(f func(h *HealthCheck)) edit { return api(func(c *Container) { f(c.HealthCheck) }) }
	many := func(n int, s string) []string { return slices.Repeat([]string{s}, n) }
	for _, tc := range []struct {
		name string
		edit edit
		opts Options
		want string // after "task definition shop: "
	}{
		{"family", func(d *Definition) { d.Family = "shop api" }, Options{}, `family: "shop api" is not a family name: use 1 to 255 letters, digits, '_' or '-'`},
		{"family too long", func(d *Definition) { d.Family = strings.Repeat("a", 256) }, Options{}, "family: "},
		{"task cpu", func(d *Definition) { d.Cpu = "lots" }, Options{}, `cpu: "lots": want CPU units ("256") or vCPUs ("0.25 vCPU")`},
		{"task memory", func(d *Definition) { d.Memory = "1 TB" }, Options{}, `memory: "1 TB": want MiB ("512") or GB ("0.5 GB")`},
		{"no containers", func(d *Definition) { d.ContainerDefinitions = nil }, Options{}, "containerDefinitions: 0 containers, want 1 to 10"},
		{"11 containers", func(d *Definition) {
			for i := range 8 {
				d.ContainerDefinitions = append(d.ContainerDefinitions, Container{Name: "side" + string(rune('a'+i)), Image: "busybox"})
			}
		}, Options{}, "containerDefinitions: 11 containers, want 1 to 10"},
		{"container name", db(func(c *Container) { c.Name = "db.1" }), Options{}, `containerDefinitions[1].name: "db.1" is not a container name: use 1 to 255 letters, digits, '_' or '-'`},
		{"duplicate name", db(func(c *Container) { c.Name = "api" }), Options{}, `containerDefinitions[1].name: "api" is also the name of containerDefinitions[0]`},
		{"no image", db(func(c *Container) { c.Image = "" }), Options{}, "containerDefinitions[1].image: required"},
		{"bad image", db(func(c *Container) { c.Image = "Postgres:16" }), Options{}, `containerDefinitions[1].image: "Postgres:16" is not an image reference: invalid reference format: repository name (library/Postgres) must be lowercase`},
		{"container port", db(func(c *Container) { c.PortMappings = []PortMapping{{ContainerPort: 70000}} }), Options{}, "containerDefinitions[1].portMappings[0].containerPort: 70000 is not a port (1-65535)"},
		{"no container port", db(func(c *Container) { c.PortMappings = []PortMapping{{HostPort: 5432}} }), Options{}, "containerDefinitions[1].portMappings[0].containerPort: 0 is not a port (1-65535)"},
		{"host port", db(func(c *Container) { c.PortMappings = []PortMapping{{ContainerPort: 5432, HostPort: -1}} }), Options{}, "containerDefinitions[1].portMappings[0].hostPort: -1 is not a port (0 for any free port, or 1-65535)"},
		{"protocol", db(func(c *Container) { c.PortMappings = []PortMapping{{ContainerPort: 5432, Protocol: "sctp"}} }), Options{}, `containerDefinitions[1].portMappings[0].protocol: "sctp": want tcp or udp`},
		{"protocol case", db(func(c *Container) { c.PortMappings = []PortMapping{{ContainerPort: 5432, Protocol: "TCP"}} }), Options{}, `containerDefinitions[1].portMappings[0].protocol: "TCP": want tcp or udp`},
		{"host port twice", db(func(c *Container) {
			c.PortMappings = []PortMapping{{ContainerPort: 5432, HostPort: 8080, Protocol: "tcp"}}
		}), Options{}, "containerDefinitions[1].portMappings[0].hostPort: 8080/tcp is already published by containerDefinitions[0].portMappings[0]"},
		{"host port twice, one container", api(func(c *Container) {
			c.PortMappings = append(c.PortMappings, PortMapping{ContainerPort: 9090, HostPort: 8080})
		}), Options{}, "containerDefinitions[0].portMappings[1].hostPort: 8080/tcp is already published by containerDefinitions[0].portMappings[0]"},
		{"cpu", api(func(c *Container) { c.Cpu = 10241 }), Options{}, "containerDefinitions[0].cpu: 10241: want 0 (no limit) to 10240 (1024 is one core)"},
		{"negative cpu", api(func(c *Container) { c.Cpu = -1 }), Options{}, "containerDefinitions[0].cpu: -1: want 0 (no limit) to 10240 (1024 is one core)"},
		{"memory too small", api(func(c *Container) { c.Memory, c.MemoryReservation = 5, 0 }), Options{}, "containerDefinitions[0].memory: 5 MiB: want 0 (no limit) or 6 to 122880 (Docker's minimum is 6 MiB)"},
		{"memory too large", api(func(c *Container) { c.Memory = 122881 }), Options{}, "containerDefinitions[0].memory: 122881 MiB: want 0 (no limit) or 6 to 122880 (Docker's minimum is 6 MiB)"},
		{"reservation too small", api(func(c *Container) { c.MemoryReservation = 1 }), Options{}, "containerDefinitions[0].memoryReservation: 1 MiB: want 0 (no limit) or 6 to 122880 (Docker's minimum is 6 MiB)"},
		{"reservation over memory", api(func(c *Container) { c.MemoryReservation = 257 }), Options{}, "containerDefinitions[0].memoryReservation: 257 MiB is more than memory (256 MiB), the hard limit"},
		{"health command empty", health(func(h *HealthCheck) { h.Command = nil }), Options{}, `containerDefinitions[0].healthCheck.command: required: ["CMD", "program", "arg"...] or ["CMD-SHELL", "a shell line"]`},
		{"health command form", health(func(h *HealthCheck) { h.Command = []string{"curl", "-f", "http://localhost/"} }), Options{}, `containerDefinitions[0].healthCheck.command: "curl" first: want CMD or CMD-SHELL first, as ECS does`},
		{"health NONE", health(func(h *HealthCheck) { h.Command = []string{"NONE"} }), Options{}, `containerDefinitions[0].healthCheck.command: "NONE" first: want CMD or CMD-SHELL first, as ECS does`},
		{"health CMD alone", health(func(h *HealthCheck) { h.Command = []string{"CMD"} }), Options{}, "containerDefinitions[0].healthCheck.command: CMD needs the program to run after it"},
		{"health CMD-SHELL two lines", health(func(h *HealthCheck) { h.Command = []string{"CMD-SHELL", "true", "false"} }), Options{}, "containerDefinitions[0].healthCheck.command: CMD-SHELL takes one shell line after it"},
		{"health interval low", health(func(h *HealthCheck) { h.Interval = 4 }), Options{}, "containerDefinitions[0].healthCheck.interval: 4 seconds: want 5 to 300 (default 30)"},
		{"health interval high", health(func(h *HealthCheck) { h.Interval = 301 }), Options{}, "containerDefinitions[0].healthCheck.interval: 301 seconds: want 5 to 300 (default 30)"},
		{"health timeout low", health(func(h *HealthCheck) { h.Timeout = 1 }), Options{}, "containerDefinitions[0].healthCheck.timeout: 1 seconds: want 2 to 120 (default 5)"},
		{"health timeout high", health(func(h *HealthCheck) { h.Interval, h.Timeout = 300, 121 }), Options{}, "containerDefinitions[0].healthCheck.timeout: 121 seconds: want 2 to 120 (default 5)"},
		{"health retries", health(func(h *HealthCheck) { h.Retries = 11 }), Options{}, "containerDefinitions[0].healthCheck.retries: 11: want 1 to 10 (default 3)"},
		{"health negative retries", health(func(h *HealthCheck) { h.Retries = -1 }), Options{}, "containerDefinitions[0].healthCheck.retries: -1: want 1 to 10 (default 3)"},
		{"health start period", health(func(h *HealthCheck) { h.StartPeriod = 301 }), Options{}, "containerDefinitions[0].healthCheck.startPeriod: 301 seconds: want 0 to 300 (default 0)"},
		{"health timeout not shorter", health(func(h *HealthCheck) { h.Interval, h.Timeout = 10, 10 }), Options{}, "containerDefinitions[0].healthCheck.timeout: 10 seconds must be shorter than the interval (10 seconds)"},
		{"health default timeout vs interval", health(func(h *HealthCheck) { h.Interval = 5 }), Options{}, "containerDefinitions[0].healthCheck.timeout: 5 seconds must be shorter than the interval (5 seconds)"},
		{"depends on nothing", api(func(c *Container) { c.DependsOn[0].ContainerName = "cache" }), Options{}, `containerDefinitions[0].dependsOn[0].containerName: "cache" is not a container of the task`},
		{"depends on itself", api(func(c *Container) { c.DependsOn[0].ContainerName = "api" }), Options{}, `containerDefinitions[0].dependsOn[0].containerName: "api" is the container itself`},
		{"depends twice", api(func(c *Container) { c.DependsOn[1].ContainerName = "migrate" }), Options{}, `containerDefinitions[0].dependsOn[1].containerName: "migrate" is named twice`},
		{"condition", api(func(c *Container) { c.DependsOn[0].Condition = "RUNNING" }), Options{}, `containerDefinitions[0].dependsOn[0].condition: "RUNNING": want START, COMPLETE, SUCCESS or HEALTHY`},
		{"no condition", api(func(c *Container) { c.DependsOn[0].Condition = "" }), Options{}, `containerDefinitions[0].dependsOn[0].condition: "": want START, COMPLETE, SUCCESS or HEALTHY`},
		{"healthy without a health check", db(func(c *Container) { c.HealthCheck = nil }), Options{}, "containerDefinitions[0].dependsOn[1].condition: HEALTHY, but db has no healthCheck"},
		{"complete of an essential container", api(func(c *Container) { c.DependsOn[1].Condition = "COMPLETE" }), Options{}, "containerDefinitions[0].dependsOn[1].condition: COMPLETE waits for db to exit, but db is essential (its exit stops the task)"},
		{"success of a default-essential container", func(d *Definition) { d.ContainerDefinitions[2].Essential = nil }, Options{}, "containerDefinitions[0].dependsOn[0].condition: SUCCESS waits for migrate to exit, but migrate is essential (its exit stops the task)"},
		{"cycle", db(func(c *Container) { c.DependsOn = []Dependency{{ContainerName: "api", Condition: "START"}} }), Options{}, "containerDefinitions[0].dependsOn: a cycle, which could never start: api → migrate → db → api"},
		{"longer cycle", func(d *Definition) {
			d.ContainerDefinitions[1].DependsOn = []Dependency{{ContainerName: "migrate", Condition: "START"}}
		}, Options{}, "containerDefinitions[2].dependsOn: a cycle, which could never start: migrate → db → migrate"},
		{"no essential container", func(d *Definition) {
			for i := range d.ContainerDefinitions {
				d.ContainerDefinitions[i].Essential = new(false)
				d.ContainerDefinitions[i].DependsOn = nil
			}
		}, Options{}, "containerDefinitions: at least one container must be essential (a task stops when its essential containers stop)"},
		{"env name", api(func(c *Container) { c.Environment = []KeyValue{{Name: "1PORT"}} }), Options{}, `containerDefinitions[0].environment[0].name: "1PORT" is not a variable name: use letters, digits and '_', not starting with a digit`},
		{"env name with =", api(func(c *Container) { c.Environment = []KeyValue{{Name: "A=B"}} }), Options{}, `containerDefinitions[0].environment[0].name: "A=B" is not a variable name`},
		{"env twice", api(func(c *Container) { c.Environment = append(c.Environment, KeyValue{Name: "PORT", Value: "9090"}) }), Options{}, "containerDefinitions[0].environment[1].name: PORT is also set by containerDefinitions[0].environment[0]"},
		{"env NUL", api(func(c *Container) { c.Environment[0].Value = "80\x0080" }), Options{}, "containerDefinitions[0].environment[0].value: a NUL byte, which a process cannot be given"},
		{"env too many", api(func(c *Container) {
			c.Environment = nil
			for i := range 1001 {
				c.Environment = append(c.Environment, KeyValue{Name: "V" + strings.Repeat("x", i)})
			}
		}), Options{}, "containerDefinitions[0].environment: 1001 variables, at most 1000"},
		{"command too long", api(func(c *Container) { c.Command = many(1001, "x") }), Options{}, "containerDefinitions[0].command: 1001 elements, at most 1000"},
		{"entryPoint too long", api(func(c *Container) { c.EntryPoint = many(1001, "x") }), Options{}, "containerDefinitions[0].entryPoint: 1001 elements, at most 1000"},
		{"command NUL", api(func(c *Container) { c.Command = []string{"sh", "-c", "a\x00b"} }), Options{}, "containerDefinitions[0].command[2]: a NUL byte, which a process cannot be given"},
		{"stopTimeout", api(func(c *Container) { c.StopTimeout = 121 }), Options{}, "containerDefinitions[0].stopTimeout: 121 seconds: want 0 (the engine's default) to 120"},
		{"negative stopTimeout", api(func(c *Container) { c.StopTimeout = -1 }), Options{}, "containerDefinitions[0].stopTimeout: -1 seconds: want 0 (the engine's default) to 120"},
		{"privileged", db(func(c *Container) { c.Privileged = true }), Options{}, "containerDefinitions[1].privileged: privileged containers are refused unless the cluster allows them"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			d := mustParse(t, base)
			tc.edit(d)
			before := dump(d)
			err := d.Validate(tc.opts)
			if err == nil {
				t.Fatalf("accepted: %s", dump(d))
			}
			if want := "task definition shop: " + tc.want; !strings.HasPrefix(err.Error(), want) && !strings.HasPrefix(err.Error(), "task definition: "+tc.want) {
				t.Errorf("error %q\nwant %q", err, want)
			}
			if after := dump(d); after != before {
				t.Errorf("a failed Validate changed the definition:\n%s\nto\n%s", before, after)
			}
		})
	}
}

// What stays inside the rules.
func TestValidateAccepts(t *testing.T) {
	for _, tc := range []struct {
		name string
		edit func(d *Definition)
		opts Options
	}{
		{"privileged, allowed", func(d *Definition) { d.ContainerDefinitions[1].Privileged = true }, Options{AllowPrivileged: true}},
		{"tcp and udp on one host port", func(d *Definition) {
			d.ContainerDefinitions[1].PortMappings = []PortMapping{{ContainerPort: 53, HostPort: 8080, Protocol: "udp"}}
		}, Options{}},
		{"any free host port, twice", func(d *Definition) {
			d.ContainerDefinitions[1].PortMappings = []PortMapping{{ContainerPort: 5432}, {ContainerPort: 5433}}
			d.ContainerDefinitions[2].PortMappings = []PortMapping{{ContainerPort: 5432}}
		}, Options{}},
		{"limits at their bounds", func(d *Definition) {
			c := &d.ContainerDefinitions[0]
			c.Cpu, c.Memory, c.MemoryReservation, c.StopTimeout = 10240, 6, 6, 120
			c.PortMappings = []PortMapping{{ContainerPort: 65535, HostPort: 65535}, {ContainerPort: 1, HostPort: 1}}
			*c.HealthCheck = HealthCheck{Command: []string{"CMD", "true"}, Interval: 300, Timeout: 120, Retries: 10, StartPeriod: 300}
			c.Command = slices.Repeat([]string{"x"}, 1000)
		}, Options{}},
		{"health check at its lows", func(d *Definition) {
			*d.ContainerDefinitions[0].HealthCheck = HealthCheck{Command: []string{"CMD", "true"}, Interval: 5, Timeout: 2, Retries: 1}
		}, Options{}},
		{"task sizes", func(d *Definition) { d.Cpu, d.Memory = "1 vCPU", "2GB" }, Options{}},
		{"networkMode awsvpc", func(d *Definition) { d.NetworkMode = "awsvpc" }, Options{}},
		{"empty volume lists", func(d *Definition) {
			d.ContainerDefinitions[0].MountPoints = []MountPoint{}
			d.ContainerDefinitions[0].VolumesFrom = []VolumeFrom{}
			d.ContainerDefinitions[0].LinuxParameters = &LinuxParameters{Capabilities: &Capabilities{}}
		}, Options{}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			d := mustParse(t, base)
			tc.edit(d)
			if err := d.Validate(tc.opts); err != nil {
				t.Error(err)
			}
		})
	}
}

// What reaches past the container is refused, read from ECS's own fields.
func TestValidateRefusesHostAccess(t *testing.T) {
	withContainer := func(fields string) string {
		return `{"family": "web", "containerDefinitions": [{"name": "web", "image": "nginx", ` + fields + `}]}`
	}
	for _, tc := range []struct{ name, doc, want string }{
		{"privileged", withContainer(`"privileged": true`), "containerDefinitions[0].privileged: privileged containers are refused unless the cluster allows them"},
		{"host volume", `{"family": "web", "volumes": [{"name": "data", "host": {"sourcePath": "/var/run/docker.sock"}}], "containerDefinitions": [{"name": "web", "image": "nginx"}]}`,
			`volumes[0]: "data" is the host path /var/run/docker.sock: bind mounts of host paths are refused`},
		{"mount of a host volume", `{"family": "web", "volumes": [{"name": "data", "host": {"sourcePath": "/etc"}}], "containerDefinitions": [{"name": "web", "image": "nginx", "mountPoints": [{"sourceVolume": "data", "containerPath": "/host-etc"}]}]}`,
			`containerDefinitions[0].mountPoints[0]: volume "data" is the host path /etc: bind mounts of host paths are refused`},
		{"volumesFrom", `{"family": "web", "containerDefinitions": [{"name": "web", "image": "nginx", "volumesFrom": [{"sourceContainer": "data"}]}, {"name": "data", "image": "busybox"}]}`,
			"containerDefinitions[0].volumesFrom: bind mounts of host paths are refused, and so are another container's volumes"},
		{"scratch volume", `{"family": "web", "volumes": [{"name": "scratch"}], "containerDefinitions": [{"name": "web", "image": "nginx", "mountPoints": [{"sourceVolume": "scratch", "containerPath": "/tmp"}]}]}`,
			`containerDefinitions[0].mountPoints[0]: volume "scratch": not supported (scangate's engine mounts no volumes)`},
		{"unmounted scratch volume", `{"family": "web", "volumes": [{"name": "scratch", "host": {}}], "containerDefinitions": [{"name": "web", "image": "nginx"}]}`,
			`volumes[0]: "scratch": not supported (scangate's engine mounts no volumes)`},
		{"mount of no volume", withContainer(`"mountPoints": [{"sourceVolume": "nope", "containerPath": "/x"}]`),
			`containerDefinitions[0].mountPoints[0].sourceVolume: "nope" is not a volume of the task`},
		{"capabilities", withContainer(`"linuxParameters": {"capabilities": {"add": ["SYS_ADMIN"]}}`),
			"containerDefinitions[0].linuxParameters.capabilities.add: adding Linux capabilities is refused (SYS_ADMIN would give the container powers over the host)"},
		{"devices", withContainer(`"linuxParameters": {"devices": [{"hostPath": "/dev/sda"}]}`),
			"containerDefinitions[0].linuxParameters.devices: host devices are refused (/dev/sda)"},
		{"pidMode host", `{"family": "web", "pidMode": "host", "containerDefinitions": [{"name": "web", "image": "nginx"}]}`,
			"pidMode: host: host namespaces are refused (the task would see and signal the host's processes)"},
		{"ipcMode host", `{"family": "web", "ipcMode": "host", "containerDefinitions": [{"name": "web", "image": "nginx"}]}`,
			"ipcMode: host: host namespaces are refused (the task would share the host's shared memory)"},
		{"networkMode host", `{"family": "web", "networkMode": "host", "containerDefinitions": [{"name": "web", "image": "nginx"}]}`,
			"networkMode: host: host namespaces are refused (the task would share the host's network)"},
		{"pidMode task", `{"family": "web", "pidMode": "task", "containerDefinitions": [{"name": "web", "image": "nginx"}]}`,
			`pidMode: "task": not supported (each container has its own namespace)`},
		{"networkMode none", `{"family": "web", "networkMode": "none", "containerDefinitions": [{"name": "web", "image": "nginx"}]}`,
			`networkMode: "none": not supported (every task joins its cluster's network: use awsvpc or bridge, or leave it out)`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			d := mustParse(t, tc.doc)
			err := d.Validate(Options{})
			if want := "task definition web: " + tc.want; err == nil || err.Error() != want {
				t.Errorf("error %v\nwant  %s", err, want)
			}
		})
	}
	// The cluster's leave covers privileged containers, and nothing else.
	d := mustParse(t, withContainer(`"privileged": true, "linuxParameters": {"capabilities": {"add": ["NET_ADMIN"]}}`))
	if err := d.Validate(Options{AllowPrivileged: true}); err == nil || !strings.Contains(err.Error(), "adding Linux capabilities is refused") {
		t.Errorf("privileged allowed, capabilities: %v", err)
	}
}

func TestWithImage(t *testing.T) {
	d := mustParse(t, base)
	if err := d.Validate(Options{}); err != nil {
		t.Fatal(err)
	}
	before, _ := json.Marshal(d)
	const digest = "127.0.0.1:5000/shop/api@sha256:0000000000000000000000000000000000000000000000000000000000000001"
	n, err := d.WithImage("api", digest)
	if err != nil {
		t.Fatal(err)
	}
	if after, _ := json.Marshal(d); !bytes.Equal(before, after) {
		t.Errorf("WithImage changed the original:\n%s\nto\n%s", before, after)
	}
	// Everything but the one image is as it was.
	want := d.Clone()
	want.ContainerDefinitions[0].Image = digest
	wantJSON, _ := json.Marshal(want)
	if got, _ := json.Marshal(n); !bytes.Equal(got, wantJSON) {
		t.Errorf("WithImage gave\n%s\nwant\n%s", got, wantJSON)
	}
	if !reflect.DeepEqual(n, want) {
		t.Errorf("WithImage gave %s, want %s", dump(n), dump(want))
	}
	if err := n.Validate(Options{}); err != nil {
		t.Error(err)
	}
	// The copy shares nothing with the original.
	n.ContainerDefinitions[0].Environment[0].Value = "9090"
	*n.ContainerDefinitions[0].Essential = false
	n.ContainerDefinitions[1].HealthCheck.Command[1] = "false"
	if after, _ := json.Marshal(d); !bytes.Equal(before, after) {
		t.Errorf("a change to the copy changed the original:\n%s\nto\n%s", before, after)
	}

	if _, err := d.WithImage("cache", digest); err == nil || err.Error() != `task definition shop has no container "cache"` {
		t.Errorf("no such container: %v", err)
	}
	if _, err := d.WithImage("api", "Not An Image"); err == nil || !strings.HasPrefix(err.Error(), `image "Not An Image": not an image reference`) {
		t.Errorf("bad image: %v", err)
	}
}

// Clone copies every slice and pointer, however deep: a field added
// without its copy in Clone fails here.
func TestCloneSharesNothing(t *testing.T) {
	d := &Definition{
		Family: "f", Cpu: "1", Memory: "1", NetworkMode: "awsvpc", PidMode: "p", IpcMode: "i",
		Volumes: []Volume{{Name: "v", Host: &HostVolume{SourcePath: "/s"}}},
		Ignored: []string{"x: ignored"},
		ContainerDefinitions: []Container{{
			Name: "n", Image: "i", Command: []string{"c"}, EntryPoint: []string{"e"},
			Environment:  []KeyValue{{"K", "V"}},
			PortMappings: []PortMapping{{1, 2, "tcp"}},
			Cpu:          1, Memory: 6, MemoryReservation: 6, Essential: new(true),
			HealthCheck: &HealthCheck{Command: []string{"CMD", "x"}, Interval: 1, Timeout: 1, Retries: 1, StartPeriod: 1},
			DependsOn:   []Dependency{{"a", "START"}}, StopTimeout: 1, Privileged: true,
			MountPoints: []MountPoint{{"v", "/c", true}}, VolumesFrom: []VolumeFrom{{"a", true}},
			LinuxParameters: &LinuxParameters{
				Capabilities: &Capabilities{Add: []string{"NET_ADMIN"}},
				Devices:      []Device{{"/dev/x", "/dev/y", []string{"read"}}},
			},
		}},
	}
	requireAllSet(t, reflect.ValueOf(d).Elem(), "Definition")
	c := d.Clone()
	if !reflect.DeepEqual(c, d) {
		t.Fatalf("clone differs: %s", dump(c))
	}
	shareNothing(t, reflect.ValueOf(d).Elem(), reflect.ValueOf(c).Elem(), "Definition")
}

// requireAllSet fails for a field left at its zero value, so that the
// clone test covers every field.
func requireAllSet(t *testing.T, v reflect.Value, path string) {
	t.Helper()
	if v.IsZero() {
		t.Errorf("%s is not set in the test", path)
		return
	}
	switch v.Kind() {
	case reflect.Pointer:
		requireAllSet(t, v.Elem(), path)
	case reflect.Slice:
		for i := range v.Len() {
			requireAllSet(t, v.Index(i), path+"[]")
		}
	case reflect.Struct:
		for i := range v.NumField() {
			requireAllSet(t, v.Field(i), path+"."+v.Type().Field(i).Name)
		}
	}
}

// shareNothing fails when a and b hold the same slice array or pointer.
func shareNothing(t *testing.T, a, b reflect.Value, path string) {
	t.Helper()
	switch a.Kind() {
	case reflect.Pointer:
		if !a.IsNil() {
			if a.Pointer() == b.Pointer() {
				t.Errorf("%s: the clone shares the pointer", path)
			}
			shareNothing(t, a.Elem(), b.Elem(), path)
		}
	case reflect.Slice:
		if a.Len() > 0 && a.Pointer() == b.Pointer() {
			t.Errorf("%s: the clone shares the slice", path)
		}
		for i := range a.Len() {
			shareNothing(t, a.Index(i), b.Index(i), path+"[]")
		}
	case reflect.Struct:
		for i := range a.NumField() {
			shareNothing(t, a.Field(i), b.Field(i), path+"."+a.Type().Field(i).Name)
		}
	}
}

func TestIsEssential(t *testing.T) {
	for _, tc := range []struct {
		essential *bool
		want      bool
	}{{nil, true}, {new(true), true}, {new(false), false}} {
		c := Container{Essential: tc.essential}
		if got := c.IsEssential(); got != tc.want {
			t.Errorf("essential %v: IsEssential %v, want %v", tc.essential, got, tc.want)
		}
	}
}

// The stored JSON is ECS's shape: what Parse reads, and ECS too.
func TestStoredJSONReadsBack(t *testing.T) {
	d := mustParse(t, base)
	if err := d.Validate(Options{}); err != nil {
		t.Fatal(err)
	}
	b, err := json.Marshal(d)
	if err != nil {
		t.Fatal(err)
	}
	back := mustParse(t, string(b))
	if err := back.Validate(Options{}); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(back, d) {
		t.Errorf("read back\n%s\nwant\n%s", dump(back), dump(d))
	}
}

func dump(d *Definition) string {
	b, _ := json.MarshalIndent(struct {
		*Definition
		Ignored []string `json:"ignored"`
	}{d, d.Ignored}, "", "  ")
	return string(b)
}
