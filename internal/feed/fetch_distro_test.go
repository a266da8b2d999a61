package feed

import (
	"archive/tar"
	"bytes"
	"context"
	"maps"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/klauspost/compress/zstd"

	"github.com/scangate/scangate/internal/vulndb"
)

// TestFetchDistroSources serves Red Hat's, Amazon's, SUSE's, Oracle's and Bottlerocket's layouts on
// 127.0.0.1 with the real samples, and checks that each source downloads,
// loads, and is unchanged when fetched again.
func TestFetchDistroSources(t *testing.T) {
	var archive bytes.Buffer
	zw, _ := zstd.NewWriter(&archive)
	tw := tar.NewWriter(zw)
	for _, name := range []string{"redhat/cve-2023-38545.json", "redhat/cve-2023-4154.json"} {
		data := testdataFile(t, name)
		tw.WriteHeader(&tar.Header{Name: "2023/" + name[len("redhat/"):], Mode: 0o644, Size: int64(len(data)), Typeflag: tar.TypeReg})
		tw.Write(data)
	}
	tw.WriteHeader(&tar.Header{Name: "../escape.json", Mode: 0o644, Size: 2, Typeflag: tar.TypeReg})
	tw.Write([]byte("{}"))
	tw.Close()
	zw.Close()
	updateinfo := testdataFile(t, "amazon/al2023/updateinfo.xml.gz")
	cvrf := suseArchive(t)
	elsa := testdataFile(t, "oracle/com.oracle.elsa-sample.xml.bz2")
	brsa := testdataFile(t, "bottlerocket/updateinfo.xml.gz")
	var srv *httptest.Server
	srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/vex/archive_latest.txt":
			w.Write([]byte("csaf_vex_2026-01-01.tar.zst\n"))
		case "/vex/csaf_vex_2026-01-01.tar.zst":
			w.Write(archive.Bytes())
		case "/suse/cvrf.tar.bz2":
			w.Header().Set("ETag", `"c1"`)
			if r.Header.Get("If-None-Match") == `"c1"` {
				w.WriteHeader(http.StatusNotModified)
				return
			}
			w.Write(cvrf)
		case "/oval/com.oracle.elsa-all.xml.bz2":
			w.Header().Set("ETag", `"o1"`)
			if r.Header.Get("If-None-Match") == `"o1"` {
				w.WriteHeader(http.StatusNotModified)
				return
			}
			w.Write(elsa)
		case "/bottlerocket/updateinfo.xml.gz":
			w.Header().Set("Last-Modified", "Wed, 11 Jun 2025 19:52:52 GMT")
			if r.Header.Get("If-Modified-Since") == "Wed, 11 Jun 2025 19:52:52 GMT" {
				w.WriteHeader(http.StatusNotModified)
				return
			}
			w.Write(brsa)
		case "/al2023/mirror.list":
			w.Write([]byte(srv.URL + "/repo/\n"))
		case "/repo/repodata/repomd.xml":
			w.Write([]byte(`<?xml version="1.0"?><repomd><data type="primary"><location href="repodata/primary.xml.gz"/></data><data type="updateinfo"><location href="repodata/abc-updateinfo.xml.gz"/></data></repomd>`))
		case "/repo/repodata/abc-updateinfo.xml.gz":
			w.Header().Set("ETag", `"u1"`)
			if r.Header.Get("If-None-Match") == `"u1"` {
				w.WriteHeader(http.StatusNotModified)
				return
			}
			w.Write(updateinfo)
		default:
			http.NotFound(w, r)
		}
	}))
	defer srv.Close()
	ctx := context.Background()
	for _, tt := range []struct {
		src   Source
		feeds map[string]int
	}{
		{Source{Name: "Red Hat VEX", URL: srv.URL + "/vex/archive_latest.txt", Format: "redhat", API: "redhat-vex"}, map[string]int{"redhat": 2}},
		{Source{Name: "AL2023", URL: srv.URL + "/al2023/mirror.list", Format: "amazon", API: "amazon"}, map[string]int{"amazon:2023": 1}},
		{Source{Name: "SUSE CVRF", URL: srv.URL + "/suse/cvrf.tar.bz2", Format: "suse", API: "suse-cvrf"}, map[string]int{"suse": 4}},
		{Source{Name: "Bottlerocket", URL: srv.URL + "/bottlerocket/updateinfo.xml.gz", Format: "bottlerocket"}, map[string]int{"bottlerocket": 2}},
		{Source{Name: "Oracle ELSA", URL: srv.URL + "/oval/com.oracle.elsa-all.xml.bz2", Format: "oracle"}, map[string]int{"oracle": 14}},
	} {
		f := &Fetcher{Client: srv.Client(), Dir: t.TempDir(), Attempts: 1}
		got, err := f.Fetch(ctx, tt.src, vulndb.Download{})
		if err != nil {
			t.Fatalf("%s: %v", tt.src.Name, err)
		}
		loaded, err := Load(ctx, got.Paths, tt.src.URL, Options{Format: tt.src.Format})
		if err != nil {
			t.Fatalf("%s: %v", tt.src.Name, err)
		}
		feeds := map[string]int{}
		for _, fd := range loaded.Feeds {
			feeds[fd.Name] = len(fd.Advisories)
		}
		if !maps.Equal(feeds, tt.feeds) {
			t.Errorf("%s: feeds %v, want %v", tt.src.Name, feeds, tt.feeds)
		}
		again, err := f.Fetch(ctx, tt.src, got.Download)
		if err != nil || !again.Unchanged() {
			t.Errorf("%s: second fetch: unchanged %v, err %v", tt.src.Name, again.Unchanged(), err)
		}
	}
}

// suseArchive lays the SUSE samples out as SUSE's cvrf.tar.bz2 does (one
// folder of cvrf-*.xml), with a file that climbs out of it and one that is
// not a document, and compresses it with bzip2(1): Go has no bzip2 writer.
func suseArchive(t *testing.T) []byte {
	t.Helper()
	var plain bytes.Buffer
	tw := tar.NewWriter(&plain)
	add := func(name string, data []byte) {
		tw.WriteHeader(&tar.Header{Name: name, Mode: 0o644, Size: int64(len(data)), Typeflag: tar.TypeReg})
		tw.Write(data)
	}
	entries, err := os.ReadDir(filepath.Join("testdata", "suse"))
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		add("cvrf/"+e.Name(), testdataFile(t, "suse/"+e.Name()))
	}
	add("../escape.xml", []byte("<cvrfdoc/>"))
	add("cvrf/README.txt", []byte("not a document"))
	tw.Close()
	cmd := exec.Command("bzip2", "-c")
	cmd.Stdin = &plain
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("bzip2 (Debian's bzip2 package): %v", err)
	}
	return out
}
