package pattern

import (
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"testing"
)

// Events from Amazon EventBridge's documentation (the user guide's event
// pattern pages and aws/event-ruler's README, the library EventBridge's
// matching is published as), used with the patterns shown beside them.
const (
	// "Amazon EventBridge event patterns": an EC2 state-change event.
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

	// "Matching null values and empty strings".
	autoscalingEvent = `{
	  "version": "0",
	  "id": "3e3c153a-8339-4e30-8c35-687ebef853fe",
	  "detail-type": "EC2 Instance Launch Successful",
	  "source": "aws.autoscaling",
	  "account": "123456789012",
	  "time": "2015-11-11T21:31:47Z",
	  "region": "us-east-1",
	  "resources": [],
	  "detail": {"eventVersion": "", "responseElements": null}
	}`

	// "Value matching": a Macie alert (the docs truncate it; closed here).
	macieEvent = `{
	  "version": "0",
	  "id": "3e355723-fca9-4de3-9fd7-154c289d6b59",
	  "detail-type": "Macie Alert",
	  "source": "aws.macie",
	  "account": "123456789012",
	  "time": "2017-04-24T22:28:49Z",
	  "region": "us-east-1",
	  "resources": [
	    "arn:aws:macie:us-east-1:123456789012:trigger/trigger_id/alert/alert_id",
	    "arn:aws:macie:us-east-1:123456789012:trigger/trigger_id"
	  ],
	  "detail": {
	    "notification-type": "ALERT_CREATED",
	    "name": "Scanning bucket policies",
	    "tags": ["Custom_Alert", "Insider"],
	    "risk-score": 80,
	    "trigger": {"rule-arn": "arn:aws:macie:us-east-1:123456789012:trigger/trigger_id", "alert-type": "basic", "risk": 8},
	    "created-at": "2017-04-18T00:21:12.059000"
	  }
	}`

	// event-ruler's "Ruler by Example" event, used by every content
	// filtering example.
	rulerEvent = `{
	  "version": "0",
	  "id": "ddddd4-aaaa-7777-4444-345dd43cc333",
	  "detail-type": "EC2 Instance State-change Notification",
	  "source": "aws.ec2",
	  "account": "012345679012",
	  "time": "2017-10-02T16:24:49Z",
	  "region": "us-east-1",
	  "resources": ["arn:aws:ec2:us-east-1:123456789012:instance/i-000000aaaaaa00000"],
	  "detail": {
	    "c-count": 5,
	    "d-count": 3,
	    "x-limit": 301.8,
	    "source-ip": "10.0.0.33",
	    "instance-id": "i-000000aaaaaa00000",
	    "state": "running"
	  }
	}`

	// "Arrays in event patterns": the event's resources.
	arrayEvent = `{"resources": [
	  "arn:aws:autoscaling:us-east-1:123456789012:autoScalingGroup:eb56d16b-bbf0-401d-b893-d5978ed4a025:autoScalingGroupName/ASGTerminate",
	  "arn:aws:ec2:us-east-1:123456789012:instance/i-b188560f"
	]}`

	// "Exists matching": an event without detail.c-count, and one where
	// c-count is an object, not a leaf.
	existsEvent1 = `{
	  "detail-type": ["EC2 Instance State-change Notification"],
	  "resources": ["arn:aws:ec2:us-east-1:123456789012:instance/i-02ebd4584a2ebd341"],
	  "detail": {"state": ["initializing", "running"]}
	}`
	existsEvent2 = `{
	  "detail-type": ["EC2 Instance State-change Notification"],
	  "resources": ["arn:aws:ec2:us-east-1:123456789012:instance/i-02ebd4584a2ebd341"],
	  "detail": {"state": ["initializing", "running"], "c-count": {"c1": 100}}
	}`

	// event-ruler's "JSON Array Matching" events.
	employeesEvent = `{"employees": [
	  {"firstName": "John", "lastName": "Doe"},
	  {"firstName": "Anna", "lastName": "Smith"},
	  {"firstName": "Peter", "lastName": "Jones"}
	]}`
	employeesNestedEvent = `{"employees": [
	  [{"firstName": "John", "lastName": "Doe"}, {"firstName": "Anna", "lastName": "Smith"}],
	  [{"firstName": "Peter", "lastName": "Jones"}]
	]}`

	// event-ruler's CloudWatch-flavoured $or examples.
	cloudwatchEvent = `{"source": "aws.cloudwatch", "metricName": "NetworkIn", "namespace": "AWS/EC2", "metricType": "MetricType",
	  "detail": {"source": "other", "detail-type": "CloudWatch Alarm State Change"}}`
)

// Events for the rows of the comparison operators page ("Comparison
// operators for use in event patterns"), which gives patterns and what they
// mean but no events.
const (
	operatorsEvent = `{
	  "Location": "New York", "Day": "Monday", "state": "running", "Region": "eu-west-1",
	  "FileName": "report.pdf", "FilePath": "dir/pictures/cat.png", "service": "EventBridge",
	  "LastName": "", "Name": "Alice", "ProductName": "Widget", "Weather": "Sunny", "UserID": null,
	  "Price": 100, "PaymentType": "Credit", "Tags": ["a", "b"], "Nested": {"Leaf": 1}, "Empty": []
	}`
	operatorsEvent2 = `{
	  "Location": "Boston", "Day": "Tuesday", "state": "initializing", "Region": "us-east-1",
	  "FileName": "image.png", "FilePath": "usr/lib/libc.so", "service": "SNS",
	  "LastName": "Smith", "Name": "ALICE", "Weather": "Raining", "UserID": "u-1",
	  "Price": 10, "PaymentType": "Cash"
	}`
)

// scanEvent is a scan summary as DESIGN.md describes it.
func scanEvent(repo string, critical, high int, tags string) string {
	return fmt.Sprintf(`{
	  "version": "0", "id": "2f1b0a4e-8c5d-4f7e-9b1a-0c6d3e2f1a9b", "detail-type": "Scan", "source": "scangate.scanner",
	  "account": "", "time": "2026-05-01T12:00:00Z", "region": "",
	  "resources": ["registry.local:5000/%[1]s@sha256:9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"],
	  "detail": {
	    "scan-status": "INITIAL_SCAN_COMPLETE", "repository-name": %[1]q,
	    "image-digest": "sha256:9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08",
	    "image-tags": [%[4]s],
	    "finding-severity-counts": {"CRITICAL": %[2]d, "HIGH": %[3]d, "MEDIUM": 4, "LOW": 1, "UNKNOWN": 0, "TOTAL": %[5]d},
	    "fixable-severity-counts": {"CRITICAL": 0, "HIGH": 2},
	    "vulndb": {"built": "2026-05-01T00:00:00Z", "digest": "sha256:0000"}
	  }
	}`, repo, critical, high, tags, critical+high+5)
}

type matchCase struct {
	name    string
	pattern string
	event   string
	want    bool
}

func runMatchCases(t *testing.T, cases []matchCase) {
	t.Helper()
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			p, err := Compile([]byte(tc.pattern))
			if err != nil {
				t.Fatalf("Compile(%s): %v", tc.pattern, err)
			}
			got, err := p.Match([]byte(tc.event))
			if err != nil {
				t.Fatalf("Match: %v", err)
			}
			if got != tc.want {
				t.Errorf("pattern %s on event %s: got %v, want %v", tc.pattern, tc.event, got, tc.want)
			}
		})
	}
}

// TestMatchDocumentedExamples runs the examples of EventBridge's event
// pattern documentation, with the results the documentation gives, and the
// obvious counter-examples.
func TestMatchDocumentedExamples(t *testing.T) {
	runMatchCases(t, []matchCase{
		// Event patterns: the instance-termination pattern.
		{"ec2 termination", `{"source": ["aws.ec2"], "detail-type": ["EC2 Instance State-change Notification"], "detail": {"state": ["terminated"]}}`, ec2Event, true},
		{"ec2 termination, other state", `{"source": ["aws.ec2"], "detail": {"state": ["running"]}}`, ec2Event, false},
		{"ec2 termination, other source", `{"source": ["aws.fargate"], "detail": {"state": ["terminated"]}}`, ec2Event, false},
		{"match values are ORed", `{"source": ["aws.ec2", "aws.fargate"]}`, ec2Event, true},
		{"field missing from the event", `{"source": ["aws.ec2"], "detail": {"reason": ["manual"]}}`, ec2Event, false},
		{"nesting must agree", `{"state": ["terminated"]}`, ec2Event, false},
		{"case-sensitive strings", `{"source": ["AWS.EC2"]}`, ec2Event, false},

		// Null values and empty strings.
		{"null", `{"source": ["aws.autoscaling"], "detail-type": ["EC2 Instance Launch Successful"], "detail": {"responseElements": [null]}}`, autoscalingEvent, true},
		{"empty string", `{"detail": {"eventVersion": [""]}}`, autoscalingEvent, true},
		{"empty string is not null", `{"detail": {"responseElements": [""]}}`, autoscalingEvent, false},
		{"null is not empty string", `{"detail": {"eventVersion": [null]}}`, autoscalingEvent, false},

		// Value matching: numbers at two levels.
		{"macie risk", `{"source": ["aws.macie"], "detail-type": ["Macie Alert"], "detail": {"risk-score": [80], "trigger": {"risk": [8]}}}`, macieEvent, true},
		{"macie risk, other score", `{"detail": {"risk-score": [81], "trigger": {"risk": [8]}}}`, macieEvent, false},
		{"number is not its string", `{"detail": {"risk-score": ["80"]}}`, macieEvent, false},
		{"event array element", `{"detail": {"tags": ["Insider"]}}`, macieEvent, true},

		// Arrays: the intersection must not be empty.
		{"resources intersect", `{"resources": [
			"arn:aws:ec2:us-east-1:123456789012:instance/i-b188560f",
			"arn:aws:ec2:us-east-1:111122223333:instance/i-b188560f",
			"arn:aws:ec2:us-east-1:444455556666:instance/i-b188560f"]}`, arrayEvent, true},
		{"resources disjoint", `{"resources": ["arn:aws:ec2:us-east-1:444455556666:instance/i-b188560f"]}`, arrayEvent, false},

		// Ruler by example: simple matching, each operator, the complex example.
		{"simple", `{"detail-type": ["EC2 Instance State-change Notification"],
			"resources": ["arn:aws:ec2:us-east-1:123456789012:instance/i-000000aaaaaa00000"],
			"detail": {"state": ["initializing", "running"]}}`, rulerEvent, true},
		{"prefix", `{"time": [{"prefix": "2017-10-02"}]}`, rulerEvent, true},
		{"prefix, other day", `{"time": [{"prefix": "2017-10-03"}]}`, rulerEvent, false},
		{"prefix only on strings", `{"detail": {"c-count": [{"prefix": "5"}]}}`, rulerEvent, false},
		{"suffix", `{"source": [{"suffix": "ec2"}]}`, rulerEvent, true},
		{"suffix, other", `{"source": [{"suffix": "s3"}]}`, rulerEvent, false},
		{"equals-ignore-case", `{"source": [{"equals-ignore-case": "AWS.EC2"}]}`, rulerEvent, true},
		{"equals-ignore-case, other", `{"source": [{"equals-ignore-case": "EC2"}]}`, rulerEvent, false},
		{"wildcard", `{"detail-type": [{"wildcard": "EC2 * State-change *"}]}`, rulerEvent, true},
		{"wildcard anchors", `{"detail-type": [{"wildcard": "State-change*"}]}`, rulerEvent, false},
		// "Wildcard matching": any account's instance ARN in a region.
		{"wildcard arn", `{"resources": [{"wildcard": "arn:aws:ec2:us-east-1:*:instance/*"}]}`, rulerEvent, true},
		{"wildcard arn, other region", `{"resources": [{"wildcard": "arn:aws:ec2:us-west-2:*:instance/*"}]}`, rulerEvent, false},
		{"exists true, string leaf", `{"detail": {"state": [{"exists": true}]}}`, rulerEvent, true},
		{"exists true, absent", `{"detail": {"reason": [{"exists": true}]}}`, rulerEvent, false},
		{"numeric, float range", `{"detail": {"x-limit": [{"numeric": [">=", 300, "<", 302]}]}}`, rulerEvent, true},
		{"numeric, float range below", `{"detail": {"x-limit": [{"numeric": [">=", 302]}]}}`, rulerEvent, false},
		{"anything-but suffix", `{"source": [{"anything-but": {"suffix": ".s3"}}]}`, rulerEvent, true},
		{"anything-but suffix, excluded", `{"source": [{"anything-but": {"suffix": ".ec2"}}]}`, rulerEvent, false},
		{"anything-but string", `{"detail": {"state": [{"anything-but": "initializing"}]}}`, rulerEvent, true},
		{"anything-but string, excluded", `{"detail": {"state": [{"anything-but": "running"}]}}`, rulerEvent, false},
		{"anything-but number", `{"detail": {"x-limit": [{"anything-but": 123}]}}`, rulerEvent, true},
		{"anything-but number, excluded", `{"detail": {"x-limit": [{"anything-but": 301.8}]}}`, rulerEvent, false},
		{"anything-but strings", `{"detail": {"state": [{"anything-but": ["stopped", "overloaded"]}]}}`, rulerEvent, true},
		{"anything-but strings, excluded", `{"detail": {"state": [{"anything-but": ["stopped", "running"]}]}}`, rulerEvent, false},
		{"anything-but numbers", `{"detail": {"x-limit": [{"anything-but": [100, 200, 300]}]}}`, rulerEvent, true},
		{"anything-but numbers, excluded", `{"detail": {"c-count": [{"anything-but": [4, 5.0]}]}}`, rulerEvent, false},
		{"anything-but prefix", `{"detail": {"state": [{"anything-but": {"prefix": "init"}}]}}`, rulerEvent, true},
		{"anything-but prefix, excluded", `{"detail": {"state": [{"anything-but": {"prefix": "run"}}]}}`, rulerEvent, false},
		{"anything-but needs the field", `{"detail": {"reason": [{"anything-but": "x"}]}}`, rulerEvent, false},
		{"numeric", `{"detail": {"c-count": [{"numeric": [">", 0, "<=", 5]}], "d-count": [{"numeric": ["<", 10]}], "x-limit": [{"numeric": ["=", 3.018e2]}]}}`, rulerEvent, true},
		{"numeric, open bound", `{"detail": {"c-count": [{"numeric": [">", 0, "<", 5]}]}}`, rulerEvent, false},
		{"numeric, lower bound", `{"detail": {"d-count": [{"numeric": [">=", 3]}]}}`, rulerEvent, true},
		{"numeric, excluded lower bound", `{"detail": {"d-count": [{"numeric": [">", 3]}]}}`, rulerEvent, false},
		{"numeric only on numbers", `{"detail": {"state": [{"numeric": [">", 0]}]}}`, rulerEvent, false},
		{"cidr", `{"detail": {"source-ip": [{"cidr": "10.0.0.0/24"}]}}`, rulerEvent, true},
		{"cidr, other block", `{"detail": {"source-ip": [{"cidr": "10.0.1.0/24"}]}}`, rulerEvent, false},
		{"exists true", `{"detail": {"c-count": [{"exists": true}]}}`, rulerEvent, true},
		{"exists false, present", `{"detail": {"c-count": [{"exists": false}]}}`, rulerEvent, false},
		{"complex", `{"time": [{"prefix": "2017-10-02"}], "detail": {
			"state": [{"anything-but": "initializing"}], "c-count": [{"numeric": [">", 0, "<=", 5]}],
			"d-count": [{"numeric": ["<", 10]}], "x-limit": [{"anything-but": [100, 200, 300]}],
			"source-ip": [{"cidr": "10.0.0.0/8"}]}}`, rulerEvent, true},

		// Exists matching: absent, and an object, which is no leaf.
		{"exists false, absent", `{"detail": {"c-count": [{"exists": false}]}}`, existsEvent1, true},
		{"exists false, not a leaf", `{"detail": {"c-count": [{"exists": false}]}}`, existsEvent2, true},
		{"exists true, not a leaf", `{"detail": {"c-count": [{"exists": true}]}}`, existsEvent2, false},

		// JSON array matching: objects in arrays, matched element by element.
		{"array of objects", `{"employees": {"firstName": ["Anna"]}}`, employeesEvent, true},
		{"array of arrays of objects", `{"employees": {"firstName": ["Anna"]}}`, employeesNestedEvent, true},
		{"array consistency", `{"employees": {"firstName": ["Anna"], "lastName": ["Jones"]}}`, employeesEvent, false},
		{"array consistency, same element", `{"employees": {"firstName": ["Anna"], "lastName": ["Smith"]}}`, employeesEvent, true},
		{"array consistency, nested arrays", `{"employees": {"firstName": ["Anna"], "lastName": ["Jones"]}}`, employeesNestedEvent, false},

		// $or.
		{"$or normal", `{"source": ["aws.cloudwatch"], "$or": [{"metricName": ["CPUUtilization", "ReadLatency"]}, {"namespace": ["AWS/EC2", "AWS/ES"]}]}`, cloudwatchEvent, true},
		{"$or none", `{"$or": [{"metricName": ["CPUUtilization"]}, {"namespace": ["AWS/ES"]}]}`, cloudwatchEvent, false},
		{"$or parallel", `{"$or": [{"metricName": ["NetworkIn"]}, {"namespace": ["AWS/ES"]}],
			"detail": {"$or": [{"source": ["aws.cloudwatch"]}, {"detail-type": ["CloudWatch Alarm State Change"]}]}}`, cloudwatchEvent, true},
		{"$or parallel, second fails", `{"$or": [{"metricName": ["NetworkIn"]}, {"namespace": ["AWS/ES"]}],
			"detail": {"$or": [{"source": ["aws.cloudwatch"]}, {"detail-type": ["Other"]}]}}`, cloudwatchEvent, false},
		{"$or with an and inside", `{"source": ["aws.cloudwatch"], "$or": [{"metricName": ["CPUUtilization"]},
			{"metricType": ["MetricType"], "namespace": ["AWS/EC2", "AWS/ES"]}, {"scope": ["Service"]}]}`, cloudwatchEvent, true},
		{"$or nested", `{"source": ["aws.cloudwatch"], "$or": [{"metricName": ["CPUUtilization"]},
			{"metricType": ["MetricType"], "namespace": ["AWS/EC2"], "$or": [{"metricId": [1234]}, {"spaceId": [1000]}]},
			{"scope": ["Service"]}]}`, cloudwatchEvent, false},
		{"$or numeric alternatives", `{"detail": {"$or": [{"c-count": [{"numeric": [">", 10]}]}, {"d-count": [{"numeric": ["<", 10]}]}]}}`, rulerEvent, true},
	})
}

// TestMatchComparisonOperators runs each row of the comparison operators
// table against an event that has the property it describes and one that
// does not.
func TestMatchComparisonOperators(t *testing.T) {
	rows := []struct {
		name, pattern string
	}{
		{"and", `{"Location": ["New York"], "Day": ["Monday"]}`},
		{"anything-but", `{"state": [{"anything-but": "initializing"}]}`},
		{"anything-but begins with", `{"Region": [{"anything-but": {"prefix": "us-"}}]}`},
		{"anything-but ends with", `{"FileName": [{"anything-but": {"suffix": ".png"}}]}`},
		{"anything-but ignore case", `{"state": [{"anything-but": {"equals-ignore-case": "initializing"}}]}`},
		{"anything-but wildcard", `{"FilePath": [{"anything-but": {"wildcard": "*/lib/*"}}]}`},
		{"begins with", `{"Region": [{"prefix": "eu-"}]}`},
		{"begins with ignore case", `{"service": [{"prefix": {"equals-ignore-case": "eventb"}}]}`},
		{"empty", `{"LastName": [""]}`},
		{"equals", `{"Name": ["Alice"]}`},
		{"ends with", `{"FilePath": [{"suffix": ".png"}]}`},
		{"ends with ignore case", `{"service": [{"suffix": {"equals-ignore-case": "tBridge"}}]}`},
		{"exists", `{"ProductName": [{"exists": true}]}`},
		{"not", `{"Weather": [{"anything-but": ["Raining"]}]}`},
		{"null", `{"UserID": [null]}`},
		{"numeric equals", `{"Price": [{"numeric": ["=", 100]}]}`},
		{"numeric range", `{"Price": [{"numeric": [">", 10, "<=", 100]}]}`},
		{"or", `{"PaymentType": ["Credit", "Debit"]}`},
		{"or across fields", `{"$or": [{"Location": ["New York"]}, {"Day": ["Monday"]}]}`},
		{"wildcard", `{"FilePath": [{"wildcard": "dir/*.png"}]}`},
	}
	var cases []matchCase
	for _, r := range rows {
		cases = append(cases,
			matchCase{r.name, r.pattern, operatorsEvent, true},
			matchCase{r.name + ", not", r.pattern, operatorsEvent2, false})
	}
	cases = append(cases,
		matchCase{"equals ignore case", `{"Name": [{"equals-ignore-case": "alice"}]}`, operatorsEvent2, true},
		matchCase{"anything-but is case-sensitive", `{"state": [{"anything-but": "initializing"}]}`, `{"state": "INITIALIZING"}`, true},
		matchCase{"anything-but ignore case, other casing", `{"state": [{"anything-but": {"equals-ignore-case": ["initializing", "stopped"]}}]}`, `{"state": "INITIALIZING"}`, false},
		matchCase{"anything-but suffix is case-sensitive", `{"FileName": [{"anything-but": {"suffix": ".png"}}]}`, `{"FileName": "image.PNG"}`, true},
		matchCase{"does not exist", `{"ProductName": [{"exists": false}]}`, operatorsEvent2, true},
		matchCase{"does not exist, present", `{"ProductName": [{"exists": false}]}`, operatorsEvent, false},
		matchCase{"exists on an array", `{"Tags": [{"exists": true}]}`, operatorsEvent, true},
		matchCase{"exists on an empty array", `{"Empty": [{"exists": false}]}`, operatorsEvent, true},
		matchCase{"exists on null", `{"UserID": [{"exists": true}]}`, operatorsEvent, true},
		matchCase{"leaf pattern on an object", `{"Nested": ["x"]}`, operatorsEvent, false},
		matchCase{"anything-but on an object", `{"Nested": [{"anything-but": "x"}]}`, operatorsEvent, false},
		matchCase{"object pattern on a leaf", `{"Name": {"First": ["Alice"]}}`, operatorsEvent, false},
		matchCase{"object pattern on a leaf, exists false", `{"Name": {"First": [{"exists": false}]}}`, operatorsEvent, true},
		matchCase{"exists false under a missing object", `{"Missing": {"Leaf": [{"exists": false}]}}`, operatorsEvent, true},
		matchCase{"wildcard, escaped star", `{"FilePath": [{"wildcard": "dir/\\*.png"}]}`, `{"FilePath": "dir/*.png"}`, true},
		matchCase{"wildcard, escaped star is literal", `{"FilePath": [{"wildcard": "dir/\\*.png"}]}`, `{"FilePath": "dir/cat.png"}`, false},
		matchCase{"wildcard, escaped backslash", `{"p": [{"wildcard": "C:\\\\*"}]}`, `{"p": "C:\\Windows"}`, true},
		matchCase{"wildcard, star alone", `{"p": [{"wildcard": "*"}]}`, `{"p": ""}`, true},
		matchCase{"wildcard, overlapping ends", `{"p": [{"wildcard": "ab*ba"}]}`, `{"p": "aba"}`, false},
		matchCase{"wildcard, middle parts", `{"p": [{"wildcard": "a*b*c"}]}`, `{"p": "a-c-b-c"}`, true},
		matchCase{"prefix ignore case, multibyte", `{"p": [{"prefix": {"equals-ignore-case": "ÉVÉ"}}]}`, `{"p": "événement"}`, true},
		matchCase{"suffix ignore case, longer than value", `{"p": [{"suffix": {"equals-ignore-case": "xyz"}}]}`, `{"p": "yz"}`, false},
		matchCase{"cidr ipv6", `{"ip": [{"cidr": "2001:db8::/32"}]}`, `{"ip": "2001:db8::1"}`, true},
		matchCase{"cidr, not an address", `{"ip": [{"cidr": "10.0.0.0/8"}]}`, `{"ip": "10.0.0.x"}`, false},
		matchCase{"cidr, mapped ipv4", `{"ip": [{"cidr": "10.0.0.0/8"}]}`, `{"ip": "::ffff:10.1.2.3"}`, true},
		matchCase{"anything-but wildcard list", `{"p": [{"anything-but": {"wildcard": ["*/lib/*", "*/bin/*"]}}]}`, `{"p": "usr/bin/sh"}`, false},
		matchCase{"anything-but on a number, string list", `{"p": [{"anything-but": ["a"]}]}`, `{"p": 1}`, true},
		matchCase{"boolean", `{"p": [true]}`, `{"p": true}`, true},
		matchCase{"boolean is not its string", `{"p": [true]}`, `{"p": "true"}`, false},
		matchCase{"numbers by value", `{"p": [300]}`, `{"p": 3.0e2}`, true},
		matchCase{"numbers by value, negative zero", `{"p": [0]}`, `{"p": -0.0}`, true},
		matchCase{"numbers by value, large", `{"p": [12345678901234567890]}`, `{"p": 12345678901234567891}`, false},
		matchCase{"numbers by value, small", `{"p": [1e-7]}`, `{"p": 0.0000001}`, true},
		matchCase{"numeric on a huge number", `{"p": [{"numeric": [">", 0]}]}`, `{"p": 1e400}`, true},
		// As event-ruler joins nested names with dots (TestMatchDottedNames).
		matchCase{"field names with dots are paths", `{"a.b": ["x"]}`, `{"a": {"b": "x"}}`, true},
	)
	runMatchCases(t, cases)
}

// TestMatchScanEvents selects scangate's scan summaries the ways rules will.
func TestMatchScanEvents(t *testing.T) {
	critical := scanEvent("team/api", 3, 16, `"1.4.2", "latest"`)
	clean := scanEvent("team/api", 0, 0, `"1.4.3"`)
	highOnly := scanEvent("other/web", 0, 2, `"latest"`)
	const criticalPattern = `{"source": ["scangate.scanner"], "detail-type": ["Scan"],
		"detail": {"finding-severity-counts": {"CRITICAL": [{"numeric": [">", 0]}]}}}`
	const teamPattern = `{"detail": {"repository-name": [{"prefix": "team/"}]}}`
	const notLatest = `{"detail": {"image-tags": [{"anything-but": "latest"}]}}`
	const severeOr = `{"detail-type": ["Scan"], "detail": {"$or": [
		{"finding-severity-counts": {"CRITICAL": [{"numeric": [">", 0]}]}},
		{"finding-severity-counts": {"HIGH": [{"numeric": [">=", 10]}]}},
		{"fixable-severity-counts": {"HIGH": [{"numeric": [">", 5]}]}}]}}`
	const criticalOrHigh = `{"detail-type": ["Scan"], "detail": {"$or": [
		{"finding-severity-counts": {"CRITICAL": [{"numeric": [">", 0]}]}},
		{"finding-severity-counts": {"HIGH": [{"numeric": [">", 0]}]}}]}}`
	runMatchCases(t, []matchCase{
		{"critical findings", criticalPattern, critical, true},
		{"no critical findings", criticalPattern, clean, false},
		{"critical, other detail type", `{"detail-type": ["Finding"], "detail": {"finding-severity-counts": {"CRITICAL": [{"numeric": [">", 0]}]}}}`, critical, false},
		{"repository prefix", teamPattern, clean, true},
		{"repository prefix, other team", teamPattern, highOnly, false},
		{"resources wildcard", `{"resources": [{"wildcard": "*/team/*@sha256:*"}]}`, critical, true},
		// anything-but over an array matches when any tag is another tag.
		{"tags other than latest", notLatest, critical, true},
		{"only latest", notLatest, highOnly, false},
		{"no latest tag", notLatest, clean, true},
		{"severe by critical", severeOr, critical, true},
		{"severe by neither", severeOr, highOnly, false},
		{"severe by high", severeOr, scanEvent("team/api", 0, 12, `"2"`), true},
		{"clean and tagged", `{"detail": {"finding-severity-counts": {"TOTAL": [{"numeric": ["<=", 5]}]}, "image-tags": ["1.4.3"]}}`, clean, true},
		// A gate on severe images: any CRITICAL or HIGH finding.
		{"critical or high, critical", criticalOrHigh, critical, true},
		{"critical or high, high only", criticalOrHigh, highOnly, true},
		{"critical or high, clean", criticalOrHigh, clean, false},
		{"scan complete", `{"detail": {"scan-status": ["INITIAL_SCAN_COMPLETE"], "vulndb": {"digest": [{"exists": true}]}}}`, clean, true},
	})
}

func TestCompilePatternErrors(t *testing.T) {
	tests := []struct {
		pattern, path, problem string
	}{
		{``, "", "no value"},
		{`{"source": ["a"]`, "", "unexpected end"},
		{`{"source": ["a"]} {}`, "", "more data"},
		{`["aws.ec2"]`, "", "a pattern is a JSON object, not an array"},
		{`"aws.ec2"`, "", "not a string"},
		{`{}`, "", "empty object"},
		{`{"detail": {}}`, "detail", "empty object"},
		{`{"source": "aws.ec2"}`, "source", `want an array of match values (such as ["aws.ec2"])`},
		{`{"source": []}`, "source", "empty array"},
		{`{"source": [["a"]]}`, "source[0]", "not an array"},
		{`{"source": ["a", "a"], "source": ["b"]}`, "", `field "source" appears twice`},
		{`{"source": [{"prefix": "a", "suffix": "b"}]}`, "source[0]", "exactly one operator, not 2"},
		{`{"source": [{}]}`, "source[0]", "exactly one operator, not 0"},
		{`{"source": [{"contains": "a"}]}`, "source[0]", `unknown operator "contains"`},
		{`{"source": [{"prefix": 1}]}`, "source[0]", "prefix: want a string"},
		{`{"source": [{"prefix": {"equals-ignore-case": 1}}]}`, "source[0]", "prefix: want a string"},
		{`{"source": [{"suffix": {"other": "x"}}]}`, "source[0]", "suffix: want a string"},
		{`{"source": [{"equals-ignore-case": ["a"]}]}`, "source[0]", "equals-ignore-case: want a string"},
		{`{"source": [{"exists": "yes"}]}`, "source[0]", "exists: want true or false"},
		{`{"ip": [{"cidr": "10.0.0.0"}]}`, "ip[0]", "cidr: \"10.0.0.0\" is not an address block"},
		{`{"f": [{"wildcard": "dir/**.png"}]}`, "f[0]", "consecutive wildcard characters"},
		{`{"f": [{"wildcard": "a\\b"}]}`, "f[0]", "backslash may only escape"},
		{`{"f": [{"wildcard": "a\\"}]}`, "f[0]", "backslash may only escape"},
		{`{"f": [{"wildcard": 3}]}`, "f[0]", "wildcard: want a string"},
		{`{"n": [{"numeric": 5}]}`, "n[0]", "numeric: want [operator, number]"},
		{`{"n": [{"numeric": [">"]}]}`, "n[0]", "numeric: want [operator, number]"},
		{`{"n": [{"numeric": [">", 0, "<"]}]}`, "n[0]", "numeric: want [operator, number]"},
		{`{"n": [{"numeric": [">", 0, "<", 5, "<", 6]}]}`, "n[0]", "numeric: want [operator, number]"},
		{`{"n": [{"numeric": ["!=", 0]}]}`, "n[0]", `unknown operator "!="`},
		{`{"n": [{"numeric": [0, ">"]}]}`, "n[0]", "element 0: want an operator"},
		{`{"n": [{"numeric": [">", "0"]}]}`, "n[0]", `">" needs a number, not a string`},
		{`{"n": [{"numeric": [">", 1e400]}]}`, "n[0]", "out of range"},
		{`{"n": [{"numeric": ["<", 5, ">", 0]}]}`, "n[0]", "first is a lower bound"},
		{`{"n": [{"numeric": ["=", 5, "<", 6]}]}`, "n[0]", "first is a lower bound"},
		{`{"n": [{"numeric": [">", 0, ">", 5]}]}`, "n[0]", "second comparison is an upper bound"},
		{`{"n": [{"numeric": [">", 5, "<", 5]}]}`, "n[0]", "lower bound 5 is not below the upper bound 5"},
		{`{"s": [{"anything-but": null}]}`, "s[0]", "anything-but: want a string, a number"},
		{`{"s": [{"anything-but": true}]}`, "s[0]", "anything-but: want a string, a number"},
		{`{"s": [{"anything-but": []}]}`, "s[0]", "anything-but: an empty array"},
		{`{"s": [{"anything-but": ["a", 1]}]}`, "s[0]", "all strings or all numbers"},
		{`{"s": [{"anything-but": ["a", null]}]}`, "s[0]", "element 1: want a string or a number, not null"},
		{`{"s": [{"anything-but": {"numeric": [">", 1]}}]}`, "s[0]", "want one of prefix, suffix"},
		{`{"s": [{"anything-but": {}}]}`, "s[0]", "want one of prefix, suffix"},
		{`{"s": [{"anything-but": {"prefix": ""}}]}`, "s[0]", "anything-but: prefix: an empty string"},
		{`{"s": [{"anything-but": {"suffix": 1}}]}`, "s[0]", "anything-but: suffix: want a string"},
		{`{"s": [{"anything-but": {"wildcard": ["a**"]}}]}`, "s[0]", "consecutive wildcard"},
		{`{"s": [{"anything-but": {"equals-ignore-case": [1]}}]}`, "s[0]", "element 0: want a string"},
		{`{"$or": [{"a": ["x"]}]}`, "$or", "at least two pattern objects"},
		{`{"$or": {"a": ["x"]}}`, "$or", "at least two pattern objects"},
		{`{"$or": [{"a": ["x"]}, ["b"]]}`, "$or[1]", "an alternative is a pattern object, not an array"},
		{`{"$or": [{"a": ["x"]}, {}]}`, "$or[1]", "empty object"},
		{`{"$or": [{"prefix": ["x"]}, {"b": ["y"]}]}`, "$or[0].prefix", `"prefix" is an operator, not a field name`},
		{`{"detail": {"$or": [{"a": ["x"]}, {"b": {"numeric": [1]}}]}}`, "detail.$or[1].b.numeric", "is an operator"},
		{`{"detail": {"$or": [{"a": ["x"]}, {"b": [{"numeric": [">"]}]}]}}`, "detail.$or[1].b[0]", "numeric: want"},
		// "$or" is a keyword only as a whole field name, as in event-ruler.
		{`{"detail.$or": [{"a": ["x"]}, {"b": ["y"]}]}`, "detail.$or[0]", `unknown operator "a"`},
		{`{"a.b": ["x"], "a": {"b": ["y"]}}`, "a.b", "given twice"},
	}
	for _, tt := range tests {
		p, err := Compile([]byte(tt.pattern))
		var pe *Error
		if !errors.As(err, &pe) {
			t.Errorf("Compile(%s) = %v, %v; want a *Error", tt.pattern, p, err)
			continue
		}
		if p != nil {
			t.Errorf("Compile(%s) returned a pattern with its error", tt.pattern)
		}
		if pe.Path != tt.path || !strings.Contains(pe.Problem, tt.problem) {
			t.Errorf("Compile(%s):\n got path %q, problem %q\nwant path %q, problem containing %q", tt.pattern, pe.Path, pe.Problem, tt.path, tt.problem)
		}
	}
}

func TestPatternLimits(t *testing.T) {
	// Size: a pattern of MaxSize bytes compiles, one more does not.
	pad := func(n int) string {
		p := `{"source": ["` + strings.Repeat("a", n) + `"]}`
		return p
	}
	fits := pad(MaxSize - len(pad(0)))
	if _, err := Compile([]byte(fits)); err != nil {
		t.Errorf("%d-byte pattern: %v", len(fits), err)
	}
	if _, err := Compile([]byte(fits + " ")); err == nil || !strings.Contains(err.Error(), "more than the 4096") {
		t.Errorf("%d-byte pattern: %v, want a size error", len(fits)+1, err)
	}

	// Depth: MaxDepth levels of objects and arrays compile, one more
	// does not.
	nest := func(levels int) string { // levels-1 objects, then the leaf array
		return strings.Repeat(`{"a":`, levels-1) + `["x"]` + strings.Repeat(`}`, levels-1)
	}
	if _, err := Compile([]byte(nest(MaxDepth))); err != nil {
		t.Errorf("%d levels: %v", MaxDepth, err)
	}
	if _, err := Compile([]byte(nest(MaxDepth + 1))); err == nil || !strings.Contains(err.Error(), "nests more than 32 levels") {
		t.Errorf("%d levels: %v, want a depth error", MaxDepth+1, err)
	}
}

func TestMatchErrors(t *testing.T) {
	p, err := Compile([]byte(`{"source": ["aws.ec2"]}`))
	if err != nil {
		t.Fatal(err)
	}
	deep := strings.Repeat(`{"a":`, MaxEventDepth+1) + `1` + strings.Repeat(`}`, MaxEventDepth+1)
	for _, tt := range []struct{ event, want string }{
		{``, "no value"},
		{`{"source": "aws.ec2"`, "unexpected end"},
		{`{"source": "aws.ec2"}}`, "invalid JSON at byte 21"},
		{`["aws.ec2"]`, "an event is a JSON object, not an array"},
		{`null`, "not null"},
		{deep, "nests more than 128 levels"},
		{`{"detail": "` + strings.Repeat("x", MaxEventSize) + `"}`, "more than the 262144"},
	} {
		ok, err := p.Match([]byte(tt.event))
		if ok || err == nil || !strings.Contains(err.Error(), tt.want) {
			msg := tt.event
			if len(msg) > 60 {
				msg = msg[:60] + "..."
			}
			t.Errorf("Match(%s) = %v, %v; want an error containing %q", msg, ok, err, tt.want)
		}
	}
	// An event exactly at the limits matches.
	atDepth := strings.Repeat(`{"a":`, MaxEventDepth-1) + `{"source": "aws.ec2"}` + strings.Repeat(`}`, MaxEventDepth-1)
	if _, err := p.Match([]byte(atDepth)); err != nil {
		t.Errorf("event %d levels deep: %v", MaxEventDepth, err)
	}
	var nilPattern *Pattern
	if _, err := nilPattern.Match([]byte(`{}`)); err == nil {
		t.Error("a nil pattern matched without an error")
	}
}

func TestNumbersEqual(t *testing.T) {
	for _, tt := range []struct {
		a, b string
		want bool
	}{
		{"300", "300.0", true},
		{"300", "3.0e2", true},
		{"300", "3E+2", true},
		{"0.5", "5e-1", true},
		{"-1.50", "-15e-1", true},
		{"0", "-0", true},
		{"0", "0e10", true},
		{"100", "10", false},
		{"1", "-1", false},
		{"0.001", "1e-3", true},
		{"0.001", "1e-2", false},
		{"12345678901234567890", "12345678901234567891", false},
		{"1e99999999999999999999", "1e99999999999999999999", true},
		{"1e99999999999999999999", "10e99999999999999999998", false}, // too large to compare but by text
	} {
		if got := numbersEqual(json.Number(tt.a), json.Number(tt.b)); got != tt.want {
			t.Errorf("numbersEqual(%s, %s) = %v, want %v", tt.a, tt.b, got, tt.want)
		}
	}
}

func TestWildcard(t *testing.T) {
	for _, tt := range []struct {
		pattern, s string
		want       bool
	}{
		{"dir/*.png", "dir/a.png", true},
		{"dir/*.png", "dir/a/b.png", true},
		{"dir/*.png", "dir/.png", true},
		{"dir/*.png", "dir/a.png.txt", false},
		{"dir/*.png", "other/dir/a.png", false},
		{"*Title*", "The Title Here", true},
		{"*Title*", "Title", true},
		{"*Title*", "title", false},
		{"a*b*c", "abc", true},
		{"a*b*c", "acb", false},
		{"*.png", ".png", true},
		{"*", "", true},
		{"", "", true},
		{"", "a", false},
		{`\*`, "*", true},
		{`\*`, "a", false},
		{`a\\*`, `a\bc`, true},
		{"ab*ab", "ab", false},
		{"ab*ab", "abab", true},
		{"*a*", "bbb", false},
	} {
		w, err := compileWildcard(tt.pattern)
		if err != nil {
			t.Errorf("compileWildcard(%q): %v", tt.pattern, err)
			continue
		}
		if got := w.matchString(tt.s); got != tt.want {
			t.Errorf("wildcard %q on %q = %v, want %v", tt.pattern, tt.s, got, tt.want)
		}
	}
}

func TestFold(t *testing.T) {
	for _, tt := range []struct {
		s, affix             string
		wantPrefix, wantSufx bool
	}{
		{"EventBridge", "eventb", true, false},
		{"EventBridge", "TBRIDGE", false, true},
		{"Straße", "STRASSE", false, false}, // simple folding: ß is not ss
		{"ÀB", "àb", true, true},
		{"a", "ab", false, false},
		{"", "", true, true},
		{"KELVIN", "\u212aelvin", true, true}, // the Kelvin sign folds to k
	} {
		if got := hasPrefixFold(tt.s, tt.affix); got != tt.wantPrefix {
			t.Errorf("hasPrefixFold(%q, %q) = %v", tt.s, tt.affix, got)
		}
		if got := hasSuffixFold(tt.s, tt.affix); got != tt.wantSufx {
			t.Errorf("hasSuffixFold(%q, %q) = %v", tt.s, tt.affix, got)
		}
	}
}

// TestMatchConcurrent uses one pattern from many goroutines (run with -race).
func TestMatchConcurrent(t *testing.T) {
	p, err := Compile([]byte(`{"detail": {"state": [{"anything-but": {"prefix": "init"}}], "c-count": [{"numeric": [">", 0]}]}}`))
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan bool)
	for range 8 {
		go func() {
			ok := true
			for range 100 {
				m, err := p.Match([]byte(rulerEvent))
				ok = ok && m && err == nil
			}
			done <- ok
		}()
	}
	for range 8 {
		if !<-done {
			t.Error("a concurrent match failed")
		}
	}
}

// TestMatchDottedNames: a field name with dots in a pattern or in an
// event stands for the nested fields it names, as aws/event-ruler (the
// matcher EventBridge's is published as) joins the names of nested
// fields with dots and compares the joined paths. Its README, "Caveat:
// Compiled rules and JSON keys with dots", gives the first four rows.
//
// Fixed here: the names were compared whole, so none of these matched.
func TestMatchDottedNames(t *testing.T) {
	const (
		nested      = `{"detail": {"state": {"status": ["running"]}}}`
		dotted      = `{"detail": {"state.status": ["running"]}}`
		eventNested = `{"detail": {"state": {"status": "running"}}}`
		eventDotted = `{"detail": {"state.status": "running"}}`
	)
	runMatchCases(t, []matchCase{
		{"ruler caveat: nested pattern, nested event", nested, eventNested, true},
		{"ruler caveat: nested pattern, dotted event", nested, eventDotted, true},
		{"ruler caveat: dotted pattern, nested event", dotted, eventNested, true},
		{"ruler caveat: dotted pattern, dotted event", dotted, eventDotted, true},
		{"dotted pattern from the top", `{"detail.state": ["terminated"], "source": ["aws.ec2"]}`, ec2Event, true},
		{"dotted pattern from the top, other state", `{"detail.state": ["running"]}`, ec2Event, false},
		{"dotted pattern, other value", dotted, `{"detail": {"state": {"status": "stopped"}}}`, false},
		{"dotted event, three levels", `{"a": {"b": {"c": [1]}}}`, `{"a.b.c": 1}`, true},
		{"dotted event, mixed", `{"a": {"b": {"c": [1], "d": [2]}}}`, `{"a": {"b.c": 1}, "a.b": {"d": 2}}`, true},
		{"dotted event beside a nested one: both count", `{"a": {"b": [2]}}`, `{"a": {"b": 1}, "a.b": 2}`, true},
		{"dotted event beside a nested one: both count, other", `{"a": {"b": [1]}}`, `{"a": {"b": 1}, "a.b": 2}`, true},
		{"dotted event, exists", `{"detail": {"state": {"status": [{"exists": true}]}}}`, eventDotted, true},
		{"dotted event, exists false", `{"detail": {"state": {"status": [{"exists": false}]}}}`, eventDotted, false},
		{"dotted pattern, numeric", `{"detail.risk-score": [{"numeric": [">", 50]}], "detail.trigger.risk": [8]}`, macieEvent, true},
		// Array consistency holds across the spellings: both fields from
		// the same element.
		{"dotted pattern, array consistency", `{"employees.firstName": ["Anna"], "employees.lastName": ["Jones"]}`, employeesEvent, false},
		{"dotted pattern, array consistency, same element", `{"employees.firstName": ["Anna"], "employees.lastName": ["Smith"]}`, employeesEvent, true},
		{"dotted and nested pattern, same element", `{"employees.firstName": ["Anna"], "employees": {"lastName": ["Smith"]}}`, employeesEvent, true},
		{"dotted and nested pattern, other elements", `{"employees.firstName": ["Anna"], "employees": {"lastName": ["Jones"]}}`, employeesEvent, false},
		// A field beside an array is in every element.
		{"dotted event beside an array", `{"employees": {"firstName": ["Peter"], "company": ["Acme"]}}`, `{"employees": [{"firstName": "John"}, {"firstName": "Peter"}], "employees.company": "Acme"}`, true},
		{"dotted pattern in $or", `{"$or": [{"detail.state": ["running"]}, {"detail.instance-id": ["i-1234567890abcdef0"]}]}`, ec2Event, true},
		{"dotted pattern in $or, neither", `{"$or": [{"detail.state": ["running"]}, {"detail.instance-id": ["i-0"]}]}`, ec2Event, false},
		// Each spelling of a path may bring its own $or: both must hold.
		{"$or on both spellings of a path", `{"detail": {"trigger": {"$or": [{"risk": [8]}, {"risk": [9]}]}},
			"detail.trigger": {"$or": [{"alert-type": ["basic"]}, {"alert-type": ["other"]}]}}`, macieEvent, true},
		{"$or on both spellings of a path, second fails", `{"detail": {"trigger": {"$or": [{"risk": [8]}, {"risk": [9]}]}},
			"detail.trigger": {"$or": [{"alert-type": ["x"]}, {"alert-type": ["other"]}]}}`, macieEvent, false},
	})
}

// TestCompileDottedNameTwice: a path a pattern gives twice, once with
// dots and once nested, is an error, as event-ruler's compiler says
// "Path `a.b` cannot be allowed multiple times" when not told to let the
// last win.
func TestCompileDottedNameTwice(t *testing.T) {
	for _, tt := range []struct{ pattern, path string }{
		{`{"a.b": ["x"], "a": {"b": ["y"]}}`, "a.b"},
		{`{"detail": {"state": ["x"]}, "detail.state": [{"prefix": "y"}]}`, "detail.state"},
		{`{"a": {"b.c": [1]}, "a.b": {"c": [2]}}`, "a.b.c"},
	} {
		_, err := Compile([]byte(tt.pattern))
		var pe *Error
		if !errors.As(err, &pe) || pe.Path != tt.path || !strings.Contains(pe.Problem, "given twice") {
			t.Errorf("Compile(%s) = %v; want a *Error at %s saying the path is given twice", tt.pattern, err, tt.path)
		}
	}
}
