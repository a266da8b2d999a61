package vulndb

import "testing"

func TestCVSS(t *testing.T) {
	// Scores as NVD publishes them for these vectors.
	tests := []struct {
		vector string
		typ    SeverityType
		score  float64
		rating string
	}{
		{"CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H", CVSSv31, 9.8, Critical}, // CVE-2023-45853
		{"CVSS:3.1/AV:N/AC:L/PR:H/UI:N/S:U/C:H/I:H/A:H", CVSSv31, 7.2, High},     // CVE-2021-23337
		{"CVSS:3.0/AV:L/AC:L/PR:L/UI:N/S:C/C:N/I:H/A:N", CVSSv30, 6.5, Medium},   // CVE-2016-2781
		{"AV:N/AC:L/Au:N/C:C/I:C/A:C", CVSSv2, 10.0, High},                       // CVE-2005-2541
		{"(AV:N/AC:M/Au:N/C:P/I:N/A:N)", CVSSv2, 4.3, Medium},                    // CVE-2011-3389
		{"CVSS:4.0/AV:N/AC:L/AT:N/PR:N/UI:N/VC:H/VI:H/VA:H/SC:N/SI:N/SA:N", CVSSv40, 9.3, Critical},
		{"CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:N/I:N/A:N", CVSSv31, 0, None},
	}
	for _, tt := range tests {
		s, err := CVSS(tt.vector)
		if err != nil {
			t.Errorf("CVSS(%q): %v", tt.vector, err)
			continue
		}
		if s.Type != tt.typ || s.Score != tt.score || s.Rating != tt.rating {
			t.Errorf("CVSS(%q) = %s %.1f %s, want %s %.1f %s", tt.vector, s.Type, s.Score, s.Rating, tt.typ, tt.score, tt.rating)
		}
	}
}

func TestCVSSRejectsBadVectors(t *testing.T) {
	for _, v := range []string{"", "CVSS:3.1/AV:X", "CVSS:9.9/AV:N", "AV:N/AC:L", string(make([]byte, 2000))} {
		if _, err := CVSS(v); err == nil {
			t.Errorf("CVSS(%.40q) succeeded, want an error", v)
		}
	}
}

func FuzzCVSS(f *testing.F) {
	f.Add("CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H")
	f.Add("AV:N/AC:L/Au:N/C:C/I:C/A:C")
	f.Add("CVSS:4.0/AV:N/AC:L/AT:N/PR:N/UI:N/VC:H/VI:H/VA:H/SC:N/SI:N/SA:N")
	f.Fuzz(func(t *testing.T, v string) {
		s, err := CVSS(v)
		if err != nil {
			return
		}
		if s.Score < 0 || s.Score > 10 {
			t.Fatalf("CVSS(%q) score %v out of range", v, s.Score)
		}
	})
}
