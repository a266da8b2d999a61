// Command scanprof runs one scangate command line, as the binary would,
// under the CPU profiler, N times in a row, to see where a whole scan's
// time goes (the binary has no profile flag):
//
//	go build -tags isal -o /tmp/scanprof ./bench/scanprof
//	/tmp/scanprof -cpuprofile cpu.out -n 10 -- --data-dir D scan --format json docker-archive:big.tar
//	go tool pprof -top -cum /tmp/scanprof cpu.out
//
// Each run's output goes to /dev/null; its exit code must be 0.
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"runtime/pprof"
	"time"

	"github.com/scangate/scangate/internal/cli"
)

func main() {
	cpu := flag.String("cpuprofile", "", "write a CPU profile here")
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
