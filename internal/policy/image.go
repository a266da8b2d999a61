package policy

import (
	"slices"
	"strings"

	"github.com/scangate/scangate/internal/scan"
)

// imageNames returns the names the scanned image goes by, each of which an
// ignore entry's image pattern or a VEX product may name: the reference as
// the user gave it, the repository, repository:tag for each tag,
// repository@digest, and the manifest and config digests. Names are used as
// the report has them, without adding Docker Hub's "docker.io/library/".
func imageNames(im scan.ImageInfo) []string {
	var names []string
	add := func(s string) {
		if s != "" && !slices.Contains(names, s) {
			names = append(names, s)
		}
	}
	add(im.Ref)
	add(im.Repository)
	if im.Repository != "" {
		for _, t := range im.Tags {
			if t != "" {
				add(im.Repository + ":" + t)
			}
		}
		if im.Digest != "" {
			add(im.Repository + "@" + im.Digest)
		}
	}
	add(im.Digest)
	add(im.ConfigDigest)
	return names
}

// globMatch reports whether name matches pattern, in which '*' stands for
// any run of characters, '/' and ':' included, and '?' for any one
// character; every other character stands for itself.
func globMatch(pattern, name string) bool {
	p, n := []rune(pattern), []rune(name)
	pi, ni := 0, 0
	star, mark := -1, 0 // the last '*' seen and where in n it began matching
	for ni < len(n) {
		switch {
		case pi < len(p) && p[pi] == '*':
			star, mark = pi, ni
			pi++
		case pi < len(p) && (p[pi] == '?' || p[pi] == n[ni]):
			pi++
			ni++
		case star >= 0:
			mark++
			pi, ni = star+1, mark
		default:
			return false
		}
	}
	for pi < len(p) && p[pi] == '*' {
		pi++
	}
	return pi == len(p)
}

// anyGlobMatch reports whether pattern matches any of names.
func anyGlobMatch(pattern string, names []string) bool {
	for _, n := range names {
		if globMatch(pattern, n) {
			return true
		}
	}
	return false
}

// ociMatches reports whether an OCI package URL ("pkg:oci/app@sha256%3A…?
// repository_url=ghcr.io/org/app&tag=1") names the scanned image. Its
// version, a digest, must be the image's manifest or config digest; its
// repository_url and tag qualifiers, where given, the image's repository and
// one of its tags; and its name the last part of the repository. Without a
// repository in the report only the digest can identify the image.
func ociMatches(p purl, im scan.ImageInfo) bool {
	if p.typ != "oci" {
		return false
	}
	if p.version != "" && p.version != im.Digest && p.version != im.ConfigDigest {
		return false
	}
	if repo, ok := p.qualifiers["repository_url"]; ok && repo != im.Repository {
		return false
	}
	if tag, ok := p.qualifiers["tag"]; ok && !slices.Contains(im.Tags, tag) {
		return false
	}
	if im.Repository == "" {
		return p.version != ""
	}
	last := im.Repository[strings.LastIndexByte(im.Repository, '/')+1:]
	return strings.EqualFold(p.name, last)
}
