package report

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"reflect"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/santhosh-tekuri/jsonschema/v6"

	"github.com/scangate/scangate/internal/scan"
)

// compileSchemas compiles the schema at url from local files registered
// under their $id (or draft-04 id), and fails on any attempt to load
// anything else: the tests never touch the network.
func compileSchemas(t *testing.T, url string, files ...string) *jsonschema.Schema {
	t.Helper()
	c := jsonschema.NewCompiler()
	c.UseLoader(jsonschema.SchemeURLLoader{}) // no file, no http
	c.AssertFormat()
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		doc, err := jsonschema.UnmarshalJSON(bytes.NewReader(data))
		if err != nil {
			t.Fatalf("%s: %v", f, err)
		}
		m, _ := doc.(map[string]any)
		id, _ := m["$id"].(string)
		if id == "" {
			id, _ = m["id"].(string)
		}
		if id == "" {
			t.Fatalf("%s has no $id", f)
		}
		if err := c.AddResource(id, doc); err != nil {
			t.Fatalf("%s: %v", f, err)
		}
	}
	sch, err := c.Compile(url)
	if err != nil {
		t.Fatalf("compile %s: %v", url, err)
	}
	return sch
}

// validate checks a document against a compiled schema.
func validate(t *testing.T, sch *jsonschema.Schema, doc []byte) {
	t.Helper()
	inst, err := jsonschema.UnmarshalJSON(bytes.NewReader(doc))
	if err != nil {
		t.Fatalf("output is not JSON: %v", err)
	}
	if err := sch.Validate(inst); err != nil {
		t.Errorf("output does not validate: %v", err)
	}
}

// rejects checks that the schema refuses doc once edit has changed it, so
// that a passing validation means something.
func rejects(t *testing.T, sch *jsonschema.Schema, doc []byte, what string, edit func(m map[string]any)) {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal(doc, &m); err != nil {
		t.Fatal(err)
	}
	edit(m)
	bad, err := json.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	inst, err := jsonschema.UnmarshalJSON(bytes.NewReader(bad))
	if err != nil {
		t.Fatal(err)
	}
	if err := sch.Validate(inst); err == nil {
		t.Errorf("schema accepts a document with %s", what)
	}
}

const reportSchemaID = "https://raw.githubusercontent.com/scangate/scangate/main/internal/report/schema/report.schema.json"

func reportSchema(t *testing.T) *jsonschema.Schema {
	return compileSchemas(t, reportSchemaID, filepath.Join("schema", "report.schema.json"))
}

func TestJSONGolden(t *testing.T) {
	golden(t, "report.json", render(t, testReport(t), JSON, Options{}))
}

func TestJSONValidates(t *testing.T) {
	sch := reportSchema(t)
	validate(t, sch, render(t, testReport(t), JSON, Options{}))

	// Nothing found, no OS, lists left nil.
	empty := &scan.Report{
		SchemaVersion: scan.SchemaVersion,
		CreatedAt:     time.Date(2024, 6, 3, 10, 15, 0, 0, time.UTC),
		Image:         scan.ImageInfo{Ref: "docker-archive:scratch.tar", ConfigDigest: testConfigDigest},
	}
	out := render(t, empty, JSON, Options{})
	validate(t, sch, out)
	for _, want := range []string{`"packages": []`, `"findings": []`, `"layers": []`} {
		if !bytes.Contains(out, []byte(want)) {
			t.Errorf("empty report lacks %s:\n%s", want, out)
		}
	}
}

// TestJSONSchemaRejects makes sure the schema is not vacuous.
func TestJSONSchemaRejects(t *testing.T) {
	sch := reportSchema(t)
	good := render(t, testReport(t), JSON, Options{})
	for name, edit := range map[string]func(m map[string]any){
		"an unknown field":       func(m map[string]any) { m["extra"] = true },
		"schemaVersion 2":        func(m map[string]any) { m["schemaVersion"] = 2 },
		"a made-up severity":     func(m map[string]any) { finding(m, 0)["severity"] = "SEVERE" },
		"a negative package":     func(m map[string]any) { finding(m, 0)["package"] = -1 },
		"an unknown status":      func(m map[string]any) { finding(m, 0)["status"] = "open" },
		"no image":               func(m map[string]any) { delete(m, "image") },
		"a malformed digest":     func(m map[string]any) { m["image"].(map[string]any)["configDigest"] = "abc" },
		"a malformed date":       func(m map[string]any) { m["createdAt"] = "yesterday" },
		"an unknown suppression": func(m map[string]any) { finding(m, 4)["suppressed"].(map[string]any)["kind"] = "waiver" },
		"counts without TOTAL":   func(m map[string]any) { delete(m["summary"].(map[string]any), "TOTAL") },
		"a CVSS_V5 rating": func(m map[string]any) {
			finding(m, 0)["severities"].([]any)[0].(map[string]any)["type"] = "CVSS_V5"
		},
	} {
		rejects(t, sch, good, name, edit)
	}
}

func finding(m map[string]any, i int) map[string]any {
	return m["findings"].([]any)[i].(map[string]any)
}

// TestJSONSchemaDescribesEverything checks that every property the schema
// names has a description, and that every field of the report's Go types
// is in the schema.
func TestJSONSchemaDescribesEverything(t *testing.T) {
	var schema map[string]any
	if err := json.Unmarshal(JSONSchema(), &schema); err != nil {
		t.Fatal(err)
	}
	var walk func(path string, v any)
	walk = func(path string, v any) {
		m, ok := v.(map[string]any)
		if !ok {
			return
		}
		if props, ok := m["properties"].(map[string]any); ok {
			for name, p := range props {
				pm, _ := p.(map[string]any)
				if d, _ := pm["description"].(string); strings.TrimSpace(d) == "" {
					t.Errorf("%s.%s has no description", path, name)
				}
				walk(path+"."+name, p)
			}
		}
		if defs, ok := m["$defs"].(map[string]any); ok {
			for name, d := range defs {
				if desc, _ := d.(map[string]any)["description"].(string); desc == "" {
					t.Errorf("$defs.%s has no description", name)
				}
				walk("$defs."+name, d)
			}
		}
		if items, ok := m["items"]; ok {
			walk(path+"[]", items)
		}
	}
	walk("", schema)

	defs := schema["$defs"].(map[string]any)
	propsOf := func(def string) map[string]any {
		if def == "" {
			return schema["properties"].(map[string]any)
		}
		return defs[def].(map[string]any)["properties"].(map[string]any)
	}
	for def, typ := range map[string]reflect.Type{
		"":            reflect.TypeFor[scan.Report](),
		"image":       reflect.TypeFor[scan.ImageInfo](),
		"os":          reflect.TypeFor[scan.OS](),
		"package":     reflect.TypeFor[scan.Package](),
		"finding":     reflect.TypeFor[scan.Finding](),
		"suppression": reflect.TypeFor[scan.Suppression](),
		"counts":      reflect.TypeFor[scan.Counts](),
	} {
		props := propsOf(def)
		var fields []string
		for f := range typ.Fields() {
			name, _, _ := strings.Cut(f.Tag.Get("json"), ",")
			if name == "-" || !f.IsExported() {
				continue
			}
			fields = append(fields, name)
			if _, ok := props[name]; !ok {
				t.Errorf("schema %q lacks field %s of %s", def, name, typ)
			}
		}
		for name := range props {
			if !containsString(fields, name) {
				t.Errorf("schema %q has %s, which %s has not", def, name, typ)
			}
		}
	}
}

func containsString(list []string, s string) bool {
	sort.Strings(list)
	i := sort.SearchStrings(list, s)
	return i < len(list) && list[i] == s
}

func TestJSONRoundTrip(t *testing.T) {
	r := testReport(t)
	out := render(t, r, JSON, Options{})
	var back scan.Report
	if err := json.Unmarshal(out, &back); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(&back, r) {
		t.Errorf("round trip changed the report:\n%s", out)
	}
	if !bytes.HasPrefix(out, []byte("{\n  \"schemaVersion\": 1,\n  \"createdAt\": ")) {
		t.Errorf("output does not start with schemaVersion, indented:\n%.80s", out)
	}
	if bytes.Contains(out, []byte(`\u0026`)) {
		t.Error("& is escaped; URLs should read as written")
	}
}

func TestJSONSchemaAccessor(t *testing.T) {
	file, err := os.ReadFile(filepath.Join("schema", "report.schema.json"))
	if err != nil {
		t.Fatal(err)
	}
	got := JSONSchema()
	if !bytes.Equal(got, file) {
		t.Error("JSONSchema() differs from schema/report.schema.json")
	}
	got[0] = 'x'
	if JSONSchema()[0] != '{' {
		t.Error("JSONSchema() returns the package's own buffer")
	}
}
