// Package policy decides whether a scanned image may go on: it takes a
// scan.Report and a Policy and returns a Decision with the reasons for it.
// The same decision serves "scangate scan --fail-on" and the pipeline's
// approval gate. The package does no I/O; the caller reads files and passes
// their bytes.
//
// A Policy has per-severity thresholds (ParseThresholds reads the flag form
// "CRITICAL=0,HIGH=0,MEDIUM=5") and three ways to suppress findings, so
// that they stay in the report, marked with why, but do not count:
//
//   - ignore entries (ParseIgnoreFile), like Trivy's .trivyignore.yaml or
//     Grype's ignore rules: a vulnerability ID, optionally scoped to a
//     package, a package URL or an image pattern, with a reason and an
//     expiry;
//   - OpenVEX statements (ParseVEX) saying a product is not_affected by or
//     fixed for a vulnerability;
//   - IgnoreUnfixed, for findings with no fixed version.
//
// Both file formats are decoded strictly: unknown fields are errors,
// because a misspelled field would otherwise silently widen what is
// suppressed ("expire:" never expiring, "product:" applying to every
// product).
//
// OpenVEX is parsed here rather than with github.com/openvex/go-vex, which
// is not in scangate's module graph: the consumer's side of the format is a
// small JSON schema, while go-vex brings in-toto attestation, SARIF and
// protobuf modules. Package URLs are parsed here too: packageurl-go, which
// osv-scalibr's purl package wraps, has no go.sum entry in scangate, and
// matching needs only a small part of the purl specification (see
// Ignore.PURL).
//
// Evaluation is deterministic and keeps no state between calls; the time
// that expiries are measured against is an argument.
package policy
