// Command scanprof runs one scangate command line, as the binary would,
// under the CPU profiler, N times in a row, to see where a whole scan's
// time goes (the binary has no profile flag):
//
//	go build -tags isal -o /tmp/scanprof ./bench/scanprof
//	/tmp/scanprof -cpuprofile cpu.out -n 10 -- --data-dir D scan --format json docker-archive:big.tar
//	go tool pprof -top -cum /tmp/scanprof cpu.out
//	/tmp/scanprof -memprofile mem.out -n 1 -- ...   # where a run allocates
//	go tool pprof -sample_index=alloc_space -top /tmp/scanprof mem.out
//
// Each run's output goes to /dev/null; its exit code must be 0.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"runtime"
	"runtime/pprof"
	"time"

	"github.com/scangate/scangate/internal/cli"
)

func main() {
	cpu := flag.String("cpuprofile", "", "write a CPU profile here")
	mem := flag.String("memprofile", "", "write an allocation profile here (every allocation, after the runs)")
	n := flag.Int("n", 1, "runs")
	flag.Parse()
	if flag.NArg() == 0 {
		fmt.Fprintln(os.Stderr, "usage: scanprof [-cpuprofile FILE] [-n N] -- SCANGATE ARGS...")
		os.Exit(2)
	}
	if *cpu != "" {
		f, err := os.Create(*cpu)
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		defer f.Close()
		if err := pprof.StartCPUProfile(f); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		defer pprof.StopCPUProfile()
	}
	if *mem != "" {
		runtime.MemProfileRate = 4096
		defer func() {
			f, err := os.Create(*mem)
			if err == nil {
				err = errors.Join(pprof.Lookup("allocs").WriteTo(f, 0), f.Close())
			}
			if err != nil {
				fmt.Fprintln(os.Stderr, err)
			}
		}()
	}
	for i := range *n {
		start := time.Now()
		if code := cli.Main(context.Background(), flag.Args(), io.Discard, os.Stderr); code != 0 {
			fmt.Fprintf(os.Stderr, "run %d: exit %d\n", i+1, code)
			pprof.StopCPUProfile()
			os.Exit(1)
		}
		fmt.Fprintf(os.Stderr, "run %d: %v\n", i+1, time.Since(start).Round(time.Millisecond))
	}
}
