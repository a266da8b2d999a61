package feed

import (
	"encoding/json"

	"github.com/scangate/scangate/internal/vulndb"
)

// Ubuntu's advisories are Canonical's OSV records
// (github.com/canonical/ubuntu-security-notices, osv/cve; osv.dev's Ubuntu
// ecosystem), read by the OSV format. What is Ubuntu's own in them is read
// here:
//
//   - Releases are ecosystems: "Ubuntu:22.04:LTS", "Ubuntu:24.10", and the
//     Ubuntu Pro (ESM) fixes apart, "Ubuntu:Pro:18.04:LTS"; vulndb orders
//     them all as Debian versions.
//   - A fixed entry is a range ending in "fixed"; an open one (Ubuntu's
//     needed, deferred or pending) is "introduced 0" alone, and matches
//     every version as unfixed. Canonical leaves out the releases a CVE
//     does not affect and those it will not fix ("ignored"), so no record
//     says will-not-fix.
//   - Each entry's ecosystem_specific.ubuntu_priority (negligible, low,
//     medium, high, critical) is Ubuntu's rating, kept as the entry's
//     urgency.

// ubuntuMaxPriority bounds the priority word kept; Ubuntu's are one short
// word.
const ubuntuMaxPriority = 32

// ubuntuPriorities sets each affected entry's Urgency from the record's
// ecosystem_specific.ubuntu_priority. The record already decoded as OSV, so
// a second decode that fails only costs the priorities.
func ubuntuPriorities(name string, data []byte, adv *vulndb.Advisory) {
	if osvIsYAML(name) {
		return // Canonical publishes JSON
	}
	var rec struct {
		Affected []struct {
			Package struct {
				Ecosystem string `json:"ecosystem"`
				Name      string `json:"name"`
			} `json:"package"`
			EcosystemSpecific struct {
				Priority string `json:"ubuntu_priority"`
			} `json:"ecosystem_specific"`
		} `json:"affected"`
	}
	if json.Unmarshal(data, &rec) != nil {
		return
	}
	priority := map[string]string{}
	for _, a := range rec.Affected {
		if p := a.EcosystemSpecific.Priority; p != "" && len(p) <= ubuntuMaxPriority {
			priority[a.Package.Ecosystem+"\x00"+a.Package.Name] = p
		}
	}
	for i := range adv.Affected {
		af := &adv.Affected[i]
		if p, ok := priority[af.Ecosystem+"\x00"+af.Package]; ok {
			af.Urgency = p
		}
	}
}
