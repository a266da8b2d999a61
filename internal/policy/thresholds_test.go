package policy

import (
	"reflect"
	"strings"
	"testing"
)

func TestParseThresholds(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want map[string]int
	}{
		{"CRITICAL=0,HIGH=0,MEDIUM=5", map[string]int{"CRITICAL": 0, "HIGH": 0, "MEDIUM": 5}},
		{"critical=0", map[string]int{"CRITICAL": 0}},
		{" High = 3 , low=10 ", map[string]int{"HIGH": 3, "LOW": 10}},
		{"CRITICAL,HIGH", map[string]int{"CRITICAL": 0, "HIGH": 0}},
		{"Unknown=007", map[string]int{"UNKNOWN": 7}},
		{"MEDIUM=1000000", map[string]int{"MEDIUM": 1000000}},
	} {
		got, err := ParseThresholds(tc.in)
		if err != nil || !reflect.DeepEqual(got, tc.want) {
			t.Errorf("ParseThresholds(%q) = %v, %v; want %v", tc.in, got, err, tc.want)
		}
	}
}

func TestParseThresholdsErrors(t *testing.T) {
	for _, tc := range []struct {
		in, want string
	}{
		{"", "thresholds: empty; want SEVERITY=COUNT"},
		{"  ", "thresholds: empty"},
		{"CRITICAL=0,", "item 2: empty; want SEVERITY=COUNT"},
		{",CRITICAL=0", "item 1: empty"},
		{"CRITICAL=0,critical=1", "item 2: CRITICAL given twice"},
		{"SEVERE=1", `item 1: "SEVERE" is not a severity; want one of CRITICAL, HIGH, MEDIUM, LOW, UNKNOWN`},
		{"NONE=0", `"NONE" is not a severity`},
		{"=3", `"" is not a severity`},
		{"CRITICAL=-1", `CRITICAL: count "-1" is not a whole number ≥ 0`},
		{"CRITICAL=+1", `count "+1" is not a whole number`},
		{"CRITICAL=x", `count "x" is not a whole number`},
		{"CRITICAL=1.5", `count "1.5" is not a whole number`},
		{"CRITICAL=1 2", `count "1 2" is not a whole number`},
		{"CRITICAL=0=1", `count "0=1" is not a whole number`},
		{"CRITICAL=", "CRITICAL: no count after '='"},
		{"CRITICAL=1000001", `count "1000001" is more than 1000000`},
		{"CRITICAL=99999999999999999999999", "is more than 1000000"},
		{"CRITICAL:0", `"CRITICAL:0" is not a severity`},
		{"CRITICAL=0;HIGH=0", `count "0;HIGH=0" is not a whole number`},
	} {
		got, err := ParseThresholds(tc.in)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("ParseThresholds(%q) error %v, want it to contain %q", tc.in, err, tc.want)
		}
		if got != nil {
			t.Errorf("ParseThresholds(%q) returned %v with the error", tc.in, got)
		}
	}
}
