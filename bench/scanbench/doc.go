// Package scanbench holds the Go benchmarks behind the scan figures that
// bench/README.md quotes: opening images, cataloging them, whole scans
// (catalog, match, report, stored inventory) with and without the layer
// cache, and the gzip inflaters, on the images bench/inputs.sh makes with
// debootstrap, the Docker Engine and `docker save`:
//
//	bench/inputs.sh
//	go test -tags isal -run '^$' -bench . -benchtime 7x -count 3 ./bench/scanbench/
//
// The images are in $SCANGATE_BENCH_CACHE (default ~/.cache/scangate-bench);
// a benchmark whose image is missing fails and says how to make it. The
// side-by-side figures with trivy come from bench/speed.sh, which runs the
// scangate binary and trivy under hyperfine.
package scanbench
