package feed

import (
	"os"
	"runtime"
	"testing"
	"time"
)

func TestZZBigDebian(t *testing.T) {
	data, err := os.ReadFile("/tmp/bigdeb/big.json")
	if err != nil {
		t.Skip()
	}
	runtime.GC()
	var m0, m1 runtime.MemStats
	runtime.ReadMemStats(&m0)
	start := time.Now()
	res, err := DebianTracker{}.Parse("big.json", data)
	d := time.Since(start)
	runtime.ReadMemStats(&m1)
	runtime.GC()
	var m2 runtime.MemStats
	runtime.ReadMemStats(&m2)
	t.Logf("err %v advs %d skips %d in %v; total alloc %d MB, heap after GC %d MB (before %d MB)", err, len(res.Advisories), len(res.Skipped), d, (m1.TotalAlloc-m0.TotalAlloc)>>20, m2.HeapAlloc>>20, m0.HeapAlloc>>20)
	t.Log(res.Skipped)
}
