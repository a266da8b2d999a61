package events

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
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

// kind names the JSON type of a decoded value, for error messages.
func kind(v any) string {
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
