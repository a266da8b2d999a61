package pattern

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
)

// object is a JSON object with its fields in document order, as patterns are
// decoded (so that errors are reported in the order a person reads them, and
// duplicate fields are caught).
type object []member

// member is one field of an object.
type member struct {
	key string
	val any
}

// decoder reads one JSON value with a bound on nesting. Values come out as
// string, json.Number, bool, nil, []any, and objects as map[string]any (the
// last of duplicate fields wins, as in encoding/json) or, when ordered, as
// object (duplicate fields are an error).
type decoder struct {
	dec      *json.Decoder
	maxDepth int
	ordered  bool
}

// decodeJSON parses data as exactly one JSON value nested at most maxDepth
// objects and arrays deep.
func decodeJSON(data []byte, maxDepth int, ordered bool) (any, error) {
	if len(bytes.TrimSpace(data)) == 0 {
		return nil, errors.New("invalid JSON: no value")
	}
	d := &decoder{dec: json.NewDecoder(bytes.NewReader(data)), maxDepth: maxDepth, ordered: ordered}
	d.dec.UseNumber()
	v, err := d.value(0)
	if err != nil {
		return nil, err
	}
	switch _, err := d.dec.Token(); {
	case err == io.EOF:
		return v, nil
	case err != nil:
		return nil, d.syntax(err)
	default:
		return nil, fmt.Errorf("invalid JSON: more data after the value, at byte %d", d.dec.InputOffset())
	}
}

func (d *decoder) value(depth int) (any, error) {
	tok, err := d.dec.Token()
	if err != nil {
		return nil, d.syntax(err)
	}
	delim, ok := tok.(json.Delim)
	if !ok {
		return tok, nil // string, json.Number, bool or nil
	}
	if depth >= d.maxDepth {
		return nil, fmt.Errorf("JSON nests more than %d levels deep (at byte %d)", d.maxDepth, d.dec.InputOffset())
	}
	if delim == '[' {
		return d.array(depth + 1)
	}
	return d.object(depth + 1) // Token returns only '[' and '{' before a value
}

func (d *decoder) array(depth int) ([]any, error) {
	arr := []any{}
	for d.dec.More() {
		v, err := d.value(depth)
		if err != nil {
			return nil, err
		}
		arr = append(arr, v)
	}
	return arr, d.closing()
}

func (d *decoder) object(depth int) (any, error) {
	var ordered object
	unordered := map[string]any{}
	for d.dec.More() {
		tok, err := d.dec.Token()
		if err != nil {
			return nil, d.syntax(err)
		}
		key := tok.(string) // the decoder checks that keys are strings
		v, err := d.value(depth)
		if err != nil {
			return nil, err
		}
		if d.ordered {
			if _, dup := unordered[key]; dup {
				return nil, fmt.Errorf("field %q appears twice in one object (at byte %d)", key, d.dec.InputOffset())
			}
			ordered = append(ordered, member{key, v})
		}
		unordered[key] = v
	}
	if err := d.closing(); err != nil {
		return nil, err
	}
	if d.ordered {
		if ordered == nil {
			ordered = object{}
		}
		return ordered, nil
	}
	return unordered, nil
}

// closing reads the '}' or ']' that ends an object or array.
func (d *decoder) closing() error {
	if _, err := d.dec.Token(); err != nil {
		return d.syntax(err)
	}
	return nil
}

// syntax makes a decoding error say where the input went wrong.
func (d *decoder) syntax(err error) error {
	var se *json.SyntaxError
	switch {
	case errors.As(err, &se):
		return fmt.Errorf("invalid JSON at byte %d: %v", se.Offset, err)
	case err == io.EOF || errors.Is(err, io.ErrUnexpectedEOF):
		return errors.New("invalid JSON: unexpected end of input")
	}
	return fmt.Errorf("invalid JSON at byte %d: %v", d.dec.InputOffset(), err)
}

// Decode parses data as exactly one JSON value nested at most maxDepth
// objects and arrays deep, with numbers kept as json.Number: the reader
// events and patterns share, so that both are held to the same limits.
func Decode(data []byte, maxDepth int) (any, error) {
	return decodeJSON(data, maxDepth, false)
}

// Kind names the JSON type of a decoded value, for error messages.
func Kind(v any) string {
	switch v.(type) {
	case string:
		return "a string"
	case json.Number:
		return "a number"
	case bool:
		return "a boolean"
	case nil:
		return "null"
	case []any:
		return "an array"
	}
	return "an object"
}

// maxExpandCopies bounds the map entries expandDottedNames copies for one
// event: an event of 256 KiB cannot make it copy more than this, however
// its dotted names overlap. Past it, values meeting at one path are kept
// side by side (see merge).
const maxExpandCopies = 1 << 20

// maxPathNames is more names than a pattern's path can have: each takes
// at least a character and a dot of MaxSize.
const maxPathNames = MaxSize/2 + 1

// expandDottedNames rewrites an event's field names that contain dots as
// the nested fields they name, {"a.b": 1} as {"a": {"b": 1}}, merging
// what two spellings of one path hold, as aws/event-ruler reads events:
// it flattens an event into paths of field names joined with dots, so
// that "a.b" and "a": {"b"} are one path (README, "Caveat: Compiled
// rules and JSON keys with dots"). An event without such names is
// returned as it is; the event's own maps are never changed.
func expandDottedNames(obj map[string]any) map[string]any {
	budget := maxExpandCopies
	out, _ := expand(obj, &budget)
	return out.(map[string]any)
}

// expand returns v with dotted names expanded, and whether it changed
// anything (if not, v itself).
func expand(v any, budget *int) (any, bool) {
	switch v := v.(type) {
	case map[string]any:
		var dotted []string
		var out map[string]any
		for k, e := range v {
			if strings.Contains(k, ".") {
				dotted = append(dotted, k)
				continue
			}
			if x, changed := expand(e, budget); changed {
				if out == nil {
					out = copyMap(v, budget)
				}
				out[k] = x
			}
		}
		if dotted == nil {
			if out == nil {
				return v, false
			}
			return out, true
		}
		if out == nil {
			out = copyMap(v, budget)
		}
		// In a fixed order: merge is not commutative past the budget.
		slices.Sort(dotted)
		for _, k := range dotted {
			delete(out, k)
		}
		for _, k := range dotted {
			names := strings.Split(k, ".")
			if len(names) > maxPathNames {
				// Deeper than any pattern reaches: keep the rest as one
				// name, so that merge's recursion stays bounded.
				names = append(names[:maxPathNames-1], strings.Join(names[maxPathNames-1:], "."))
			}
			x, _ := expand(v[k], budget)
			for i := len(names) - 1; i > 0; i-- {
				x = map[string]any{names[i]: x}
			}
			if old, ok := out[names[0]]; ok {
				x = merge(old, x, budget)
			}
			out[names[0]] = x
		}
		return out, true
	case []any:
		var out []any
		for i, e := range v {
			if x, changed := expand(e, budget); changed {
				if out == nil {
					out = slices.Clone(v)
				}
				out[i] = x
			}
		}
		if out == nil {
			return v, false
		}
		return out, true
	}
	return v, false
}

func copyMap(m map[string]any, budget *int) map[string]any {
	*budget -= len(m)
	out := make(map[string]any, len(m))
	for k, v := range m {
		out[k] = v
	}
	return out
}

// merge combines what two spellings of one path hold, as event-ruler sees
// them: two objects are one object with the fields of both; an object
// beside an array is in each of the array's objects (a field outside an
// array is consistent with every element); anything else is both values,
// as an array's elements are. Two arrays of objects are kept side by side
// (event-ruler would also pair their elements), as is everything once
// the budget is spent.
func merge(a, b any, budget *int) any {
	am, aObj := a.(map[string]any)
	bm, bObj := b.(map[string]any)
	if aObj && bObj && *budget > 0 {
		out := copyMap(am, budget)
		keys := make([]string, 0, len(bm))
		for k := range bm {
			keys = append(keys, k)
		}
		slices.Sort(keys)
		for _, k := range keys {
			if old, ok := out[k]; ok {
				out[k] = merge(old, bm[k], budget)
			} else {
				out[k] = bm[k]
			}
		}
		return out
	}
	aa, aArr := a.([]any)
	ba, bArr := b.([]any)
	switch {
	case aArr && bObj && *budget > 0:
		return intoEach(aa, bm, budget)
	case bArr && aObj && *budget > 0:
		return intoEach(ba, am, budget)
	}
	return append(asList(a), asList(b)...)
}

// intoEach merges m into each object of arr, nested arrays included; an
// array without objects gets m as one more element.
func intoEach(arr []any, m map[string]any, budget *int) []any {
	out := make([]any, 0, len(arr)+1)
	found := false
	var visit func(arr []any) []any
	visit = func(arr []any) []any {
		res := make([]any, len(arr))
		for i, e := range arr {
			switch e := e.(type) {
			case map[string]any:
				found = true
				res[i] = merge(e, m, budget)
			case []any:
				res[i] = visit(e)
			default:
				res[i] = e
			}
		}
		return res
	}
	out = append(out, visit(arr)...)
	if !found {
		out = append(out, m)
	}
	return out
}

// asList is v's elements if v is an array, else v alone, in a new slice.
func asList(v any) []any {
	if arr, ok := v.([]any); ok {
		return slices.Clone(arr)
	}
	return []any{v}
}
