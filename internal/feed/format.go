package feed

import "github.com/scangate/scangate/internal/vulndb"

// A Format decodes one upstream feed format into advisories. Each format lives
// in its own file with its tests and fuzz test, and is registered in Formats.
type Format interface {
	// Name is what users pass to --format: "osv", "ghsa", "debian", "alpine", "nvd".
	Name() string
	// Match reports whether a file with this base name, whose first bytes are
	// head, is in this format. It must not claim files of the other formats.
	Match(name string, head []byte) bool
	// Parse decodes one whole file. A record that cannot be used is left out
	// and named in Result.Skipped; an error means the file itself is unreadable
	// (malformed JSON or YAML, wrong shape) and names the file.
	Parse(name string, data []byte) (Result, error)
}

// Result is what a Format makes of one file.
type Result struct {
	Advisories []vulndb.Advisory
	Skipped    []Skip
}

// A Skip is a record left out of an import, with why.
type Skip struct {
	File   string
	Record string
	Reason string
}

// Formats lists every feed format scangate reads, in the order detection
// tries them.
var Formats = []Format{OSV{}, GHSA{}, DebianTracker{}, AlpineSecDB{}, NVD{}, RedHatVEX{}, BottlerocketUpdateInfo{}, AmazonUpdateInfo{}, SUSECVRF{}, OracleOVAL{}}
