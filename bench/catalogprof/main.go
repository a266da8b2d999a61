// Command catalogprof runs scangate's catalog step alone (open the image,
// unpack the files the extractors need, run them: no database, no
// matching, no report), optionally under the CPU profiler, to compare it
// with an SBOM tool and to see where a scan's time goes:
//
//	go run ./bench/catalogprof -cpuprofile cpu.out docker-archive:bench/.work/img.tar
//	go run ./bench/catalogprof -cache /tmp/lc docker-archive:rebuilt.tar   (twice: the second hits)
//	go tool pprof -top -cum cpu.out
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"runtime/pprof"
	"time"

	"github.com/scangate/scangate/internal/image"
	"github.com/scangate/scangate/internal/layercache"
	"github.com/scangate/scangate/internal/scan"
)

func main() {
	cpu := flag.String("cpuprofile", "", "write a CPU profile here")
	cacheDir := flag.String("cache", "", "use this layer cache folder (filled by a first run)")
	flag.Parse()
	if flag.NArg() != 1 {
		fmt.Fprintln(os.Stderr, "usage: catalogprof [-cpuprofile FILE] IMAGE")
		os.Exit(2)
	}
	if *cpu != "" {
		f, err := os.Create(*cpu)
		if err != nil {
			fail(err)
		}
		defer f.Close()
		if err := pprof.StartCPUProfile(f); err != nil {
			fail(err)
		}
	}
	ctx := context.Background()
	start := time.Now()
	img, err := image.Open(ctx, flag.Arg(0), image.Options{TempDir: os.TempDir()})
	if err != nil {
		fail(err)
	}
	opened := time.Now()
	var cache *layercache.Cache
	if *cacheDir != "" {
		if cache, err = layercache.Open(*cacheDir, 0); err != nil {
			fail(err)
		}
	}
	r, err := scan.CatalogWithCache(ctx, img.Image, scan.ImageInfo{Ref: flag.Arg(0)}, scan.DefaultLimits, cache)
	if err != nil {
		fail(err)
	}
	done := time.Now()
	img.Close()
	pprof.StopCPUProfile() // does nothing without -cpuprofile
	fmt.Printf("open %v, catalog %v: %d packages\n", opened.Sub(start).Round(time.Millisecond), done.Sub(opened).Round(time.Millisecond), len(r.Packages))
}

func fail(err error) {
	fmt.Fprintln(os.Stderr, "catalogprof:", err)
	os.Exit(1)
}
