package scan_test

import (
	"context"
	"fmt"
	"sync/atomic"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/tarball"

	"github.com/scangate/scangate/internal/imagetest"
	"github.com/scangate/scangate/internal/scan"
)

// BenchmarkRepeatedLayers scans images of n layers that are all one blob
// of 1 MiB of zeros (a few KiB of gzip), as an attacker would build one
// to make a scan inflate n MiB: time per scan, and the blob bytes read
// per scan (blob-B/op), which does not depend on the machine's load.
//
//	go test -tags isal -run '^$' -bench BenchmarkRepeatedLayers -benchtime 3x ./internal/scan/
func BenchmarkRepeatedLayers(b *testing.B) {
	blob := imagetest.GzipTar(b, zerosTar(b, 1<<20))
	for _, n := range []int{10, 100, 500} {
		b.Run(fmt.Sprintf("layers=%d", n), func(b *testing.B) {
			var read atomic.Int64
			l, err := tarball.LayerFromOpener(countingOpener(blob, &read))
			if err != nil {
				b.Fatal(err)
			}
			layers := make([]v1.Layer, n)
			for i := range layers {
				layers[i] = l
			}
			img := imagetest.Build(b, layers...)
			lim := scan.DefaultLimits
			lim.MaxLayers = n
			read.Store(0)
			b.ResetTimer()
			for range b.N {
				if _, err := scan.Catalog(context.Background(), img, scan.ImageInfo{Ref: "repeated"}, lim); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(read.Load())/float64(b.N), "blob-B/op")
			b.ReportMetric(float64(len(blob)), "blob-B")
		})
	}
}

// zerosTar is a tar of an Alpine base and n bytes of zeros in files of
// at most 512 KiB.
func zerosTar(t testing.TB, n int) []byte {
	t.Helper()
	entries := alpineFiles("")
	for i := 0; n > 0; i++ {
		size := min(n, 512<<10)
		entries = append(entries, file(fmt.Sprintf("zeros/%04d", i), string(make([]byte, size))))
		n -= size
	}
	return imagetest.Tar(t, entries...)
}
