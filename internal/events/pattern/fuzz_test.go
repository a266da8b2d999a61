package pattern

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"
)

// fuzzPatterns seed the fuzzers: one of each operator, and the ways to get
// each wrong.
var fuzzPatterns = []string{
	`{"source": ["aws.ec2"], "detail-type": ["EC2 Instance State-change Notification"], "detail": {"state": ["terminated"]}}`,
	`{"time": [{"prefix": "2017-10-02"}], "detail": {"state": [{"anything-but": "initializing"}], "c-count": [{"numeric": [">", 0, "<=", 5]}], "x-limit": [{"anything-but": [100, 200, 300]}], "source-ip": [{"cidr": "10.0.0.0/8"}]}}`,
	`{"source": [{"suffix": {"equals-ignore-case": "EC2"}}, {"prefix": {"equals-ignore-case": "AWS"}}, {"equals-ignore-case": "x"}]}`,
	`{"FilePath": [{"wildcard": "dir/*.png"}, {"anything-but": {"wildcard": ["*/lib/*", "a\\*b"]}}]}`,
	`{"detail": {"c-count": [{"exists": false}], "d": [null, true, 1.5e3, ""]}}`,
	`{"source": ["aws.cloudwatch"], "$or": [{"metricName": ["CPUUtilization"]}, {"namespace": ["AWS/EC2"], "$or": [{"metricId": [1234]}, {"spaceId": [1000]}]}]}`,
	`{"employees": {"firstName": ["Anna"], "lastName": ["Jones"]}}`,
	`{"detail": {"finding-severity-counts": {"CRITICAL": [{"numeric": [">", 0]}]}, "image-tags": [{"anything-but": {"prefix": "latest"}}]}}`,
	`{"n": [{"numeric": [">", 5, "<", 5]}]}`,
	`{"f": [{"wildcard": "a**"}]}`,
	`{"$or": [{"prefix": ["x"]}, {}]}`,
	`{"a": []}`,
	`{"a": "b"}`,
	`[]`,
	`{"a": [{"anything-but": {"equals-ignore-case": []}}]}`,
	`{"detail.state.status": ["running"], "detail": {"state": {"code": [16]}}, "employees.firstName": ["Anna"]}`,
	`{"a.b": ["x"], "a": {"b": ["y"]}}`,
	`{"x": {"a": {"$or": [{"b": [1]}, {"c": [2]}]}}, "x.a": {"$or": [{"d": [3]}, {"e": [4]}]}}`,
}

// fuzzEvents seed the event side.
var fuzzEvents = []string{
	ec2Event, autoscalingEvent, macieEvent, rulerEvent, arrayEvent, existsEvent2, employeesNestedEvent,
	cloudwatchEvent, operatorsEvent, scanEvent("team/api", 3, 16, `"1.4.2", "latest"`),
	`{"a": [[[{"b": [1, {"c": null}]}]]], "n": -0.0e-0, "s": "\u00e9\ud83d\ude00"}`,
	`{"a": 1}{}`, `[1]`, `"x"`, `{`, ``,
	`{"detail.state.status": "running", "detail": {"state": {"code": 16}}, "employees": [{"firstName": "Anna"}], "employees.lastName": "Smith"}`,
	`{"a": {"b": 1}, "a.b": [2, {"c": 3}], "a.b.c": {"d": null}, "": {".": 1}, "..": 2}`,
}

// FuzzCompilePattern checks that any input either compiles or is a
// *Error with no pattern, never a panic, and that what compiles
// matches the seed events without an error.
func FuzzCompile(f *testing.F) {
	for _, p := range fuzzPatterns {
		f.Add([]byte(p))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		p, err := Compile(data)
		if err != nil {
			if p != nil {
				t.Fatalf("CompilePattern returned a pattern with error %v", err)
			}
			if _, ok := err.(*Error); !ok {
				t.Fatalf("error %T %v is not a *Error", err, err)
			}
			return
		}
		if p == nil {
			t.Fatal("CompilePattern returned neither a pattern nor an error")
		}
		if !json.Valid(data) {
			t.Fatalf("compiled invalid JSON %q", data)
		}
		for _, e := range fuzzEvents[:10] {
			if _, err := p.Match([]byte(e)); err != nil {
				t.Fatalf("Match(%s): %v", e, err)
			}
		}
	})
}

// FuzzMatch matches any event against any pattern: no panics; an error only
// for an event that is not a JSON object within the limits; the same answer
// twice; and the same answer for {"$or": [P, P]} as for P.
func FuzzMatch(f *testing.F) {
	for i, p := range fuzzPatterns {
		f.Add([]byte(p), []byte(fuzzEvents[i%len(fuzzEvents)]))
	}
	f.Fuzz(func(t *testing.T, pattern, event []byte) {
		p, err := Compile(pattern)
		if err != nil {
			return
		}
		got, err := p.Match(event)
		if wantErr := !isEventJSON(event); (err != nil) != wantErr {
			t.Fatalf("Match(%q) error %v, want an error: %v", event, err, wantErr)
		}
		if again, _ := p.Match(event); again != got {
			t.Fatalf("Match(%q) gave %v, then %v", event, got, again)
		}
		doubled := append(append(append(append([]byte(`{"$or": [`), pattern...), ','), pattern...), "]}"...)
		if q, err := Compile(doubled); err == nil {
			if viaOr, _ := q.Match(event); viaOr != got {
				t.Fatalf("pattern %s gave %v, but as both alternatives of $or %v", pattern, got, viaOr)
			}
		}
	})
}

// isEventJSON reports whether data is a JSON object Match must accept: valid,
// within MaxEventSize and nesting at most MaxEventDepth levels.
func isEventJSON(data []byte) bool {
	if len(data) > MaxEventSize || !json.Valid(data) {
		return false
	}
	trimmed := bytes.TrimLeft(data, " \t\r\n")
	return len(trimmed) > 0 && trimmed[0] == '{' && depth(data) <= MaxEventDepth
}

// depth measures how deeply valid JSON nests, skipping strings.
func depth(data []byte) int {
	d, most, inString := 0, 0, false
	for i := 0; i < len(data); i++ {
		c := data[i]
		switch {
		case inString && c == '\\':
			i++
		case c == '"':
			inString = !inString
		case inString:
		case c == '{' || c == '[':
			d++
			most = max(most, d)
		case c == '}' || c == ']':
			d--
		}
	}
	return most
}

// FuzzExpandDottedNames: expanding an event's dotted field names leaves
// the event as it was, leaves no name with a dot behind (but in a path
// deeper than any pattern reaches), and changes nothing when done again.
func FuzzExpandDottedNames(f *testing.F) {
	for _, e := range fuzzEvents {
		f.Add([]byte(e))
	}
	f.Fuzz(func(t *testing.T, event []byte) {
		obj, err := DecodeEvent(event)
		if err != nil {
			return
		}
		before, err := json.Marshal(obj)
		if err != nil {
			t.Fatal(err)
		}
		once := expandDottedNames(obj)
		if after, _ := json.Marshal(obj); !bytes.Equal(before, after) {
			t.Fatalf("expanding changed the event: %s became %s", before, after)
		}
		if strings.Count(string(event), ".") < maxPathNames && hasDottedName(once) {
			t.Fatalf("%s expanded to %v, which still has a name with a dot", event, once)
		}
		onceJSON, _ := json.Marshal(once)
		if twice, _ := json.Marshal(expandDottedNames(once)); !bytes.Equal(onceJSON, twice) {
			t.Fatalf("expanding again changed %s to %s", onceJSON, twice)
		}
	})
}

func hasDottedName(v any) bool {
	switch v := v.(type) {
	case map[string]any:
		for k, e := range v {
			if strings.Contains(k, ".") || hasDottedName(e) {
				return true
			}
		}
	case []any:
		for _, e := range v {
			if hasDottedName(e) {
				return true
			}
		}
	}
	return false
}
