package e2e

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/scangate/scangate/internal/imagetest"
	"github.com/scangate/scangate/internal/scanner"
	"github.com/scangate/scangate/internal/server"
	"github.com/scangate/scangate/internal/servertest"
	"github.com/scangate/scangate/internal/storetest"
)

// The figures of the README's scale page. Run them with
//
//	scripts/postgres.sh start
//	go test -run '^$' -bench 'PushToScan|ReplicaScans' -benchtime 1x ./internal/e2e/
//
// on a machine doing nothing else if the figures are to mean much.

// BenchmarkPushToScan measures, on one in-process server, the time from a
// push's end (the client has its 201) to the image's scan result being
// readable (polled every 5 ms), for small distinct images pushed one
// after another: its median and 90th percentile, on SQLite and on
// PostgreSQL.
func BenchmarkPushToScan(b *testing.B) {
	const images = 40
	for _, db := range []string{"sqlite", "postgres"} {
		b.Run(db, func(b *testing.B) {
			cfg := server.Config{}
			if db == "postgres" {
				cfg.Database = storetest.Postgres(b)
			}
			s := servertest.Start(b, servertest.Options{Feeds: []string{"debian", "ghsa"}, Config: cfg})
			imgs := benchImages(b, images, db)
			var lat []time.Duration
			b.ResetTimer()
			for range b.N {
				for i, img := range imgs {
					repo := fmt.Sprintf("bench/%s", db)
					d := s.Push(b, fmt.Sprintf("%s:%d-%d", repo, i, time.Now().UnixNano()), img)
					pushed := time.Now()
					// scannedAt is stored to the second: the time is the
					// benchmark's own, to its 5 ms poll.
					waitScanned(b, s, repo, d)
					lat = append(lat, time.Since(pushed))
				}
			}
			b.StopTimer()
			slices.Sort(lat)
			if len(lat) > 0 {
				b.ReportMetric(float64(lat[len(lat)/2].Milliseconds()), "p50-ms")
				b.ReportMetric(float64(lat[len(lat)*9/10].Milliseconds()), "p90-ms")
			}
		})
	}
}

// BenchmarkReplicaScans measures how many pushed images 1 and 3 replicas
// on one PostgreSQL database scan per minute: 60 distinct images pushed
// through the proxy by 6 clients at once, from the first push to the last
// image's Scan event.
func BenchmarkReplicaScans(b *testing.B) {
	const images, pushers = 60, 6
	for _, n := range []int{1, 3} {
		b.Run(fmt.Sprintf("replicas=%d", n), func(b *testing.B) {
			c := newCluster(b, n)
			for i := range n {
				c.start(b, i)
			}
			imgs := benchImages(b, images, fmt.Sprintf("replicas-%d-%s", n, c.id))
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
			defer cancel()
			b.ResetTimer()
			start := time.Now()
			work := make(chan int, images)
			for i := range images {
				work <- i
			}
			close(work)
			var wg sync.WaitGroup
			for range pushers {
				wg.Go(func() {
					for i := range work {
						if err := c.pushRetrying(ctx, fmt.Sprintf("bench/app%d:%d", i%3, i), imgs[i]); err != nil {
							b.Error(err)
							return
						}
					}
				})
			}
			wg.Wait()
			for {
				list, err := c.allEvents()
				if err != nil {
					b.Fatal(err)
				}
				scans := 0
				for _, l := range list {
					if l.Event.DetailType == "Scan" {
						scans++
					}
				}
				if scans >= images {
					break
				}
				if ctx.Err() != nil {
					b.Fatalf("%d of %d images scanned in 10 minutes", scans, images)
				}
				time.Sleep(100 * time.Millisecond)
			}
			took := time.Since(start)
			b.StopTimer()
			b.ReportMetric(float64(images)/took.Minutes(), "scans/min")
		})
	}
}

// benchImages makes n distinct small images with Debian and npm packages,
// so that each scan matches real advisories.
func benchImages(tb testing.TB, n int, salt string) []v1.Image {
	tb.Helper()
	base := imagetest.BookwormBase(tb)
	imgs := make([]v1.Image, n)
	for i := range imgs {
		imgs[i] = imagetest.Build(tb, base, imagetest.Layer(tb,
			imagetest.Entry{Name: "app/node_modules/lodash/package.json", Body: `{"name": "lodash", "version": "4.17.15"}`},
			imagetest.Entry{Name: "app/build-id", Body: fmt.Sprintf("build %d of %s\n", i, salt)},
		))
	}
	return imgs
}

// waitScanned polls, every 5 ms, until repository@digest has a result.
func waitScanned(b *testing.B, s *servertest.Server, repository, digest string) {
	b.Helper()
	results := scanner.NewResults(s.Store)
	for deadline := time.Now().Add(time.Minute); time.Now().Before(deadline); time.Sleep(5 * time.Millisecond) {
		imgs, err := results.ListImages(context.Background(), repository)
		if err != nil {
			b.Fatal(err)
		}
		for _, im := range imgs {
			if im.Digest == digest && im.ScanStatus != "PENDING" {
				return
			}
		}
	}
	b.Fatalf("%s@%s not scanned within a minute", repository, digest)
}
