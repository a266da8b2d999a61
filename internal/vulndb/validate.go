package vulndb

import (
	"fmt"
	"strings"
	"unicode"
)

// Limits on one advisory's fields. Real records stay far below them; a
// record beyond them is hostile or broken and is left out of the import.
const (
	MaxIDLen          = 128
	MaxPackageLen     = 512
	MaxAffected       = 10000
	MaxEventsPerRange = 10000
)

// Clean checks an advisory before it is stored. It removes the affected
// entries that can never match correctly (an unknown ecosystem, a version
// its ecosystem cannot parse) and says why for each; it returns an error if
// the advisory as a whole is unusable.
func Clean(a *Advisory) (dropped []string, err error) {
	if err := checkID(a.ID); err != nil {
		return nil, err
	}
	for _, al := range a.Aliases {
		if err := checkID(al); err != nil {
			return nil, fmt.Errorf("alias: %w", err)
		}
	}
	if len(a.Affected) > MaxAffected {
		return nil, fmt.Errorf("%d affected packages, more than %d", len(a.Affected), MaxAffected)
	}
	kept := a.Affected[:0]
	for _, af := range a.Affected {
		if err := checkAffected(&af); err != nil {
			dropped = append(dropped, fmt.Sprintf("%s/%s: %v", af.Ecosystem, af.Package, err))
			continue
		}
		kept = append(kept, af)
	}
	a.Affected = kept
	return dropped, nil
}

func checkID(id string) error {
	switch {
	case id == "":
		return fmt.Errorf("empty id")
	case len(id) > MaxIDLen:
		return fmt.Errorf("id of %d bytes is longer than %d", len(id), MaxIDLen)
	case strings.IndexFunc(id, func(r rune) bool { return unicode.IsSpace(r) || !unicode.IsPrint(r) }) >= 0:
		return fmt.Errorf("id %q has spaces or control characters", id)
	}
	return nil
}

func checkAffected(af *Affected) error {
	if !KnownEcosystem(af.Ecosystem) {
		return fmt.Errorf("%w %q", ErrUnknownEcosystem, af.Ecosystem)
	}
	if af.Package == "" || len(af.Package) > MaxPackageLen {
		return fmt.Errorf("package name of %d bytes", len(af.Package))
	}
	switch af.Status {
	case "", StatusFixed, StatusUnfixed, StatusWillNotFix, StatusNotAffected, StatusEndOfLife:
	default:
		return fmt.Errorf("unknown status %q", af.Status)
	}
	if af.Status == StatusFixed && af.Fixed == "" {
		return fmt.Errorf("status fixed without a fixed version")
	}
	if af.Status != "" && af.Status != StatusFixed && len(af.Ranges)+len(af.Versions) > 0 {
		return fmt.Errorf("status %s with ranges", af.Status)
	}
	for _, rg := range af.Ranges {
		if len(rg.Events) > MaxEventsPerRange {
			return fmt.Errorf("range of %d events", len(rg.Events))
		}
	}
	// Parsing now is what lets a match trust every stored version.
	_, err := newEntry(entryDoc{Affected: *af})
	return err
}
