package events

import (
	"encoding/json"
	"reflect"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/scangate/scangate/internal/events/pattern"
)

var uuidV4 = regexp.MustCompile(`^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$`)

type scanDetail struct {
	Status     string         `json:"scan-status"`
	Repository string         `json:"repository-name"`
	Tags       []string       `json:"image-tags"`
	Counts     map[string]int `json:"finding-severity-counts"`
}

func TestNew(t *testing.T) {
	before := time.Now().UTC().Truncate(time.Second)
	resources := []string{"registry.local:5000/team/api@sha256:abc"}
	e, err := New(SourceScanner, DetailTypeScan, resources, scanDetail{
		Status: "INITIAL_SCAN_COMPLETE", Repository: "team/api", Tags: []string{"1.4.2"},
		Counts: map[string]int{"CRITICAL": 3},
	})
	if err != nil {
		t.Fatal(err)
	}
	resources[0] = "changed" // New keeps its own copy
	if e.Version != "0" || e.Source != "scangate.scanner" || e.DetailType != "Scan" || e.Account != "" || e.Region != "" {
		t.Errorf("envelope = %+v", e)
	}
	if !uuidV4.MatchString(e.ID) {
		t.Errorf("id %q is not a random UUID", e.ID)
	}
	if e.Time.Location() != time.UTC || e.Time.Before(before) || e.Time.After(time.Now()) || e.Time.Nanosecond() != 0 {
		t.Errorf("time %v: want now, UTC, whole seconds", e.Time)
	}
	if !reflect.DeepEqual(e.Resources, []string{"registry.local:5000/team/api@sha256:abc"}) {
		t.Errorf("resources = %q", e.Resources)
	}
	want := `{"scan-status":"INITIAL_SCAN_COMPLETE","repository-name":"team/api","image-tags":["1.4.2"],"finding-severity-counts":{"CRITICAL":3}}`
	if string(e.Detail) != want {
		t.Errorf("detail = %s\nwant %s", e.Detail, want)
	}

	// The JSON is EventBridge's, and reads back the same.
	data, err := json.Marshal(e)
	if err != nil {
		t.Fatal(err)
	}
	for _, field := range []string{`"version":"0"`, `"detail-type":"Scan"`, `"source":"scangate.scanner"`, `"account":""`, `"region":""`, `"time":"` + e.Time.Format(time.RFC3339) + `"`} {
		if !strings.Contains(string(data), field) {
			t.Errorf("JSON lacks %s: %s", field, data)
		}
	}
	back, err := Parse(data)
	if err != nil {
		t.Fatal(err)
	}
	if !back.Time.Equal(e.Time) {
		t.Errorf("time %v read back as %v", e.Time, back.Time)
	}
	back.Time = e.Time
	if !reflect.DeepEqual(back, e) {
		t.Errorf("read back\n%+v\nwant\n%+v", back, e)
	}

	// A pattern selects it by its detail.
	p, err := pattern.Compile([]byte(`{"source": ["scangate.scanner"], "detail": {"finding-severity-counts": {"CRITICAL": [{"numeric": [">", 0]}]}}}`))
	if err != nil {
		t.Fatal(err)
	}
	if ok, err := p.Match(data); !ok || err != nil {
		t.Errorf("Match = %v, %v", ok, err)
	}
}

func TestNewDefaultsAndIDs(t *testing.T) {
	seen := map[string]bool{}
	for range 100 {
		e, err := New(SourceRegistry, DetailTypeImagePush, nil, nil)
		if err != nil {
			t.Fatal(err)
		}
		if seen[e.ID] {
			t.Fatalf("id %s twice", e.ID)
		}
		seen[e.ID] = true
		if string(e.Detail) != "{}" || e.Resources == nil || len(e.Resources) != 0 {
			t.Fatalf("empty event: detail %s, resources %#v", e.Detail, e.Resources)
		}
	}
	e, err := New(SourceDeploy, "Deployment", nil, json.RawMessage(`{"service": "api"}`))
	if err != nil || string(e.Detail) != `{"service":"api"}` {
		t.Errorf("raw detail: %s, %v", e.Detail, err)
	}
}

func TestNewErrors(t *testing.T) {
	deep := strings.Repeat(`{"a":`, MaxEventDepth) + `1` + strings.Repeat(`}`, MaxEventDepth)
	for _, tt := range []struct {
		name               string
		source, detailType string
		detail             any
		want               string
	}{
		{"no source", "", DetailTypeScan, nil, "must not be empty"},
		{"no detail type", SourceScanner, "", nil, "must not be empty"},
		{"array detail", SourceScanner, DetailTypeScan, []string{"a"}, "detail is an array, not a JSON object"},
		{"string detail", SourceScanner, DetailTypeScan, "a", "detail is a string"},
		{"unencodable detail", SourceScanner, DetailTypeScan, map[string]any{"c": make(chan int)}, "detail: json: unsupported type"},
		{"deep detail", SourceScanner, DetailTypeScan, json.RawMessage(deep), "nests more than 127 levels"},
		{"big detail", SourceScanner, DetailTypeScan, map[string]string{"x": strings.Repeat("x", MaxEventSize)}, "more than the 262144"},
	} {
		_, err := New(tt.source, tt.detailType, nil, tt.detail)
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%s: New = %v, want an error containing %q", tt.name, err, tt.want)
		}
	}
}

func TestParseDocumentedEvent(t *testing.T) {
	e, err := Parse([]byte(ec2Event))
	if err != nil {
		t.Fatal(err)
	}
	want := Envelope{
		Version: "0", ID: "6a7e8feb-b491-4cf7-a9f1-bf3703467718", DetailType: "EC2 Instance State-change Notification",
		Source: "aws.ec2", Account: "111122223333", Time: time.Date(2017, 12, 22, 18, 43, 48, 0, time.UTC),
		Region: "us-west-1", Resources: []string{"arn:aws:ec2:us-west-1:123456789012:instance/i-1234567890abcdef0"},
		Detail: json.RawMessage(`{"instance-id": "i-1234567890abcdef0", "state": "terminated"}`),
	}
	if !reflect.DeepEqual(e, want) {
		t.Errorf("Parse:\n got %+v\nwant %+v", e, want)
	}
}

func TestParseErrors(t *testing.T) {
	const ok = `"id": "1", "source": "s", "detail-type": "d", "time": "2017-12-22T18:43:48Z"`
	if _, err := Parse([]byte(`{` + ok + `}`)); err != nil {
		t.Fatalf("minimal event: %v", err)
	}
	for _, tt := range []struct{ event, want string }{
		{``, "event: invalid JSON: no value"},
		{`{` + ok, "unexpected end"},
		{`[]`, "an event is a JSON object, not an array"},
		{`{"source": "s", "detail-type": "d", "time": "2017-12-22T18:43:48Z"}`, `"id" is missing`},
		{`{"id": 1, "source": "s", "detail-type": "d", "time": "2017-12-22T18:43:48Z"}`, `"id" must be a string`},
		{`{"id": "", "source": "s", "detail-type": "d", "time": "2017-12-22T18:43:48Z"}`, `"id" is empty`},
		{`{"id": "1", "source": null, "detail-type": "d", "time": "2017-12-22T18:43:48Z"}`, `"source" must be a string`},
		{`{"id": "1", "source": "s", "time": "2017-12-22T18:43:48Z"}`, `"detail-type" is missing`},
		{`{"id": "1", "source": "s", "detail-type": "d"}`, `"time" is missing`},
		{`{"id": "1", "source": "s", "detail-type": "d", "time": "yesterday"}`, `"time" "yesterday" is not an RFC 3339 time`},
		{`{` + ok + `, "region": 5}`, `"region" must be a string`},
		{`{` + ok + `, "resources": "a"}`, `"resources" must be an array of strings`},
		{`{` + ok + `, "resources": [1]}`, `"resources" must be an array of strings`},
		{`{` + ok + `, "resources": null}`, `"resources" must be an array of strings`},
		{`{` + ok + `, "detail": []}`, `"detail" must be a JSON object`},
		{`{` + ok + `, "detail": null}`, `"detail" must be a JSON object`},
		{`{` + ok + `, "detail": ` + strings.Repeat("[", MaxEventDepth) + strings.Repeat("]", MaxEventDepth) + `}`, "nests more than 128 levels"},
		{`{` + ok + `, "detail": {"x": "` + strings.Repeat("x", MaxEventSize) + `"}}`, "more than the 262144"},
	} {
		_, err := Parse([]byte(tt.event))
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			msg := tt.event
			if len(msg) > 80 {
				msg = msg[:80] + "..."
			}
			t.Errorf("Parse(%s) = %v, want an error containing %q", msg, err, tt.want)
		}
	}
	// Every problem is reported at once.
	_, err := Parse([]byte(`{"id": 1}`))
	for _, want := range []string{`"id" must be a string`, `"source" is missing`, `"detail-type" is missing`, `"time" is missing`} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("Parse({\"id\": 1}) = %v, want it to say %s", err, want)
		}
	}
}

func TestMarshalEmptyEnvelope(t *testing.T) {
	data, err := json.Marshal(Envelope{ID: "1"})
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(data), `"resources":[]`) || !strings.Contains(string(data), `"detail":{}`) {
		t.Errorf("empty envelope: %s", data)
	}
}
