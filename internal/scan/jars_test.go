package scan_test

import (
	"archive/zip"
	"bytes"
	"io"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/scangate/scangate/internal/imagetest"
)

// debFile returns one file of a .deb, as dpkg would install it.
func debFile(t *testing.T, deb, name string) []byte {
	t.Helper()
	data, err := exec.Command("dpkg-deb", "--fsys-tarfile", deb).Output()
	if err != nil {
		t.Fatalf("dpkg-deb --fsys-tarfile %s (dpkg must be installed): %v", deb, err)
	}
	for _, e := range tarEntries(t, data) {
		if strings.TrimPrefix(e.Header.Name, "./") == name {
			return []byte(e.Body)
		}
	}
	t.Fatalf("%s has no %s", deb, name)
	return nil
}

// zipOf writes a jar of the given entries, in order.
func zipOf(t *testing.T, entries ...[2]string) []byte {
	t.Helper()
	var buf bytes.Buffer
	zw := zip.NewWriter(&buf)
	for _, e := range entries {
		w, err := zw.Create(e[0])
		if err != nil {
			t.Fatal(err)
		}
		if _, err := io.WriteString(w, e[1]); err != nil {
			t.Fatal(err)
		}
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// jarEntries lists a jar's entries, for shading it into another.
func jarEntries(t *testing.T, jar []byte) [][2]string {
	t.Helper()
	zr, err := zip.NewReader(bytes.NewReader(jar), int64(len(jar)))
	if err != nil {
		t.Fatal(err)
	}
	var out [][2]string
	for _, f := range zr.File {
		if f.FileInfo().IsDir() || f.Name == "META-INF/MANIFEST.MF" {
			continue
		}
		rc, err := f.Open()
		if err != nil {
			t.Fatal(err)
		}
		data, err := io.ReadAll(rc)
		rc.Close()
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, [2]string{f.Name, string(data)})
	}
	return out
}

// TestNestedAndShadedJars: Maven's pom.properties are read from jars
// inside a Spring Boot fat jar and from a shaded jar that carries the
// classes and pom.properties of the jars it absorbed, as maven-shade-plugin
// writes them. The outer jars are made here; the jars inside are Debian's
// real commons-io 2.11.0 and commons-lang3 3.12.0.
func TestNestedAndShadedJars(t *testing.T) {
	commonsIO := debFile(t, debianJars[0], "usr/share/java/commons-io.jar")
	commonsLang := debFile(t, debianJars[1], "usr/share/java/commons-lang3.jar")
	appPom := [2]string{"META-INF/maven/com.example/app/pom.properties", "groupId=com.example\nartifactId=app\nversion=1.0.0\n"}

	fat := zipOf(t,
		[2]string{"META-INF/MANIFEST.MF", "Manifest-Version: 1.0\nMain-Class: org.springframework.boot.loader.JarLauncher\n"},
		appPom,
		[2]string{"BOOT-INF/lib/commons-io-2.11.0.jar", string(commonsIO)},
		[2]string{"BOOT-INF/lib/deeper.jar", string(zipOf(t, [2]string{"lib/commons-lang3-3.12.0.jar", string(commonsLang)}))},
	)
	shaded := zipOf(t, slices.Concat([][2]string{appPom}, jarEntries(t, commonsIO), jarEntries(t, commonsLang))...)

	img := imagetest.Build(t, imagetest.Layer(t,
		imagetest.Entry{Name: "app/fat.jar", Body: string(fat)},
		imagetest.Entry{Name: "app/shaded.jar", Body: string(shaded)},
	))
	r := scanArchive(t, importFeeds(t, filepath.Join(feedFixtures, "maven")), img)

	var pkgs []string
	for _, p := range r.Packages {
		if p.Type == "java" {
			pkgs = append(pkgs, p.Path+" "+p.Name+"@"+p.Version)
		}
	}
	slices.Sort(pkgs)
	want := []string{
		"/app/fat.jar com.example:app@1.0.0",
		"/app/fat.jar commons-io:commons-io@2.11.0",
		"/app/fat.jar org.apache.commons:commons-lang3@3.12.0", // two jars deep
		"/app/shaded.jar com.example:app@1.0.0",
		"/app/shaded.jar commons-io:commons-io@2.11.0",
		"/app/shaded.jar org.apache.commons:commons-lang3@3.12.0",
	}
	if !slices.Equal(pkgs, want) {
		t.Errorf("Maven packages\n got %q\nwant %q", pkgs, want)
	}
	var findings []string
	for _, f := range r.Findings {
		p := r.Packages[f.Package]
		findings = append(findings, p.Path+" "+f.ID)
	}
	slices.Sort(findings)
	wantFindings := []string{
		"/app/fat.jar GHSA-78wr-2p64-hpwj",
		"/app/fat.jar GHSA-j288-q9x7-2f5v",
		"/app/shaded.jar GHSA-78wr-2p64-hpwj",
		"/app/shaded.jar GHSA-j288-q9x7-2f5v",
	}
	if !slices.Equal(findings, wantFindings) {
		t.Errorf("findings\n got %q\nwant %q", findings, wantFindings)
	}
}
