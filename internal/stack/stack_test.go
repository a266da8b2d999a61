package stack

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// example is the walkthrough's stack file: the tests read what users run.
const example = "../../examples/seed-walkthrough/stack.yaml"

func TestParseExample(t *testing.T) {
	st, err := ReadFile(example, map[string]string{"registry": "127.0.0.1:5999", "cluster": "c1"})
	if err != nil {
		t.Fatal(err)
	}
	if st.Name != "seed" {
		t.Errorf("name %q, want seed", st.Name)
	}
	var got []string
	for _, r := range st.Resources {
		got = append(got, r.Key())
	}
	want := []string{"token seed-ci", "token seed-approver", "repository shop-api", "cluster c1", "task-definition shop-api",
		"service c1/shop-api", "rule seed-rejections", "pipeline shop-api"}
	if strings.Join(got, ",") != strings.Join(want, ",") {
		t.Errorf("resources %v, want %v", got, want)
	}
	for _, r := range st.Resources {
		switch r.Kind {
		case KindTaskDefinition:
			if !bytes.Contains(r.Body, []byte("127.0.0.1:5999/base/debian:12-old")) {
				t.Errorf("the task definition's image has no registry parameter in it:\n%s", r.Body)
			}
		case KindRepository:
			abs, _ := filepath.Abs("../../examples/seed-walkthrough/app")
			if r.Content != abs {
				t.Errorf("repository content %q, want %q", r.Content, abs)
			}
		case KindService:
			if !bytes.Contains(r.Body, []byte(`"desiredCount":0`)) {
				t.Errorf("service body %s: want desired count 0", r.Body)
			}
		}
	}
}

func TestParseErrorsNameFileLineField(t *testing.T) {
	dir := t.TempDir()
	for _, tc := range []struct {
		name, doc, want string
	}{
		{"unknown top field", "name: s\nclusterz: []\n", "stack.yaml:2: clusterz: no such field"},
		{"unknown nested field", "name: s\nclusters:\n  - clusterName: a\n    hostIP: 127.0.0.1\n", "stack.yaml:4: clusters[0].hostIP: no such field"},
		{"bad role", "name: s\ntokens:\n  - name: t\n    role: king\n", "stack.yaml:4: tokens[0].role:"},
		{"bad name", "name: Big Stack\n", "stack.yaml:1: name:"},
		{"duplicate", "name: s\nclusters:\n  - clusterName: a\n  - clusterName: a\n", "stack.yaml:4: clusters[1]: cluster a is also at line 3"},
		{"wrong type", "name: s\nservices:\n  - clusterName: a\n    serviceName: b\n    taskDefinition: c\n    desiredCount: many\n", "stack.yaml:6: services[0]:"},
		{"undeclared parameter", "name: s\nclusters:\n  - clusterName: ${nope}\n", "stack.yaml:3: clusters[0].clusterName: ${nope}: no such parameter"},
		{"parameter without default", "name: s\nparameters:\n  c: {}\nclusters:\n  - clusterName: ${c}\n", "--param c=VALUE"},
		{"bad task definition", "name: s\ntask-definitions:\n  - family: f\n    containerDefinitions: 3\n", "stack.yaml:3: task-definitions[0]:"},
		{"bad pipeline", "name: s\npipelines:\n  - name: p\n    source: {branch: main}\n", "stack.yaml:3: pipelines[0]:"},
		{"rule without targets", "name: s\nrules:\n  - name: r\n    pattern: {source: [x]}\n    targets: []\n", "stack.yaml:3: rules[0]: rule r: no targets"},
		{"missing content folder", "name: s\nrepositories:\n  - name: r\n    content: nowhere\n", "stack.yaml:4: repositories[0].content: nowhere"},
		{"alias", "name: s\nclusters:\n  - &a {clusterName: a}\n  - *a\n", "anchors and aliases"},
		{"two documents", "name: s\n---\nname: t\n", "one YAML document only"},
		{"not a mapping", "- a\n", "stack.yaml:1: stack: want a mapping"},
		{"syntax", "name: s\nclusters: [\n", "stack.yaml:"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(dir, "stack.yaml")
			if err := os.WriteFile(path, []byte(tc.doc), 0o600); err != nil {
				t.Fatal(err)
			}
			_, err := ReadFile(path, nil)
			if err == nil {
				t.Fatalf("no error for\n%s", tc.doc)
			}
			if !errors.Is(err, ErrInvalid) {
				t.Errorf("error %v is not ErrInvalid", err)
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error\n  %v\nwant it to contain\n  %s", err, tc.want)
			}
		})
	}
}

func TestParseLimits(t *testing.T) {
	deep := "name: s\nrules:\n  - name: r\n    targets: [{handler: h}]\n    pattern: " + strings.Repeat("{a: ", MaxDepth+2) + "[1]" + strings.Repeat("}", MaxDepth+2) + "\n"
	if _, err := Parse("deep.yaml", []byte(deep), nil); err == nil || !strings.Contains(err.Error(), "nested deeper than") {
		t.Errorf("deep file: %v, want nested deeper than", err)
	}
	big := append([]byte("name: s\n#"), bytes.Repeat([]byte("x"), MaxSize)...)
	if _, err := Parse("big.yaml", big, nil); err == nil || !strings.Contains(err.Error(), "over") {
		t.Errorf("big file: %v, want over the size", err)
	}
	var many strings.Builder
	many.WriteString("name: s\nclusters:\n")
	for i := 0; i <= MaxResources; i++ {
		fmt.Fprintf(&many, "  - clusterName: c%d\n", i)
	}
	if _, err := Parse("many.yaml", []byte(many.String()), nil); err == nil || !strings.Contains(err.Error(), "at most") {
		t.Errorf("many clusters: %v, want at most", err)
	}
	if _, err := Parse("p.yaml", []byte("name: s\n"), map[string]string{"x": "1"}); err == nil {
		t.Error("a --param the file does not declare: no error")
	}
}

func FuzzParse(f *testing.F) {
	ex, err := os.ReadFile(example)
	if err != nil {
		f.Fatal(err)
	}
	f.Add(ex)
	f.Add([]byte("name: s\nclusters: [{clusterName: a}]\n"))
	f.Add([]byte("name: s\nparameters: {a: {default: x}}\ntokens: [{name: '${a}', role: reader}]\n"))
	f.Add([]byte("a: &x [*x]"))
	dir := f.TempDir()
	f.Fuzz(func(t *testing.T, data []byte) {
		st, err := Parse(filepath.Join(dir, "stack.yaml"), data, nil)
		if err != nil {
			if !errors.Is(err, ErrInvalid) {
				t.Fatalf("error %v is not ErrInvalid", err)
			}
			return
		}
		seen := map[string]bool{}
		for _, r := range st.Resources {
			if r.Name == "" || seen[r.Key()] || r.Digest != digest(r.Body) {
				t.Fatalf("resource %+v: empty, repeated or with a wrong digest", r)
			}
			seen[r.Key()] = true
		}
	})
}

func res(k Kind, name, body string) Resource {
	return Resource{Kind: k, Name: name, Body: []byte(body), Digest: digest([]byte(body)), Line: 1}
}

func TestPlanUp(t *testing.T) {
	st := &Stack{Name: "s", File: "s.yaml", Resources: []Resource{
		res(KindPipeline, "p", "v2"), res(KindCluster, "c", "c"), res(KindTaskDefinition, "f", "t1"), res(KindRule, "r", "r"),
	}}
	rec := &Record{Name: "s", Resources: []Entry{
		{Kind: KindCluster, Name: "c", Digest: digest([]byte("c"))},
		{Kind: KindPipeline, Name: "p", Digest: digest([]byte("v1"))},
		{Kind: KindTaskDefinition, Name: "f", Digest: digest([]byte("t1")), Revisions: []int{1}},
		{Kind: KindToken, Name: "old", Digest: "x"},
	}}
	live := map[string]bool{"cluster c": true, "pipeline p": true, "token old": true}
	p, err := PlanUp(st, rec, live)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, s := range p.Steps {
		got = append(got, fmt.Sprintf("%s %s %s", s.Action, s.Kind, s.Name))
	}
	want := []string{
		"delete token old",         // removed from the file: deletions first
		"leave cluster c",          // same digest, on the server
		"create task-definition f", // recorded, but gone from the server
		"create rule r",            // new
		"change pipeline p",        // its body changed
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("plan:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	if p.Count(Create) != 2 || p.Count(Change) != 1 || p.Count(Delete) != 1 || p.Count(Leave) != 1 || !p.Changes() {
		t.Errorf("counts: %d %d %d %d", p.Count(Create), p.Count(Change), p.Count(Delete), p.Count(Leave))
	}
	var out bytes.Buffer
	p.Print(&out)
	if !strings.Contains(out.String(), "2 to create, 1 to change, 1 to delete, 1 left as they are") {
		t.Errorf("printed plan:\n%s", out.String())
	}
}

func TestPlanUpRefusesWhatIsNotTheStacks(t *testing.T) {
	st := &Stack{Name: "s", File: "s.yaml", Resources: []Resource{res(KindRepository, "shop", "x")}}
	_, err := PlanUp(st, nil, map[string]bool{"repository shop": true})
	if !errors.Is(err, ErrConflict) || !strings.Contains(err.Error(), "s.yaml:1: repository shop") {
		t.Errorf("a resource someone else made: %v, want ErrConflict naming it", err)
	}
	rec := &Record{Name: "s", Resources: []Entry{{Kind: KindCluster, Name: "c", Digest: "old"}}}
	st = &Stack{Name: "s", File: "s.yaml", Resources: []Resource{res(KindCluster, "c", "new")}}
	if _, err := PlanUp(st, rec, map[string]bool{"cluster c": true}); !errors.Is(err, ErrImmutable) {
		t.Errorf("a changed cluster: %v, want ErrImmutable", err)
	}
}

func TestPlanDownReverseOrder(t *testing.T) {
	rec := &Record{Name: "s", Resources: []Entry{
		{Kind: KindToken, Name: "t"}, {Kind: KindCluster, Name: "c"}, {Kind: KindService, Name: "c/s"}, {Kind: KindPipeline, Name: "p"},
	}}
	p := PlanDown("s", rec, map[string]bool{"cluster c": true, "service c/s": true, "pipeline p": true})
	var got []string
	for _, s := range p.Steps {
		got = append(got, fmt.Sprintf("%s %s %v", s.Kind, s.Name, s.Live))
	}
	want := "pipeline p true,service c/s true,cluster c true,token t false"
	if strings.Join(got, ",") != want {
		t.Errorf("down plan %v, want %s", got, want)
	}
}

// memBackend is a server in memory, for the order and record-keeping of
// Apply and Destroy (pure logic; the e2e tests run them on a real server).
type memBackend struct {
	live   map[string]bool
	rec    *Record
	calls  []string
	pushed []string
	failOn string
}

func (m *memBackend) Exists(_ context.Context, k Kind, name string) (bool, error) {
	return m.live[string(k)+" "+name], nil
}

func (m *memBackend) Create(_ context.Context, r Resource) (Entry, string, error) {
	m.calls = append(m.calls, "create "+r.Key())
	if r.Key() == m.failOn {
		return Entry{}, "", errors.New("refused")
	}
	m.live[r.Key()] = true
	secret := ""
	if r.Kind == KindToken {
		secret = "sg_secret"
	}
	return Entry{Revisions: []int{1}}, secret, nil
}

func (m *memBackend) Change(_ context.Context, r Resource, e Entry) (Entry, error) {
	m.calls = append(m.calls, "change "+r.Key())
	return e, nil
}

func (m *memBackend) Delete(_ context.Context, e Entry, purge bool) error {
	m.calls = append(m.calls, fmt.Sprintf("delete %s purge=%v", e.Key(), purge))
	delete(m.live, e.Key())
	return nil
}

func (m *memBackend) PushContent(_ context.Context, repo, dir string) error {
	m.calls = append(m.calls, "push "+repo)
	return nil
}

func (m *memBackend) Record(context.Context, string) (*Record, error) { return m.rec, nil }

func (m *memBackend) SaveRecord(_ context.Context, rec *Record) error {
	c := *rec
	c.Resources = append([]Entry(nil), rec.Resources...)
	m.rec = &c
	return nil
}

func (m *memBackend) DeleteRecord(context.Context, string) error { m.rec = nil; return nil }

func upOnce(t *testing.T, m *memBackend, st *Stack) (*Plan, string, error) {
	t.Helper()
	ctx := context.Background()
	rec, _ := m.Record(ctx, st.Name)
	live, err := Observe(ctx, m, st, rec)
	if err != nil {
		t.Fatal(err)
	}
	p, err := PlanUp(st, rec, live)
	if err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	err = Apply(ctx, m, p, rec, &out)
	return p, out.String(), err
}

func TestApplyTwiceThenDestroy(t *testing.T) {
	repo := res(KindRepository, "app", "a")
	repo.Content = "/src/app"
	st := &Stack{Name: "s", File: "s.yaml", Resources: []Resource{res(KindPipeline, "p", "p"), repo, res(KindToken, "ci", "t")}}
	m := &memBackend{live: map[string]bool{"cluster other": true}}
	_, out, err := upOnce(t, m, st)
	if err != nil {
		t.Fatal(err)
	}
	// The content is pushed after the pipeline that builds it exists.
	want := "create token ci,create repository app,create pipeline p,push app"
	if strings.Join(m.calls, ",") != want {
		t.Errorf("calls %v, want %s", m.calls, want)
	}
	if !strings.Contains(out, "sg_secret") {
		t.Errorf("the token's secret is not printed:\n%s", out)
	}
	if len(m.rec.Resources) != 3 {
		t.Errorf("record %+v: want 3 entries", m.rec.Resources)
	}
	m.calls = nil
	p, out, err := upOnce(t, m, st)
	if err != nil {
		t.Fatal(err)
	}
	if p.Changes() || len(m.calls) != 0 || !strings.Contains(out, "nothing to do") {
		t.Errorf("second up: calls %v, output:\n%s", m.calls, out)
	}
	// down removes what the stack made, in reverse order, and nothing else.
	m.calls = nil
	live, _ := Observe(context.Background(), m, nil, m.rec)
	dp := PlanDown("s", m.rec, live)
	if err := Destroy(context.Background(), m, dp, m.rec, true, &bytes.Buffer{}); err != nil {
		t.Fatal(err)
	}
	want = "delete pipeline p purge=true,delete repository app purge=true,delete token ci purge=true"
	if strings.Join(m.calls, ",") != want {
		t.Errorf("calls %v, want %s", m.calls, want)
	}
	if m.rec != nil || !m.live["cluster other"] || len(m.live) != 1 {
		t.Errorf("after down: record %+v, live %v: want no record, only the cluster the stack did not make", m.rec, m.live)
	}
}

func TestApplyCutShortKeepsTheRecord(t *testing.T) {
	st := &Stack{Name: "s", File: "s.yaml", Resources: []Resource{res(KindToken, "ci", "t"), res(KindCluster, "c", "c")}}
	m := &memBackend{live: map[string]bool{}, failOn: "cluster c"}
	if _, _, err := upOnce(t, m, st); err == nil {
		t.Fatal("no error from a refused create")
	}
	if m.rec == nil || len(m.rec.Resources) != 1 || m.rec.Resources[0].Key() != "token ci" {
		t.Fatalf("record after a failed up: %+v, want the token only", m.rec)
	}
	m.failOn = ""
	m.calls = nil
	if _, _, err := upOnce(t, m, st); err != nil {
		t.Fatal(err)
	}
	if strings.Join(m.calls, ",") != "create cluster c" {
		t.Errorf("the up after: calls %v, want only the cluster", m.calls)
	}
}

func TestCheckRecord(t *testing.T) {
	for _, rec := range []Record{
		{Name: "Bad Name"},
		{Name: "s", Resources: []Entry{{Kind: "volcano", Name: "x"}}},
		{Name: "s", Resources: []Entry{{Kind: KindToken, Name: "x"}, {Kind: KindToken, Name: "x"}}},
		{Name: "s", Resources: []Entry{{Kind: KindToken}}},
	} {
		if err := CheckRecord(&rec); !errors.Is(err, ErrInvalid) {
			t.Errorf("record %+v: %v, want ErrInvalid", rec, err)
		}
	}
}
