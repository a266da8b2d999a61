package build_test

import (
	"archive/tar"
	"context"
	"errors"
	"strings"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/scangate/scangate/internal/build"
	"github.com/scangate/scangate/internal/logbuf"
)

// A Dockerfile's FROM may name only images of allowed registries, and is
// pulled by the digest the registry gives: an image the engine holds under
// the same name, with other content, is never built on. RUN steps cannot
// reach the server's loopback, and with network none reach nothing.
func TestBuildBaseImages(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()

	t.Run("a registry that is not allowed", func(t *testing.T) {
		var log logbuf.Buffer
		_, err := f.builder.Build(ctx, build.Request{
			Context: contextTar(t, map[string]string{
				"Dockerfile": "# a base from Docker Hub\nARG DEBIAN=12\nFROM " + f.base + " AS ok\nFROM debian:${DEBIAN}\n",
			}),
			Repository: "buildtest/" + unique(t), Tags: []string{"latest"}, Log: &log,
		})
		var e *build.Error
		if !errors.As(err, &e) {
			t.Fatalf("err = %v, want a *build.Error", err)
		}
		want := "Dockerfile:4: FROM debian:12 is not from an allowed registry (" + f.srv.Addr + ")"
		if !strings.Contains(err.Error(), want) || !strings.Contains(log.String(), want) {
			t.Errorf("err = %v\nlog: %s\nwant both to say %q", err, log.String(), want)
		}
	})

	t.Run("a planted image of the same name", func(t *testing.T) {
		// The engine holds NAME:1 with a motd of its own; the registry's
		// NAME:1 says "from the registry". The build must print the
		// registry's.
		name := "buildtest/same-name-" + unique(t)
		ref := f.srv.Addr + "/" + name + ":1"
		loadImage(t, f.docker, ref, baseImage(t, "planted in the engine"))
		dgst := f.srv.Push(t, name+":1", baseImage(t, "from the registry"))
		var log logbuf.Buffer
		res, err := f.builder.Build(ctx, build.Request{
			Context:    contextTar(t, map[string]string{"Dockerfile": "FROM " + ref + "\nRUN cat /etc/motd\n"}),
			Repository: "buildtest/" + unique(t), Tags: []string{"latest"}, Log: &log,
		})
		if err != nil {
			t.Fatalf("build: %v\n%s", err, log.String())
		}
		_ = res
		removeFamily(t, f.docker, f.srv.Addr+"/"+name+"@"+dgst)
		if got := log.String(); !strings.Contains(got, "\nfrom the registry\n") || strings.Contains(got, "planted in the engine") {
			t.Errorf("the build did not run on the registry's image:\n%s", got)
		}
		if !strings.Contains(log.String(), "base: "+ref+" -> "+f.srv.Addr+"/"+name+"@sha256:") {
			t.Errorf("the log does not name the pinned base:\n%s", log.String())
		}
	})

	t.Run("the pinned Dockerfile stays out of the image", func(t *testing.T) {
		var log logbuf.Buffer
		res, err := f.builder.Build(ctx, build.Request{
			Context: contextTar(t, map[string]string{
				"Dockerfile":    "FROM " + f.base + "\nCOPY . /src/\n",
				".dockerignore": "secret.txt",
				"secret.txt":    "not for the image\n",
				"app.txt":       "for the image\n",
			}),
			Repository: "buildtest/" + unique(t), Tags: []string{"latest"}, Log: &log,
		})
		if err != nil {
			t.Fatalf("build: %v\n%s", err, log.String())
		}
		img, err := remote.Image(f.srv.Ref(t, strings.TrimPrefix(res.ImageURI, f.srv.Addr+"/")), remote.WithAuth(f.srv.Auth()))
		if err != nil {
			t.Fatal(err)
		}
		files := imageFiles(t, img)
		for _, name := range []string{"src/app.txt", "src/Dockerfile"} {
			if !files[name] {
				t.Errorf("the image lacks /%s: %v", name, files)
			}
		}
		for name := range files {
			if strings.Contains(name, "scangate-dockerfile") || strings.HasSuffix(name, "secret.txt") {
				t.Errorf("the image holds /%s", name)
			}
		}
	})

	t.Run("no way to the server's loopback", func(t *testing.T) {
		for _, network := range []string{"", build.NetworkNone} {
			var log logbuf.Buffer
			_, err := f.builder.Build(ctx, build.Request{
				Context:    contextTar(t, map[string]string{"Dockerfile": "FROM " + f.base + "\nRUN get http://" + f.srv.Addr + "/healthz\n"}),
				Repository: "buildtest/" + unique(t), Tags: []string{"latest"}, Log: &log, Network: network,
			})
			if err == nil || !strings.Contains(log.String(), "get: ") || strings.Contains(log.String(), "get: 200") {
				t.Errorf("network %q: a RUN step reached the server (err %v):\n%s", network, err, log.String())
			}
		}
		_, err := f.builder.Build(ctx, build.Request{
			Context:    contextTar(t, map[string]string{"Dockerfile": "FROM " + f.base + "\n"}),
			Repository: "buildtest/" + unique(t), Tags: []string{"latest"}, Network: "host",
		})
		if err == nil || !strings.Contains(err.Error(), "host networking is not offered") {
			t.Errorf("network host: err = %v", err)
		}
	})

	t.Run("an allowed repository prefix", func(t *testing.T) {
		b := newBuilder(t, f.srv, build.Options{BaseRegistries: []string{f.srv.Addr + "/trusted"}})
		_, err := b.Build(ctx, build.Request{
			Context:    contextTar(t, map[string]string{"Dockerfile": "FROM " + f.base + "\n"}),
			Repository: "buildtest/" + unique(t), Tags: []string{"latest"},
		})
		if err == nil || !strings.Contains(err.Error(), "is not from an allowed registry ("+f.srv.Addr+"/trusted)") {
			t.Errorf("err = %v, want the base refused", err)
		}
	})
}

// imageFiles lists the regular files of img's layers.
func imageFiles(t *testing.T, img v1.Image) map[string]bool {
	t.Helper()
	layers, err := img.Layers()
	if err != nil {
		t.Fatal(err)
	}
	files := map[string]bool{}
	for _, l := range layers {
		rc, err := l.Uncompressed()
		if err != nil {
			t.Fatal(err)
		}
		tr := tar.NewReader(rc)
		for {
			h, err := tr.Next()
			if err != nil {
				break
			}
			if h.Typeflag == tar.TypeReg {
				files[strings.TrimPrefix(h.Name, "./")] = true
			}
		}
		rc.Close()
	}
	return files
}
