package scan

import (
	"slices"
	"strings"

	"github.com/scangate/scangate/internal/vulndb"
)

// mergeLinks makes one package of the packages found in one file: a file
// reached through several paths (Debian installs each jar under
// /usr/share/java with version-less symlinks and Maven-repository links
// beside it; tar hard links are links too) is one file on disk, and a
// package a lockfile names twice ("Django==1.11.29" and "django==1.11.29")
// is one package. The package keeps the file's own path and lists every
// path it was found at in Locations. real resolves a path in the image to
// the file it leads to, false when it leads nowhere.
func mergeLinks(pkgs []Package, real func(path string) (string, bool)) []Package {
	type key struct{ file, typ, ecosystem, name, version string }
	at := map[key]int{}
	out := make([]Package, 0, len(pkgs))
	for _, p := range pkgs {
		file, ok := real(p.Path)
		if !ok {
			out = append(out, p)
			continue
		}
		k := key{file, p.Type, p.Ecosystem, vulndb.NormalizePackage(p.Ecosystem, p.Name), p.Version}
		if i, seen := at[k]; seen {
			if !slices.Contains(out[i].Locations, p.Path) {
				out[i].Locations = append(out[i].Locations, p.Path)
			}
			continue
		}
		at[k] = len(out)
		p.Locations = []string{p.Path}
		out = append(out, p)
	}
	for i := range out {
		p := &out[i]
		file, ok := real(p.Path)
		if !ok || len(p.Locations) < 2 {
			p.Locations = nil
			continue
		}
		// The file's own path first, then the links to it.
		p.Path = file
		slices.SortFunc(p.Locations, func(a, b string) int {
			switch {
			case a == file:
				return -1
			case b == file:
				return 1
			}
			return strings.Compare(a, b)
		})
		if p.Locations[0] != file {
			p.Locations = append([]string{file}, p.Locations...)
		}
	}
	return out
}

// realPath resolves an absolute path in the tree to the absolute path of
// the file it leads to.
func (t *treeFS) realPath(p string) (string, bool) {
	if p == "" || p == "/" {
		return "", false
	}
	r, err := t.resolve(strings.TrimPrefix(p, "/"), true)
	if err != nil || t.lookupNoFollow(r) == nil {
		return "", false
	}
	return "/" + r, true
}
