package events

import (
	"strings"
	"testing"

	"github.com/scangate/scangate/internal/events/pattern"
)

// ec2Event is EventBridge's documented example event (also in the
// pattern package's tests, which cannot share test files).
const (
	ec2Event = `{
	  "version": "0",
	  "id": "6a7e8feb-b491-4cf7-a9f1-bf3703467718",
	  "detail-type": "EC2 Instance State-change Notification",
	  "source": "aws.ec2",
	  "account": "111122223333",
	  "time": "2017-12-22T18:43:48Z",
	  "region": "us-west-1",
	  "resources": ["arn:aws:ec2:us-west-1:123456789012:instance/i-1234567890abcdef0"],
	  "detail": {"instance-id": "i-1234567890abcdef0", "state": "terminated"}
	}`
)

// EventBridge-validated events that are not shaped as scangate's own:
// the "Exists matching" page's events have a detail-type that is an
// array, and a detail may be a string.
const (
	detailTypeArrayEvent = `{"version": "0", "id": "1", "source": "aws.ec2", "account": "123456789012", "time": "2017-12-22T18:43:48Z",
	  "region": "us-east-1", "resources": [], "detail-type": ["EC2 Instance State-change Notification"], "detail": {"state": ["initializing", "running"]}}`
	detailStringEvent = `{"version": "0", "id": "2", "source": "aws.ec2", "account": "123456789012", "time": "2017-12-22T18:43:48Z",
	  "region": "us-east-1", "resources": [], "detail-type": "Note", "detail": "running"}`
)

// TestEventPatternEvents: what `scangate rules test` (EventBridge's
// TestEventPattern) accepts and answers. A detail-type that is an array
// is matched as an array; a detail that is not an object has no fields,
// so a pattern on detail's fields does not match it; neither is an
// error. A missing id, source, detail-type or time still is.
//
// Fixed here: `rules test` refused both events ("detail-type" must be a
// string; "detail" must be a JSON object), where EventBridge answers.
func TestEventPatternEvents(t *testing.T) {
	for _, tc := range []struct {
		name, pattern, event string
		want                 bool
	}{
		{"detail-type array", `{"detail-type": ["EC2 Instance State-change Notification"]}`, detailTypeArrayEvent, true},
		{"detail-type array, other", `{"detail-type": ["Other"]}`, detailTypeArrayEvent, false},
		{"detail-type array, exists", `{"detail": {"c-count": [{"exists": false}]}, "detail-type": [{"exists": true}]}`, detailTypeArrayEvent, true},
		{"detail string, field", `{"detail": {"state": ["running"]}}`, detailStringEvent, false},
		{"detail string, exists false", `{"detail": {"state": [{"exists": false}]}}`, detailStringEvent, true},
		{"detail string, source", `{"source": ["aws.ec2"]}`, detailStringEvent, true},
		{"detail string, as a value", `{"detail": ["running"]}`, detailStringEvent, true},
		{"detail null", `{"detail": {"state": ["running"]}}`, strings.Replace(detailStringEvent, `"running"}`, `null}`, 1), false},
		{"detail array", `{"detail": {"state": ["running"]}}`, strings.Replace(detailStringEvent, `"running"}`, `[{"state": "running"}]}`, 1), true},
		{"dotted detail", `{"detail": {"state": ["running"]}}`, strings.Replace(detailStringEvent, `"detail": "running"`, `"detail.state": "running"`, 1), true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if err := CheckEvent([]byte(tc.event)); err != nil {
				t.Fatalf("CheckEvent: %v; EventBridge answers for this event", err)
			}
			p, err := pattern.Compile([]byte(tc.pattern))
			if err != nil {
				t.Fatal(err)
			}
			got, err := p.Match([]byte(tc.event))
			if err != nil || got != tc.want {
				t.Errorf("pattern %s: %v, %v; want %v", tc.pattern, got, err, tc.want)
			}
		})
	}
	for _, tc := range []struct{ name, event, want string }{
		{"no id", strings.Replace(detailStringEvent, `"id": "2", `, "", 1), `"id" is missing`},
		{"no source", strings.Replace(detailStringEvent, `"source": "aws.ec2", `, "", 1), `"source" is missing`},
		{"no detail-type", strings.Replace(detailStringEvent, `"detail-type": "Note", `, "", 1), `"detail-type" is missing`},
		{"detail-type a number", strings.Replace(detailStringEvent, `"detail-type": "Note"`, `"detail-type": 5`, 1), `"detail-type" must be a string or an array`},
		{"no time", strings.Replace(detailStringEvent, `"time": "2017-12-22T18:43:48Z",`, "", 1), `"time" is missing`},
		{"bad time", strings.Replace(detailStringEvent, "2017-12-22T18:43:48Z", "Dec 22nd", 1), `is not an RFC 3339 time`},
		{"not an object", `["x"]`, "an event is a JSON object, not an array"},
	} {
		if err := CheckEvent([]byte(tc.event)); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: CheckEvent = %v; want an error containing %q", tc.name, err, tc.want)
		}
	}
}
