// Package scan catalogs the packages in a container image and matches them
// against the vulnerability database, producing a Report. It does not
// decide whether the image passes (package policy does) and never emits
// events.
//
// Package extraction is osv-scalibr's, extractor by extractor. Unpacking
// is our own (unpack.go, layerfs.go, attribute.go): osv-scalibr's layer
// scanner writes every file of every layer to disk, decompresses each layer
// again to compute DiffIDs, skips oversized files silently and resolves
// tar hard links from the wrong folder. Ours reads each layer once, layers
// in parallel, keeps only the files the extractors ask for (and the links
// and whiteouts that shape the tree), checks each layer against the
// config's DiffID, fails closed on anything it cannot read, and attributes
// each package to the layer that introduced it.
package scan
