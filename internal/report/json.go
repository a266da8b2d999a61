package report

import (
	_ "embed"
	"encoding/json"
	"io"

	"github.com/scangate/scangate/internal/scan"
)

// schemaJSON is the JSON Schema (draft 2020-12) of the JSON report.
//
//go:embed schema/report.schema.json
var schemaJSON []byte

// JSONSchema returns the JSON Schema that JSON reports conform to, for
// tools that validate or document the format.
func JSONSchema() []byte { return append([]byte(nil), schemaJSON...) }

// writeJSON writes the report itself, indented. Field order follows the
// scan package's structs, so it is stable; empty lists are written as []
// rather than null so consumers need not tell the two apart.
func writeJSON(w io.Writer, r *scan.Report) error {
	out := *r
	if out.Packages == nil {
		out.Packages = []scan.Package{}
	}
	if out.Findings == nil {
		out.Findings = []scan.Finding{}
	}
	if out.Image.Layers == nil {
		out.Image.Layers = []string{}
	}
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	enc.SetEscapeHTML(false)
	return enc.Encode(&out)
}
