// Command mkimage builds the benchmark's container image from folders, with
// go-containerregistry and no docker daemon, and writes it both as a
// `docker save` archive and as an OCI image layout (gzip layers).
//
// The layers, bottom first:
//
//  1. a root filesystem folder (debootstrap --variant=minbase bookworm);
//  2. a Go binary, at /usr/local/bin/demo;
//  3. an npm app folder (package.json, package-lock.json, node_modules), at /app;
//  4. Python dist-info folders written here (requests 2.25.0, urllib3 1.26.4)
//     under /usr/lib/python3/dist-packages;
//  5. with -size, random-content files under /opt/pad, as many MB as it
//     takes for the image's uncompressed layers to come to -size MB.
//
// Each layer is written once as a gzip tar under -cache, named after what
// went into it, and reused by later runs (the padding is seeded by its size,
// so the same -size always makes the same image).
//
//	go run ./bench/mkimage -rootfs ROOT -gobin demo -app APPDIR -cache DIR \
//	    -docker-archive img.tar -oci img.oci [-size 1024] [-tag bench/app:1]
package main

import (
	"archive/tar"
	"compress/gzip"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"math/rand/v2"
	"os"
	"path"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// epoch is every generated entry's modification time, so that the same
// inputs make the same layer digests.
var epoch = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)

type options struct {
	rootfs, gobin, app, cache string
	dockerArchive, oci, tag   string
	sizeMB                    int64
}

func main() {
	var o options
	flag.StringVar(&o.rootfs, "rootfs", "", "root filesystem folder for layer 1 (debootstrap output)")
	flag.StringVar(&o.gobin, "gobin", "", "Go binary for layer 2, placed at /usr/local/bin/demo")
	flag.StringVar(&o.app, "app", "", "npm app folder for layer 3, placed at /app")
	flag.StringVar(&o.cache, "cache", "", "folder for the gzip layers, reused across runs")
	flag.StringVar(&o.dockerArchive, "docker-archive", "", "write a docker save archive here")
	flag.StringVar(&o.oci, "oci", "", "write an OCI image layout folder here (replaced)")
	flag.StringVar(&o.tag, "tag", "scangate-bench/app:latest", "the image's tag")
	flag.Int64Var(&o.sizeMB, "size", 0, "pad the image to this many MB (MiB) uncompressed with a layer of random files; 0: no padding")
	flag.Parse()
	if err := run(o); err != nil {
		fmt.Fprintln(os.Stderr, "mkimage:", err)
		os.Exit(1)
	}
}

func run(o options) error {
	if o.rootfs == "" || o.gobin == "" || o.app == "" || o.cache == "" {
		return errors.New("-rootfs, -gobin, -app and -cache are required")
	}
	if o.dockerArchive == "" && o.oci == "" {
		return errors.New("give -docker-archive, -oci or both")
	}
	tag, err := name.NewTag(o.tag)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(o.cache, 0o755); err != nil {
		return err
	}
	type built struct {
		file string
		size int64 // uncompressed tar bytes
	}
	var layers []built
	add := func(file string, write func(*tar.Writer) error) error {
		path := filepath.Join(o.cache, file)
		n, err := cachedLayer(path, write)
		if err != nil {
			return fmt.Errorf("layer %s: %w", file, err)
		}
		layers = append(layers, built{path, n})
		return nil
	}
	if err := add("1-rootfs.tar.gz", func(tw *tar.Writer) error { return addTree(tw, o.rootfs, "") }); err != nil {
		return err
	}
	if err := add("2-gobin.tar.gz", func(tw *tar.Writer) error {
		return addTree(tw, o.gobin, "usr/local/bin/demo")
	}); err != nil {
		return err
	}
	if err := add("3-app.tar.gz", func(tw *tar.Writer) error { return addTree(tw, o.app, "app") }); err != nil {
		return err
	}
	if err := add("4-python.tar.gz", addPython); err != nil {
		return err
	}
	var base int64
	for _, b := range layers {
		base += b.size
	}
	if o.sizeMB > 0 {
		pad := o.sizeMB<<20 - base
		if pad <= 0 {
			return fmt.Errorf("-size %d: the image without padding is already %d MB", o.sizeMB, base>>20)
		}
		file := fmt.Sprintf("5-pad-%dMB.tar.gz", o.sizeMB)
		if err := add(file, func(tw *tar.Writer) error { return addPadding(tw, pad, uint64(o.sizeMB)) }); err != nil {
			return err
		}
	}

	var files []string
	var total int64
	for _, b := range layers {
		files = append(files, b.file)
		total += b.size
	}
	// A docker save archive holds Docker media types; an OCI layout, OCI
	// ones (same layer bytes, same digests).
	img, err := build(files, false)
	if err != nil {
		return err
	}
	ociImg, err := build(files, true)
	if err != nil {
		return err
	}
	if o.dockerArchive != "" {
		tmp := o.dockerArchive + ".tmp"
		if err := tarball.WriteToFile(tmp, tag, img); err != nil {
			return fmt.Errorf("docker archive: %w", err)
		}
		if err := os.Rename(tmp, o.dockerArchive); err != nil {
			return err
		}
	}
	if o.oci != "" {
		tmp := o.oci + ".tmp"
		if err := os.RemoveAll(tmp); err != nil {
			return err
		}
		p, err := layout.Write(tmp, empty.Index)
		if err != nil {
			return fmt.Errorf("oci layout: %w", err)
		}
		ann := map[string]string{"org.opencontainers.image.ref.name": tag.TagStr()}
		if err := p.AppendImage(ociImg, layout.WithAnnotations(ann), layout.WithPlatform(v1.Platform{OS: "linux", Architecture: "amd64"})); err != nil {
			return fmt.Errorf("oci layout: %w", err)
		}
		if err := os.RemoveAll(o.oci); err != nil {
			return err
		}
		if err := os.Rename(tmp, o.oci); err != nil {
			return err
		}
	}
	d, err := ociImg.Digest()
	if err != nil {
		return err
	}
	fmt.Printf("image %s (OCI manifest %s): %d layers, %d MB uncompressed (", tag, d, len(layers), total>>20)
	for i, b := range layers {
		if i > 0 {
			fmt.Print(" + ")
		}
		fmt.Printf("%.1f", float64(b.size)/(1<<20))
	}
	fmt.Println(" MB)")
	return nil
}

// build stacks the gzip layer files into a linux/amd64 image, with OCI
// media types if oci.
func build(files []string, oci bool) (v1.Image, error) {
	img := empty.Image
	var opts []tarball.LayerOption
	if oci {
		img = mutate.MediaType(img, types.OCIManifestSchema1)
		img = mutate.ConfigMediaType(img, types.OCIConfigJSON)
		opts = append(opts, tarball.WithMediaType(types.OCILayer))
	}
	for _, f := range files {
		l, err := tarball.LayerFromFile(f, opts...)
		if err != nil {
			return nil, err
		}
		if img, err = mutate.AppendLayers(img, l); err != nil {
			return nil, err
		}
	}
	cf, err := img.ConfigFile()
	if err != nil {
		return nil, err
	}
	cf = cf.DeepCopy()
	cf.OS, cf.Architecture = "linux", "amd64"
	cf.Created = v1.Time{Time: epoch}
	cf.Config.Env = []string{"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"}
	cf.Config.WorkingDir = "/app"
	cf.Config.Cmd = []string{"/usr/local/bin/demo"}
	return mutate.ConfigFile(img, cf)
}

// cachedLayer writes the gzip layer file with write unless it is there,
// and returns its uncompressed size.
func cachedLayer(file string, write func(*tar.Writer) error) (int64, error) {
	if _, err := os.Stat(file); errors.Is(err, fs.ErrNotExist) {
		if err := writeLayer(file, write); err != nil {
			return 0, err
		}
	} else if err != nil {
		return 0, err
	}
	f, err := os.Open(file)
	if err != nil {
		return 0, err
	}
	defer f.Close()
	zr, err := gzip.NewReader(f)
	if err != nil {
		return 0, err
	}
	return io.Copy(io.Discard, zr)
}

func writeLayer(file string, write func(*tar.Writer) error) error {
	tmp := file + ".tmp"
	f, err := os.Create(tmp)
	if err != nil {
		return err
	}
	defer os.Remove(tmp)
	zw, err := gzip.NewWriterLevel(f, gzip.DefaultCompression)
	if err != nil {
		return err
	}
	tw := tar.NewWriter(zw)
	err = write(tw)
	err = errors.Join(err, tw.Close(), zw.Close(), f.Close())
	if err != nil {
		return err
	}
	return os.Rename(tmp, file)
}

// addTree writes src (a folder or one file) into the layer under dst ("" is
// the root). Ownership and modes are kept; hard links stay links;
// /dev, /proc, /sys and /run keep only their folders, and sockets, pipes
// and device files are left out, as an image build would.
func addTree(tw *tar.Writer, src, dst string) error {
	links := map[[2]uint64]string{}
	// The folders above dst, so that no entry lacks its parent.
	if dir := path.Dir(dst); dst != "" && dir != "." {
		parts := strings.Split(dir, "/")
		for i := range parts {
			h := &tar.Header{Name: strings.Join(parts[:i+1], "/") + "/", Typeflag: tar.TypeDir, Mode: 0o755, ModTime: epoch}
			if err := tw.WriteHeader(h); err != nil {
				return err
			}
		}
	}
	return filepath.WalkDir(src, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(src, p)
		if err != nil {
			return err
		}
		tarName := path.Join(dst, filepath.ToSlash(rel))
		if rel == "." {
			tarName = dst
		}
		if tarName == "" || tarName == "." {
			return nil // the root itself
		}
		if dst == "" {
			r := filepath.ToSlash(rel)
			top, _, nested := strings.Cut(r, "/")
			if nested && (top == "dev" || top == "proc" || top == "sys" || top == "run") {
				if d.IsDir() {
					return fs.SkipDir
				}
				return nil
			}
		}
		fi, err := d.Info()
		if err != nil {
			return err
		}
		if !fi.Mode().IsRegular() && !fi.IsDir() && fi.Mode()&fs.ModeSymlink == 0 {
			return nil // device, socket, pipe
		}
		var link string
		if fi.Mode()&fs.ModeSymlink != 0 {
			if link, err = os.Readlink(p); err != nil {
				return err
			}
		}
		h, err := tar.FileInfoHeader(fi, link)
		if err != nil {
			return err
		}
		h.Name = tarName
		if fi.IsDir() {
			h.Name += "/"
		}
		h.Uname, h.Gname = "", ""
		h.Format = tar.FormatPAX
		h.AccessTime, h.ChangeTime = time.Time{}, time.Time{}
		if st, ok := fi.Sys().(*syscall.Stat_t); ok && fi.Mode().IsRegular() && st.Nlink > 1 {
			key := [2]uint64{uint64(st.Dev), st.Ino}
			if first, ok := links[key]; ok {
				h.Typeflag, h.Linkname, h.Size = tar.TypeLink, first, 0
				return tw.WriteHeader(h)
			}
			links[key] = tarName
		}
		if err := tw.WriteHeader(h); err != nil {
			return err
		}
		if !fi.Mode().IsRegular() {
			return nil
		}
		f, err := os.Open(p)
		if err != nil {
			return err
		}
		defer f.Close()
		_, err = io.Copy(tw, f)
		return err
	})
}

// pythonDists are the dist-info folders of layer 4, as pip would leave
// them (only METADATA matters to a scanner).
var pythonDists = []struct{ name, version string }{
	{"requests", "2.25.0"},
	{"urllib3", "1.26.4"},
}

func addPython(tw *tar.Writer) error {
	dir := "usr/lib/python3/dist-packages/"
	dirs := []string{"usr/", "usr/lib/", "usr/lib/python3/", dir}
	for _, d := range dirs {
		if err := tw.WriteHeader(&tar.Header{Name: d, Typeflag: tar.TypeDir, Mode: 0o755, ModTime: epoch}); err != nil {
			return err
		}
	}
	for _, p := range pythonDists {
		info := fmt.Sprintf("%s%s-%s.dist-info/", dir, p.name, p.version)
		files := map[string]string{
			"METADATA":  fmt.Sprintf("Metadata-Version: 2.1\nName: %s\nVersion: %s\nSummary: %s, as pip installs it\n", p.name, p.version, p.name),
			"INSTALLER": "pip\n",
		}
		if err := tw.WriteHeader(&tar.Header{Name: info, Typeflag: tar.TypeDir, Mode: 0o755, ModTime: epoch}); err != nil {
			return err
		}
		for _, f := range []string{"INSTALLER", "METADATA"} {
			body := files[f]
			if err := tw.WriteHeader(&tar.Header{Name: info + f, Typeflag: tar.TypeReg, Mode: 0o644, Size: int64(len(body)), ModTime: epoch}); err != nil {
				return err
			}
			if _, err := io.WriteString(tw, body); err != nil {
				return err
			}
		}
	}
	return nil
}

// addPadding writes about n bytes (tar headers included) of random-content
// files of 1 to 16 MiB under /opt/pad, from a generator seeded with seed.
func addPadding(tw *tar.Writer, n int64, seed uint64) error {
	var key [32]byte
	for i := range 8 {
		key[i] = byte(seed >> (8 * i))
	}
	rnd := rand.New(rand.NewChaCha8(key))
	src := rand.NewChaCha8(key) // content
	for _, d := range []string{"opt/", "opt/pad/"} {
		if err := tw.WriteHeader(&tar.Header{Name: d, Typeflag: tar.TypeDir, Mode: 0o755, ModTime: epoch}); err != nil {
			return err
		}
		n -= 512
	}
	for i := 0; n > 1024; i++ {
		size := (1 + rnd.Int64N(16)) << 20
		size = min(size, n-1024)
		h := &tar.Header{Name: fmt.Sprintf("opt/pad/blob-%05d.bin", i), Typeflag: tar.TypeReg, Mode: 0o644, Size: size, ModTime: epoch}
		if err := tw.WriteHeader(h); err != nil {
			return err
		}
		if _, err := io.CopyN(tw, src, size); err != nil {
			return err
		}
		n -= 512 + (size+511)/512*512
	}
	return nil
}
