package cli

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"

	"go.yaml.in/yaml/v3"

	"github.com/scangate/scangate/internal/lazyregexp"
)

// Output formats every command takes. table is for people; wide is a
// table with more columns where a table leaves some out; json and yaml are
// the API's documents as they are, for programs.
const (
	formatTable = "table"
	formatWide  = "wide"
	formatJSON  = "json"
	formatYAML  = "yaml"
)

// documentFormat refuses the formats only scan and findings write.
func (g *globals) documentFormat() error {
	switch g.format {
	case formatTable, formatWide, formatJSON, formatYAML:
		return nil
	}
	return usageError{fmt.Errorf("--format %s: this command prints table, wide, json or yaml (sarif, cyclonedx and spdx are for scan and findings)", g.format)}
}

// structured reports whether the output is a document (json or yaml)
// rather than a table.
func (g *globals) structured() bool { return g.format == formatJSON || g.format == formatYAML }

// wide reports whether tables get their extra columns.
func (g *globals) wide() bool { return g.format == formatWide }

// write prints v as the chosen document format.
func (g *globals) write(v any) error {
	if g.format == formatYAML {
		return writeYAML(g.stdout, v)
	}
	return writeJSON(g.stdout, v)
}

// writeYAML writes v as YAML with the field names and order of its JSON
// (the API's), so json and yaml output say the same thing.
func writeYAML(w io.Writer, v any) error {
	var b bytes.Buffer
	if err := json.NewEncoder(&b).Encode(v); err != nil {
		return err
	}
	var n yaml.Node
	if err := yaml.Unmarshal(b.Bytes(), &n); err != nil {
		return err
	}
	var block func(*yaml.Node)
	block = func(n *yaml.Node) {
		n.Style = 0
		if n.Kind == yaml.ScalarNode && n.Tag == "!!str" && oldBools[strings.ToLower(n.Value)] {
			n.Style = yaml.DoubleQuotedStyle
		}
		for _, c := range n.Content {
			block(c)
		}
	}
	block(&n)
	enc := yaml.NewEncoder(w)
	enc.SetIndent(2)
	if err := enc.Encode(&n); err != nil {
		return err
	}
	return enc.Close()
}

var (
	yamlNotFound = lazyregexp.New("field (\\S+) not found in type \\S+")
	yamlInto     = lazyregexp.New("cannot unmarshal !!(\\w+) `([^`]*)` into (\\S+)")
)

// yamlTypes says in words what a YAML tag or a Go type holds.
var yamlTypes = map[string]string{
	"str": "text", "int": "a number", "float": "a number", "bool": "true or false", "seq": "a list", "map": "a mapping",
	"null": "nothing", "timestamp": "a time",
}

// yamlError rewrites a YAML decoder's error in a user's words: the line
// and the field, not the Go types behind them.
func yamlError(err error) error {
	if err == nil {
		return nil
	}
	var te *yaml.TypeError
	if !errors.As(err, &te) {
		return errors.New(strings.TrimPrefix(err.Error(), "yaml: "))
	}
	msgs := make([]string, 0, len(te.Errors))
	for _, m := range te.Errors {
		m = yamlNotFound.ReplaceAllString(m, "unknown field $1")
		m = yamlInto.ReplaceAllStringFunc(m, func(s string) string {
			p := yamlInto.FindStringSubmatch(s)
			want := goTypeWords(p[3])
			return fmt.Sprintf("%q is %s, where %s goes", p[2], orWord(yamlTypes[p[1]], p[1]), want)
		})
		msgs = append(msgs, m)
	}
	return errors.New(strings.Join(msgs, "; "))
}

func orWord(s, def string) string {
	if s == "" {
		return def
	}
	return s
}

// goTypeWords names a Go type as a value a user writes.
func goTypeWords(t string) string {
	switch {
	case strings.HasPrefix(t, "[]"):
		return "a list"
	case strings.HasPrefix(t, "map["):
		return "a mapping"
	case t == "string":
		return "text"
	case t == "bool":
		return "true or false"
	case strings.HasPrefix(t, "int"), strings.HasPrefix(t, "uint"), strings.HasPrefix(t, "float"):
		return "a number"
	case strings.HasSuffix(t, "Duration"):
		return "a duration such as 90s or 7d"
	case strings.HasSuffix(t, "Time"):
		return "a date or time"
	}
	return "a mapping"
}
