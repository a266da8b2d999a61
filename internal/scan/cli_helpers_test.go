package scan_test

import (
	"archive/tar"
	"bytes"
	"context"
	"encoding/json"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/santhosh-tekuri/jsonschema/v6"

	"github.com/scangate/scangate/internal/cli"
	"github.com/scangate/scangate/internal/imagetest"
	"github.com/scangate/scangate/internal/report"
	"github.com/scangate/scangate/internal/scan"
)

// feedFixtures is the folder of real advisories per ecosystem (see each
// folder's NOTICE).
var feedFixtures = filepath.Join("..", "feed", "testdata")

// runScangate runs the scangate command as a user would, against dataDir.
func runScangate(t *testing.T, dataDir string, args ...string) (stdout, stderr string, code int) {
	t.Helper()
	var out, errb bytes.Buffer
	code = cli.Main(context.Background(), append([]string{"--data-dir", dataDir}, args...), &out, &errb)
	return out.String(), errb.String(), code
}

// importFeeds makes a data folder holding the given feed files and folders.
func importFeeds(t *testing.T, paths ...string) string {
	t.Helper()
	dir := t.TempDir()
	if out, errs, code := runScangate(t, dir, append([]string{"db", "import"}, paths...)...); code != 0 {
		t.Fatalf("db import: exit %d\n%s%s", code, out, errs)
	}
	return dir
}

// scanArchive saves img as docker save does and scans it with `scangate
// --format json scan`, returning the report.
func scanArchive(t *testing.T, dataDir string, img v1.Image) *scan.Report {
	t.Helper()
	archive := imagetest.WriteDockerArchive(t, filepath.Join(t.TempDir(), "image.tar"), "127.0.0.1:5000/fixture:1", img)
	out, errs, code := runScangate(t, dataDir, "--format", "json", "scan", "docker-archive:"+archive)
	if code != 0 {
		t.Fatalf("scangate scan: exit %d\n%s", code, errs)
	}
	// The report a user reads is the documented one (locations included).
	doc, err := jsonschema.UnmarshalJSON(strings.NewReader(out))
	if err != nil {
		t.Fatalf("scan report: %v\n%.2000s", err, out)
	}
	if err := reportSchema(t).Validate(doc); err != nil {
		t.Errorf("the report does not follow its schema: %v", err)
	}
	var r scan.Report
	if err := json.Unmarshal([]byte(out), &r); err != nil {
		t.Fatalf("scan report: %v\n%.2000s", err, out)
	}
	return &r
}

// reportSchema compiles the JSON report's schema, offline.
func reportSchema(t *testing.T) *jsonschema.Schema {
	t.Helper()
	doc, err := jsonschema.UnmarshalJSON(bytes.NewReader(report.JSONSchema()))
	if err != nil {
		t.Fatal(err)
	}
	id, _ := doc.(map[string]any)["$id"].(string)
	c := jsonschema.NewCompiler()
	c.UseLoader(jsonschema.SchemeURLLoader{}) // no file, no http
	if err := c.AddResource(id, doc); err != nil {
		t.Fatal(err)
	}
	sch, err := c.Compile(id)
	if err != nil {
		t.Fatal(err)
	}
	return sch
}

// debLayer is the layer `dpkg -i` writes for a .deb: its files, by dpkg's
// own dpkg-deb, and a dpkg status that lists it after base's packages.
func debLayer(t *testing.T, status string, debs ...string) (v1.Layer, string) {
	t.Helper()
	var entries []imagetest.RawEntry
	for _, deb := range debs {
		data, err := exec.Command("dpkg-deb", "--fsys-tarfile", deb).Output()
		if err != nil {
			t.Fatalf("dpkg-deb --fsys-tarfile %s (dpkg must be installed): %v", deb, err)
		}
		entries = append(entries, tarEntries(t, data)...)
		control, err := exec.Command("dpkg-deb", "--field", deb).Output()
		if err != nil {
			t.Fatalf("dpkg-deb --field %s: %v", deb, err)
		}
		status = strings.TrimRight(status, "\n") + "\n\n" + statusParagraph(string(control))
	}
	entries = append(entries, imagetest.RawEntry{Header: tarHeader("var/lib/dpkg/status"), Body: status})
	return imagetest.LayerFromBytes(t, imagetest.Tar(t, entries...)), status
}

// statusParagraph is the paragraph dpkg adds to its status file for an
// installed package: the control fields with Status after Package.
func statusParagraph(control string) string {
	var b strings.Builder
	for _, line := range strings.Split(strings.TrimRight(control, "\n"), "\n") {
		b.WriteString(line + "\n")
		if strings.HasPrefix(line, "Package: ") {
			b.WriteString("Status: install ok installed\n")
		}
	}
	return b.String()
}

func readFile(t *testing.T, path string) string {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(data)
}

// tarEntries reads a tar stream back into entries, to add to a layer.
func tarEntries(t *testing.T, data []byte) []imagetest.RawEntry {
	t.Helper()
	var out []imagetest.RawEntry
	tr := tar.NewReader(bytes.NewReader(data))
	for {
		h, err := tr.Next()
		if err == io.EOF {
			return out
		}
		if err != nil {
			t.Fatal(err)
		}
		body, err := io.ReadAll(tr)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, imagetest.RawEntry{Header: *h, Body: string(body)})
	}
}

func tarHeader(name string) tar.Header {
	return tar.Header{Name: name, Typeflag: tar.TypeReg, Mode: 0o644}
}
