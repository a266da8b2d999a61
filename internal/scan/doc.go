// Package scan catalogs the packages in a container image and matches them
// against the vulnerability database, producing a Report. It does not
// decide whether the image passes (package policy does) and never emits
// events.
package scan
