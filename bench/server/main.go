// Command server measures `scangate server` (issue 4's figures):
//
//  1. push to Scan event: the scanner issue's bench image (a docker-archive,
//     bench/.work/img.tar) is pushed -n times, each time with a tiny layer
//     of its own on top so that every push is a new manifest, and the time
//     from the start of each push to its Scan event in the event log
//     (GET /api/v1/events, polled every 5 ms) is taken; p50 and p95. With
//     -docker the same is done with `docker push` through the local Docker
//     Engine (the image is loaded and a layer added with `docker build`,
//     outside the timing).
//  2. a -big MB image (random, incompressible layers) pushed to and pulled
//     from the registry on loopback, against `cp` of the same bytes on the
//     same disk. The registry syncs every blob it receives to disk (compare
//     the push with `cp` followed by `sync`); the pull writes an OCI layout
//     without syncing (compare it with `cp`). Each measurement starts after
//     a `sync`, with the source bytes in the page cache.
//
// It starts the scangate binary -bin on 127.0.0.1 and a free port, over a
// new data folder under -work with the fixture feeds imported, and stops it
// at the end.
//
//	make build && go run ./bench/server [-n 20] [-docker] [-big 500] [-runs 5]
package main

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/tarball"

	"github.com/scangate/scangate/bench/stats"
)

type options struct {
	bin, image, work, feeds string
	n, bigMB, runs          int
	docker                  bool
}

func main() {
	var o options
	flag.StringVar(&o.bin, "bin", "bin/scangate", "the scangate binary (make build)")
	flag.StringVar(&o.image, "image", "bench/.work/img.tar", "the bench image, a docker-archive (bench/run.sh makes it)")
	flag.StringVar(&o.work, "work", "bench/.work/server", "folder for the data folder, the big image and the logs")
	flag.StringVar(&o.feeds, "feeds", "testdata/vulndata", "the fixture feeds")
	flag.IntVar(&o.n, "n", 20, "timed pushes of the bench image")
	flag.BoolVar(&o.docker, "docker", false, "also push with `docker push` through the local Docker Engine")
	flag.IntVar(&o.bigMB, "big", 500, "size in MB of the push/pull image; 0 skips it")
	flag.IntVar(&o.runs, "runs", 5, "runs of each big-image measurement (the median is reported)")
	flag.Parse()
	if err := run(o); err != nil {
		fmt.Fprintln(os.Stderr, "bench/server:", err)
		os.Exit(1)
	}
}

func run(o options) error {
	if err := os.MkdirAll(o.work, 0o750); err != nil {
		return err
	}
	data := filepath.Join(o.work, "data")
	if err := os.RemoveAll(data); err != nil {
		return err
	}
	f := func(n string) string { return filepath.Join(o.feeds, n) }
	if _, err := scangate(o.bin, data, "db", "import", f("go-vulndb.zip"), f("pypa-advisory-database.zip"),
		f("debian"), f("alpine"), f("ghsa"), f("nvd")); err != nil {
		return err
	}
	token, err := scangate(o.bin, data, "token", "create", "--name", "bench", "--role", "admin")
	if err != nil {
		return err
	}
	s, err := startServer(o.bin, data, filepath.Join(o.work, "server.log"))
	if err != nil {
		return err
	}
	defer s.stop()
	s.token = strings.TrimSpace(token)
	fmt.Printf("scangate server at %s, data %s\n", s.addr, data)

	base, err := tarball.ImageFromPath(o.image, nil)
	if err != nil {
		return fmt.Errorf("bench image: %w", err)
	}
	if err := pushToEvent(s, base, o.n); err != nil {
		return err
	}
	if o.docker {
		if err := dockerPushToEvent(s, o); err != nil {
			fmt.Println("docker push: not measured:", err)
		}
	}
	if o.bigMB > 0 {
		if err := bigImage(s, o); err != nil {
			return err
		}
	}
	return nil
}

// server is a running scangate server.
type server struct {
	cmd         *exec.Cmd
	addr, token string
	seq         int64 // the event log read so far
}

func scangate(bin, data string, args ...string) (string, error) {
	cmd := exec.Command(bin, append([]string{"--data-dir", data}, args...)...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return "", fmt.Errorf("scangate %s: %v\n%s", strings.Join(args, " "), err, stderr.String())
	}
	return string(out), nil
}

func startServer(bin, data, logPath string) (*server, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	addr := ln.Addr().String()
	ln.Close()
	logf, err := os.Create(logPath)
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(bin, "--data-dir", data, "server", "--addr", addr)
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	s := &server{cmd: cmd, addr: addr}
	for deadline := time.Now().Add(30 * time.Second); ; {
		resp, err := http.Get("http://" + addr + "/readyz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return s, nil
			}
		}
		if time.Now().After(deadline) {
			s.stop()
			return nil, fmt.Errorf("the server was not ready in 30 s; see %s", logPath)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func (s *server) stop() {
	_ = s.cmd.Process.Signal(syscall.SIGTERM)
	_ = s.cmd.Wait()
}

func (s *server) ref(r string) (name.Reference, error) {
	return name.ParseReference(s.addr+"/"+r, name.Insecure)
}

func (s *server) auth() remote.Option {
	return remote.WithAuth(&authn.Basic{Username: "bench", Password: s.token})
}

// waitScanEvent polls the event log until a Scan event for digest appears,
// and returns when it was seen.
func (s *server) waitScanEvent(digest string, timeout time.Duration) (time.Time, string, error) {
	deadline := time.Now().Add(timeout)
	for {
		req, err := http.NewRequest(http.MethodGet, fmt.Sprintf("http://%s/api/v1/events?after=%d&limit=1000", s.addr, s.seq), nil)
		if err != nil {
			return time.Time{}, "", err
		}
		req.Header.Set("Authorization", "Bearer "+s.token)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			return time.Time{}, "", err
		}
		var page struct {
			Events []struct {
				Seq   int64 `json:"seq"`
				Event struct {
					DetailType string `json:"detail-type"`
					Detail     struct {
						Digest string `json:"image-digest"`
						Status string `json:"scan-status"`
					} `json:"detail"`
				} `json:"event"`
			} `json:"events"`
		}
		err = json.NewDecoder(resp.Body).Decode(&page)
		resp.Body.Close()
		if err != nil {
			return time.Time{}, "", err
		}
		now := time.Now()
		for _, e := range page.Events {
			s.seq = e.Seq
			if e.Event.DetailType == "Scan" && e.Event.Detail.Digest == digest {
				return now, e.Event.Detail.Status, nil
			}
		}
		if now.After(deadline) {
			return time.Time{}, "", fmt.Errorf("no Scan event for %s in %s", digest, timeout)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// idLayer is a tiny layer that makes an image distinct.
func idLayer(id string) (v1.Layer, error) {
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	body := []byte(id + "\n")
	if err := tw.WriteHeader(&tar.Header{Name: "etc/push-id", Mode: 0o644, Size: int64(len(body)), Typeflag: tar.TypeReg}); err != nil {
		return nil, err
	}
	tw.Write(body)
	if err := tw.Close(); err != nil {
		return nil, err
	}
	data := buf.Bytes()
	return tarball.LayerFromOpener(func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(data)), nil })
}

// pushToEvent pushes the bench image once untimed (the cold push uploads
// its 51 MB of layers; it is reported apart), then n times with a layer of
// its own, each after the previous one's Scan event.
func pushToEvent(s *server, base v1.Image, n int) error {
	fmt.Printf("\n== push to Scan event, go-containerregistry, %d pushes of the bench image + a tiny layer\n", n)
	t := &pushTimes{s: s}
	for i := -1; i < n; i++ {
		id := fmt.Sprintf("ggcr-%d-%d", i, time.Now().UnixNano())
		l, err := idLayer(id)
		if err != nil {
			return err
		}
		img, err := mutate.AppendLayers(base, l)
		if err != nil {
			return err
		}
		d, err := img.Digest()
		if err != nil {
			return err
		}
		ref, err := s.ref(fmt.Sprintf("bench/app:%d", i+1))
		if err != nil {
			return err
		}
		start := time.Now()
		if err := remote.Write(ref, img, s.auth()); err != nil {
			return fmt.Errorf("push %d: %w", i+1, err)
		}
		if err := t.record(i, start, time.Now(), d.String()); err != nil {
			return err
		}
	}
	t.report("push")
	return nil
}

// scanTimes prints the mean scan time (catalog and match) from /metrics.
func (s *server) scanTimes() {
	req, err := http.NewRequest(http.MethodGet, "http://"+s.addr+"/metrics", nil)
	if err != nil {
		return
	}
	req.Header.Set("Authorization", "Bearer "+s.token) // /metrics needs a token
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	var sum, count float64
	for _, line := range strings.Split(string(body), "\n") {
		if v, ok := strings.CutPrefix(line, "scangate_scan_duration_seconds_sum "); ok {
			fmt.Sscan(v, &sum)
		}
		if v, ok := strings.CutPrefix(line, "scangate_scan_duration_seconds_count "); ok {
			fmt.Sscan(v, &count)
		}
	}
	if count > 0 {
		fmt.Printf("%-34s mean %s over the server's %.0f scans so far (/metrics)\n", "scan alone (catalog and match)", stats.MS(time.Duration(sum/count*float64(time.Second))), count)
	}
}

// dockerPushToEvent does the same with `docker push`: the bench image is
// loaded into the engine, each time a layer is added with docker build
// (untimed), and docker push is timed to the Scan event.
func dockerPushToEvent(s *server, o options) error {
	if err := sh("docker", "load", "-q", "-i", o.image); err != nil {
		return err
	}
	login := exec.Command("docker", "login", s.addr, "-u", "bench", "--password-stdin")
	login.Stdin = strings.NewReader(s.token)
	if out, err := login.CombinedOutput(); err != nil {
		return fmt.Errorf("docker login: %v: %s", err, out)
	}
	ctxDir, err := os.MkdirTemp(o.work, "docker-ctx-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(ctxDir)
	fmt.Printf("\n== push to Scan event, docker push through the Docker Engine, %d pushes\n", o.n)
	t := &pushTimes{s: s}
	var tags []string
	defer func() {
		for _, t := range tags {
			_ = exec.Command("docker", "rmi", "-f", t).Run()
		}
	}()
	for i := -1; i < o.n; i++ {
		id := fmt.Sprintf("docker-%d-%d", i, time.Now().UnixNano())
		if err := os.WriteFile(filepath.Join(ctxDir, "push-id"), []byte(id+"\n"), 0o644); err != nil {
			return err
		}
		if err := os.WriteFile(filepath.Join(ctxDir, "Dockerfile"), []byte("FROM scangate-bench/app:latest\nCOPY push-id /etc/push-id\n"), 0o644); err != nil {
			return err
		}
		tag := fmt.Sprintf("%s/bench/docker:%d", s.addr, i+1)
		tags = append(tags, tag)
		if err := sh("docker", "build", "-q", "-t", tag, ctxDir); err != nil {
			return err
		}
		start := time.Now()
		out, err := exec.Command("docker", "push", tag).CombinedOutput()
		if err != nil {
			return fmt.Errorf("docker push: %v: %s", err, out)
		}
		pushed := time.Now()
		digest := ""
		for _, f := range strings.Fields(string(out)) {
			if strings.HasPrefix(f, "sha256:") {
				digest = f
			}
		}
		if digest == "" {
			return fmt.Errorf("no digest in docker push's output: %s", out)
		}
		if err := t.record(i, start, pushed, digest); err != nil {
			return err
		}
	}
	t.report("docker push")
	return nil
}

// pushTimes collects, per push, the client's push time and the time from
// the push's start to its Scan event; push -1 is the cold one, reported
// apart.
type pushTimes struct {
	s           *server
	push, event []time.Duration
}

func (t *pushTimes) record(i int, start, pushed time.Time, digest string) error {
	seen, status, err := t.s.waitScanEvent(digest, 2*time.Minute)
	if err != nil {
		return err
	}
	if i < 0 {
		fmt.Printf("cold push (all layers uploaded, not counted): push %s, push to %s event %s\n",
			stats.MS(pushed.Sub(start)), status, stats.MS(seen.Sub(start)))
		return nil
	}
	t.push = append(t.push, pushed.Sub(start))
	t.event = append(t.event, seen.Sub(start))
	return nil
}

func (t *pushTimes) report(what string) {
	report(what+" (client's view)", t.push)
	report(what+" start to Scan event", t.event)
	t.s.scanTimes()
}

// bigImage times pushing and pulling an image of o.bigMB MB of random
// layers against cp of its blobs.
func bigImage(s *server, o options) error {
	fmt.Printf("\n== %d MB image: push and pull on loopback against cp of the same bytes\n", o.bigMB)
	src := filepath.Join(o.work, fmt.Sprintf("big-%d.oci", o.bigMB))
	img, err := bigLayout(src, o.bigMB)
	if err != nil {
		return err
	}
	size, err := blobBytes(filepath.Join(src, "blobs"))
	if err != nil {
		return err
	}
	fmt.Printf("image: %s, %d layers, %.0f MB of blobs\n", src, layerCount(img), float64(size)/1e6)
	ctx := context.Background()
	var push, pull, cp, cpSync []time.Duration
	for r := 0; r < o.runs; r++ {
		// A new repository each run: the registry would otherwise find
		// the blobs it has and skip the upload.
		ref, err := s.ref(fmt.Sprintf("big/run%d-%d:1", r, time.Now().UnixNano()))
		if err != nil {
			return err
		}
		// Each measurement starts with no dirty pages to write back.
		if err := sh("sync"); err != nil {
			return err
		}
		start := time.Now()
		if err := remote.Write(ref, img, s.auth(), remote.WithContext(ctx)); err != nil {
			return fmt.Errorf("push: %w", err)
		}
		push = append(push, time.Since(start))

		dst := filepath.Join(o.work, "pulled.oci")
		os.RemoveAll(dst)
		if err := sh("sync"); err != nil {
			return err
		}
		start = time.Now()
		pulled, err := remote.Image(ref, s.auth(), remote.WithContext(ctx))
		if err != nil {
			return fmt.Errorf("pull: %w", err)
		}
		p, err := layout.Write(dst, empty.Index)
		if err != nil {
			return err
		}
		if err := p.AppendImage(pulled); err != nil {
			return fmt.Errorf("pull: %w", err)
		}
		pull = append(pull, time.Since(start))
		os.RemoveAll(dst)

		for _, withSync := range []bool{false, true} {
			dst := filepath.Join(o.work, "copied-blobs")
			os.RemoveAll(dst)
			if err := sh("sync"); err != nil {
				return err
			}
			start = time.Now()
			if err := sh("cp", "-r", filepath.Join(src, "blobs"), dst); err != nil {
				return err
			}
			if withSync {
				if err := sh("sync"); err != nil {
					return err
				}
				cpSync = append(cpSync, time.Since(start))
			} else {
				cp = append(cp, time.Since(start))
			}
			os.RemoveAll(dst)
		}
	}
	mb := float64(size) / 1e6
	for _, m := range []struct {
		what string
		ds   []time.Duration
	}{{"push (ggcr → registry)", push}, {"pull (registry → OCI layout)", pull}, {"cp -r blobs", cp}, {"cp -r blobs && sync", cpSync}} {
		d := stats.Median(m.ds)
		fmt.Printf("%-30s median %8s  (%4.0f MB/s)  runs %s\n", m.what, stats.MS(d), mb/d.Seconds(), list(m.ds))
	}
	return nil
}

// bigLayout writes (once) an OCI layout of sizeMB MB in 50 MB layers of
// random bytes, gzip-compressed at the fastest level (random data does not
// shrink), and returns its image.
func bigLayout(dir string, sizeMB int) (v1.Image, error) {
	if p, err := layout.FromPath(dir); err == nil {
		if idx, err := p.ImageIndex(); err == nil {
			if m, err := idx.IndexManifest(); err == nil && len(m.Manifests) == 1 {
				return p.Image(m.Manifests[0].Digest)
			}
		}
	}
	os.RemoveAll(dir)
	const layerMB = 50
	rng := rand.New(rand.NewPCG(uint64(sizeMB), 1))
	var layers []v1.Layer
	for i := 0; i*layerMB < sizeMB; i++ {
		var buf bytes.Buffer
		zw, err := gzip.NewWriterLevel(&buf, gzip.BestSpeed)
		if err != nil {
			return nil, err
		}
		tw := tar.NewWriter(zw)
		body := make([]byte, layerMB<<20)
		for j := 0; j+8 <= len(body); j += 8 {
			v := rng.Uint64()
			for k := range 8 {
				body[j+k] = byte(v >> (8 * k))
			}
		}
		if err := tw.WriteHeader(&tar.Header{Name: fmt.Sprintf("opt/big/%d.bin", i), Mode: 0o644, Size: int64(len(body)), Typeflag: tar.TypeReg}); err != nil {
			return nil, err
		}
		tw.Write(body)
		if err := tw.Close(); err != nil {
			return nil, err
		}
		if err := zw.Close(); err != nil {
			return nil, err
		}
		data := buf.Bytes()
		l, err := tarball.LayerFromOpener(func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(data)), nil })
		if err != nil {
			return nil, err
		}
		layers = append(layers, l)
	}
	img, err := mutate.AppendLayers(empty.Image, layers...)
	if err != nil {
		return nil, err
	}
	p, err := layout.Write(dir, empty.Index)
	if err != nil {
		return nil, err
	}
	if err := p.AppendImage(img); err != nil {
		return nil, err
	}
	return bigLayout(dir, sizeMB)
}

func layerCount(img v1.Image) int {
	ls, _ := img.Layers()
	return len(ls)
}

func blobBytes(dir string) (int64, error) {
	var n int64
	err := filepath.Walk(dir, func(_ string, fi os.FileInfo, err error) error {
		if err == nil && fi.Mode().IsRegular() {
			n += fi.Size()
		}
		return err
	})
	return n, err
}

func sh(name string, args ...string) error {
	out, err := exec.Command(name, args...).CombinedOutput()
	if err != nil {
		return fmt.Errorf("%s %s: %v: %s", name, strings.Join(args, " "), err, out)
	}
	return nil
}

func report(what string, ds []time.Duration) {
	fmt.Printf("%-34s p50 %8s  p95 %8s  min %8s  max %8s  (n=%d)\n", what,
		stats.MS(stats.Percentile(ds, 50)), stats.MS(stats.Percentile(ds, 95)), stats.MS(slices.Min(ds)), stats.MS(slices.Max(ds)), len(ds))
	fmt.Printf("%-34s all: %s\n", "", list(ds))
}

func list(ds []time.Duration) string {
	out := make([]string, len(ds))
	for i, d := range ds {
		out[i] = stats.MS(d)
	}
	return strings.Join(out, " ")
}
