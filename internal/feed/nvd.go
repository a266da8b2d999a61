package feed

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/scangate/scangate/internal/lazyregexp"
	"github.com/scangate/scangate/internal/vulndb"
)

// NVD reads the NVD CVE API 2.0: response pages ({"format": "NVD_CVE",
// "vulnerabilities": [{"cve": ...}]}) and single cve objects as mirrors
// such as fkie-cad/nvd-json-data-feeds store them. Each CVE becomes one
// advisory in the "nvd" feed carrying NVD's and the CNAs' CVSS ratings; it
// has no affected packages, and serves the other feeds' advisories by CVE id.
type NVD struct{}

// Name returns "nvd".
func (NVD) Name() string { return "nvd" }

// Match reports whether head starts an NVD API response (format "NVD_CVE",
// or "vulnerabilities" with the paging fields) or one cve object (an "id"
// starting "CVE-" with a "sourceIdentifier").
func (NVD) Match(name string, head []byte) bool {
	keys := nvdHeadKeys(head)
	_, vulns := keys["vulnerabilities"]
	_, total := keys["totalResults"]
	_, source := keys["sourceIdentifier"]
	id, _ := keys["id"].(string)
	return keys["format"] == "NVD_CVE" || vulns && total || len(id) > 4 && id[:4] == "CVE-" && source
}

// nvdHeadKeys returns the top-level keys of the JSON object head starts, as
// far as head goes, with their values where those are strings or numbers.
// It stops at "vulnerabilities", the results of a page.
func nvdHeadKeys(head []byte) map[string]any {
	keys := map[string]any{}
	d := json.NewDecoder(bytes.NewReader(bytes.TrimPrefix(head, []byte("\xef\xbb\xbf"))))
	d.UseNumber()
	if t, err := d.Token(); err != nil || t != json.Delim('{') {
		return keys
	}
	for d.More() {
		k, err := d.Token()
		if err != nil {
			break
		}
		if k == "vulnerabilities" {
			keys["vulnerabilities"] = nil
			break
		}
		var v any
		if err := d.Decode(&v); err != nil {
			keys[k.(string)] = nil
			break
		}
		switch v.(type) {
		case string, json.Number:
			keys[k.(string)] = v
		default:
			keys[k.(string)] = nil
		}
	}
	return keys
}

// NVDPage is the paging of one NVD CVE API 2.0 response.
type NVDPage struct {
	// TotalResults counts the results of the whole query.
	TotalResults int
	// StartIndex is the index of this page's first result.
	StartIndex int
	// Count is the page's resultsPerPage: the results on this page, 0 past
	// the end.
	Count int
}

// ReadNVDPage reads the paging fields of an NVD CVE API 2.0 response. A
// downloader asks for startIndex=StartIndex+Count next, and is done when
// that reaches TotalResults or Count is 0. It reads only as far as the
// fields, which NVD writes before the results.
func ReadNVDPage(data []byte) (NVDPage, error) {
	keys := nvdHeadKeys(data)
	if f, ok := keys["format"]; ok && f != "NVD_CVE" {
		return NVDPage{}, fmt.Errorf("nvd page: format %v, not NVD_CVE", f)
	}
	var err error
	get := func(k string) int {
		n, _ := keys[k].(json.Number)
		v, e := n.Int64()
		if e != nil || v < 0 || v > 1<<31 {
			err = errors.Join(err, fmt.Errorf("nvd page: %s missing or not a count", k))
		}
		return int(v)
	}
	p := NVDPage{TotalResults: get("totalResults"), StartIndex: get("startIndex"), Count: get("resultsPerPage")}
	if err != nil {
		return NVDPage{}, err
	}
	return p, nil
}

// nvdItem is one result of a page, decoded on its own so that a bad one is
// skipped alone.
type nvdItem struct {
	CVE json.RawMessage `json:"cve"`
}

// nvdCVE is the part of an NVD cve object scangate keeps.
type nvdCVE struct {
	ID           string `json:"id"`
	Published    string `json:"published"`
	LastModified string `json:"lastModified"`
	VulnStatus   string `json:"vulnStatus"`
	Descriptions []struct {
		Lang  string `json:"lang"`
		Value string `json:"value"`
	} `json:"descriptions"`
	Metrics struct {
		V40 []nvdMetric `json:"cvssMetricV40"`
		V31 []nvdMetric `json:"cvssMetricV31"`
		V30 []nvdMetric `json:"cvssMetricV30"`
		V2  []nvdMetric `json:"cvssMetricV2"`
	} `json:"metrics"`
	References []struct {
		URL string `json:"url"`
	} `json:"references"`
}

// nvdMetric is one CVSS metric, NVD's own (Primary) or a CNA's (Secondary).
type nvdMetric struct {
	Source   string `json:"source"`
	Type     string `json:"type"`
	CVSSData struct {
		VectorString string `json:"vectorString"`
	} `json:"cvssData"`
}

var nvdIDRe = lazyregexp.New(`^CVE-\d{4}-\d{4,}$`)

// Parse decodes an API response page or a single cve object. A CVE that
// cannot be used (no CVE id, a bad timestamp) is skipped, and so is a
// metric whose vector does not parse; the CVE keeps its other metrics.
// Scores are computed from the vectors, not copied from baseScore.
func (NVD) Parse(name string, data []byte) (Result, error) {
	data = bytes.TrimPrefix(data, []byte("\xef\xbb\xbf"))
	if t := bytes.TrimLeft(data, " \t\r\n"); len(t) == 0 || t[0] != '{' {
		return Result{}, fmt.Errorf("%s: not an NVD JSON object", name)
	}
	var top struct {
		Format          string    `json:"format"`
		Vulnerabilities []nvdItem `json:"vulnerabilities"`
		ID              string    `json:"id"`
	}
	if err := json.Unmarshal(data, &top); err != nil {
		return Result{}, fmt.Errorf("%s: nvd: %w", name, err)
	}
	var res Result
	switch {
	case top.Format != "" && top.Format != "NVD_CVE":
		return Result{}, fmt.Errorf("%s: nvd format %q, not NVD_CVE", name, clipMsg(top.Format))
	case top.Vulnerabilities != nil || top.Format != "":
		for i, v := range top.Vulnerabilities {
			nvdAdd(&res, name, fmt.Sprintf("vulnerabilities[%d]", i), v.CVE)
		}
	case top.ID != "":
		nvdAdd(&res, name, "", data)
	default:
		return Result{}, fmt.Errorf("%s: neither an NVD API response nor a cve object", name)
	}
	return res, nil
}

// nvdAdd decodes one cve object into res; where names it for a Skip until
// its id is known.
func nvdAdd(res *Result, name, where string, raw json.RawMessage) {
	skip := func(format string, args ...any) {
		res.Skipped = append(res.Skipped, Skip{File: name, Record: where, Reason: fmt.Sprintf(format, args...)})
	}
	var c nvdCVE
	if err := json.Unmarshal(raw, &c); err != nil {
		skip("%v", err)
		return
	}
	if !nvdIDRe.MatchString(c.ID) || len(c.ID) > vulndb.MaxIDLen {
		skip("id %q is not a CVE id", clipMsg(c.ID))
		return
	}
	where = c.ID
	a := vulndb.Advisory{ID: c.ID, Feed: "nvd"}
	var err error
	if a.Published, err = nvdTime(c.Published); err != nil {
		skip("published: %v", err)
		return
	}
	if a.Modified, err = nvdTime(c.LastModified); err != nil {
		skip("lastModified: %v", err)
		return
	}
	if c.VulnStatus == "Rejected" {
		if a.Withdrawn = a.Modified; a.Withdrawn.IsZero() {
			a.Withdrawn = a.Published
		}
		if a.Withdrawn.IsZero() {
			skip("rejected without a date")
			return
		}
	}
	for _, d := range c.Descriptions {
		if d.Lang == "en" {
			a.Summary = d.Value
			break
		}
	}
	seen := map[string]bool{}
	for _, r := range c.References {
		if r.URL != "" && !seen[r.URL] {
			seen[r.URL] = true
			a.References = append(a.References, r.URL)
		}
	}
	m := c.Metrics
	for _, list := range [][]nvdMetric{m.V40, m.V31, m.V30, m.V2} {
		for _, metric := range list {
			s, err := vulndb.CVSS(metric.CVSSData.VectorString)
			if err != nil {
				skip("metric from %s: %v", clipMsg(metric.Source), err)
				continue
			}
			s.Source, s.Primary = metric.Source, metric.Type == "Primary"
			a.Severities = append(a.Severities, s)
		}
	}
	res.Advisories = append(res.Advisories, a)
}

// nvdTime parses an NVD timestamp. NVD writes them in UTC without a zone
// ("2023-10-14T02:15:09.323"); a zone, where a mirror adds one, is honoured.
func nvdTime(s string) (time.Time, error) {
	if s == "" {
		return time.Time{}, nil
	}
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		t, err = time.ParseInLocation("2006-01-02T15:04:05", s, time.UTC)
	}
	if err != nil {
		return time.Time{}, fmt.Errorf("timestamp %q", clipMsg(s))
	}
	return t.UTC(), nil
}
