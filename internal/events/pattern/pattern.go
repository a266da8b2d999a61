package pattern

import (
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
)

// Limits on patterns.
const (
	// MaxSize is the most bytes a pattern may have: the 4096
	// characters EventBridge's TestEventPattern and PutRule accept (its
	// default quota is 2048, raised on request to 4096).
	MaxSize = 4096
	// MaxDepth bounds how deeply a pattern's objects and arrays nest,
	// "$or" alternatives included.
	MaxDepth = 32
	// MaxEventSize is the most bytes an event may have, EventBridge's
	// limit.
	MaxEventSize = 256 << 10
	// MaxEventDepth bounds how deeply an event's objects and arrays nest,
	// the envelope included. EventBridge reads up to 1100 levels; scangate's
	// own events nest four.
	MaxEventDepth = 128
)

// orKey is the field that holds alternatives.
const orKey = "$or"

// Pattern is a compiled event pattern. It is immutable and safe for
// concurrent use.
type Pattern struct {
	root *fields
}

// fields is a pattern object: every field must match (AND) and, for each
// group of alternatives, one of them too. (An object has one "$or"; a
// path spelled two ways, "a": {"b": {...}} and "a.b": {...}, may bring
// two.)
type fields struct {
	list []field
	ors  [][]*fields
}

// field is one field of a pattern object: either an object that descends
// into the event, or a leaf whose match values are alternatives (OR).
type field struct {
	name   string
	nested *fields
	values []matcher
}

// Error says what is wrong with an event pattern, and where.
type Error struct {
	// Path locates the problem: field names joined with dots, array
	// elements as [i]: detail.state[1], $or[0].source. It is empty for a
	// problem with the pattern as a whole.
	Path string
	// Problem says what is wrong.
	Problem string
}

// Error implements error.
func (e *Error) Error() string {
	if e.Path == "" {
		return "pattern: " + e.Problem
	}
	return "pattern: " + e.Path + ": " + e.Problem
}

func newError(path, format string, a ...any) error {
	return &Error{Path: path, Problem: fmt.Sprintf(format, a...)}
}

// Compile reads and checks an event pattern written in EventBridge's
// pattern language. A pattern that is not valid is a *Error naming
// where and what the problem is.
func Compile(data []byte) (*Pattern, error) {
	if len(data) > MaxSize {
		return nil, newError("", "%d bytes is more than the %d a pattern may have", len(data), MaxSize)
	}
	v, err := decodeJSON(data, MaxDepth, true)
	if err != nil {
		return nil, &Error{Problem: err.Error()}
	}
	obj, ok := v.(object)
	if !ok {
		return nil, newError("", "a pattern is a JSON object, not %s", Kind(v))
	}
	root, err := compileFields(obj, "", false)
	if err != nil {
		return nil, err
	}
	return &Pattern{root: root}, nil
}

// compileFields compiles a pattern object at path. Inside "$or"
// alternatives, fields named like operators are taken for misplaced
// operators, as EventBridge does.
//
// A field name with dots names nested fields: "a.b": [...] is
// "a": {"b": [...]}, and the two spellings of a path merge into one
// object, so that array consistency holds across them. This is how
// aws/event-ruler, the matcher EventBridge's is published as, compiles
// them: it joins the names of nested fields with dots (README, "Caveat:
// Compiled rules and JSON keys with dots"; JsonRuleCompiler). Giving one
// path twice is an error, as event-ruler's compiler says "Path `a.b`
// cannot be allowed multiple times" when not told to let the last win.
func compileFields(obj object, path string, inOr bool) (*fields, error) {
	if len(obj) == 0 {
		return nil, newError(path, "an empty object matches nothing: give it at least one field")
	}
	f := &fields{}
	for _, m := range obj {
		p := joinPath(path, m.key)
		if m.key == orKey {
			alts, err := compileOr(m.val, p)
			if err != nil {
				return nil, err
			}
			f.ors = append(f.ors, alts)
			continue
		}
		if _, isOp := operators[m.key]; isOp && inOr {
			return nil, newError(p, "%q is an operator, not a field name: inside $or, each alternative is an object of fields, such as {\"state\": [{%q: ...}]}", m.key, m.key)
		}
		names := strings.Split(m.key, ".")
		fd, err := compileField(member{key: names[len(names)-1], val: m.val}, p, inOr)
		if err != nil {
			return nil, err
		}
		into, at := f, path
		for _, name := range names[:len(names)-1] {
			into, at = into.child(name), joinPath(at, name)
		}
		if err := into.add(fd, at); err != nil {
			return nil, err
		}
	}
	return f, nil
}

// child returns the nested object of the field name, made if f has none.
func (f *fields) child(name string) *fields {
	for _, fd := range f.list {
		if fd.name == name && fd.nested != nil {
			return fd.nested
		}
	}
	nested := &fields{}
	f.list = append(f.list, field{name: name, nested: nested})
	return nested
}

// add adds fd to the object at path, merging a nested object into the one
// already there; a leaf already there is the same path given twice.
func (f *fields) add(fd field, path string) error {
	p := joinPath(path, fd.name)
	if fd.nested == nil {
		for _, old := range f.list {
			if old.name == fd.name && old.nested == nil {
				return newError(p, "the path is given twice (with dots in a field name, and nested): give it once")
			}
		}
		f.list = append(f.list, fd)
		return nil
	}
	into := f.child(fd.name)
	for _, sub := range fd.nested.list {
		if err := into.add(sub, p); err != nil {
			return err
		}
	}
	into.ors = append(into.ors, fd.nested.ors...)
	return nil
}

func compileField(m member, path string, inOr bool) (field, error) {
	switch v := m.val.(type) {
	case object:
		nested, err := compileFields(v, path, inOr)
		return field{name: m.key, nested: nested}, err
	case []any:
		values, err := compileValues(v, path)
		return field{name: m.key, values: values}, err
	}
	return field{}, newError(path, "want an array of match values (such as [%s]) or an object of fields, not %s", example(m.val), Kind(m.val))
}

// compileOr compiles the alternatives of "$or": an array of at least two
// pattern objects.
func compileOr(v any, path string) ([]*fields, error) {
	arr, ok := v.([]any)
	if !ok || len(arr) < 2 {
		return nil, newError(path, "want an array of at least two pattern objects")
	}
	alts := make([]*fields, len(arr))
	for i, a := range arr {
		p := indexPath(path, i)
		obj, ok := a.(object)
		if !ok {
			return nil, newError(p, "an alternative is a pattern object, not %s", Kind(a))
		}
		f, err := compileFields(obj, p, true)
		if err != nil {
			return nil, err
		}
		alts[i] = f
	}
	return alts, nil
}

// compileValues compiles a leaf's match values: exact JSON values and
// operator objects.
func compileValues(arr []any, path string) ([]matcher, error) {
	if len(arr) == 0 {
		return nil, newError(path, "an empty array matches nothing: list at least one value")
	}
	values := make([]matcher, len(arr))
	for i, v := range arr {
		p := indexPath(path, i)
		switch v := v.(type) {
		case object:
			m, err := compileOperator(v, p)
			if err != nil {
				return nil, err
			}
			values[i] = m
		case []any:
			return nil, newError(p, "a match value is a string, number, boolean, null or operator object, not an array")
		default:
			values[i] = exact{v}
		}
	}
	return values, nil
}

func joinPath(path, key string) string {
	if path == "" {
		return key
	}
	return path + "." + key
}

func indexPath(path string, i int) string {
	return path + "[" + strconv.Itoa(i) + "]"
}

// example writes a scalar as JSON for an error message's suggestion.
func example(v any) string {
	b, err := json.Marshal(v)
	if err != nil || len(b) > 40 {
		return `"..."`
	}
	return string(b)
}

// Match reports whether event, a JSON object, matches the pattern. The
// event's JSON is matched as a whole, so any field, the detail's included,
// can be selected. An event that is not a JSON object, or exceeds
// MaxEventSize or MaxEventDepth, is an error.
func (p *Pattern) Match(event []byte) (bool, error) {
	if p == nil || p.root == nil {
		return false, errors.New("match: no pattern (compile one with Compile)")
	}
	obj, err := DecodeEvent(event)
	if err != nil {
		return false, err
	}
	return p.root.matchObject(expandDottedNames(obj)), nil
}

// match matches an event value found where the pattern has an object. An
// array's objects are tried one at a time, so that all the fields matched
// come from the same element (EventBridge's array-consistent matching).
// Anything else, or nothing, has no fields: only "exists": false can match
// under it.
func (f *fields) match(v any) bool {
	switch v := v.(type) {
	case map[string]any:
		return f.matchObject(v)
	case []any:
		found, matched := false, false
		eachObject(v, func(o map[string]any) bool {
			found = true
			matched = f.matchObject(o)
			return !matched
		})
		if found {
			return matched
		}
	}
	return f.matchObject(nil)
}

// matchObject matches the fields of one event object; nil stands for a
// missing object.
func (f *fields) matchObject(obj map[string]any) bool {
	for _, fd := range f.list {
		v, present := obj[fd.name]
		if fd.nested != nil {
			if !fd.nested.match(v) {
				return false
			}
		} else if !matchLeaf(fd.values, v, present) {
			return false
		}
	}
	for _, alts := range f.ors {
		if !anyMatch(alts, obj) {
			return false
		}
	}
	return true
}

func anyMatch(alts []*fields, obj map[string]any) bool {
	for _, alt := range alts {
		if alt.matchObject(obj) {
			return true
		}
	}
	return false
}

// matchLeaf matches the value of a leaf field against its match values. The
// leaf values are the field's value, or, for an array, its elements (nested
// arrays flattened); objects are not leaves. One match value matching one
// leaf value is enough.
func matchLeaf(values []matcher, v any, present bool) bool {
	for _, m := range values {
		if e, ok := m.(exists); ok {
			if bool(e) == (present && hasLeaf(v)) {
				return true
			}
			continue
		}
		if present && anyLeaf(v, m.match) {
			return true
		}
	}
	return false
}

// anyLeaf reports whether test holds for one of v's leaf values.
func anyLeaf(v any, test func(any) bool) bool {
	switch v := v.(type) {
	case map[string]any:
		return false
	case []any:
		for _, e := range v {
			if anyLeaf(e, test) {
				return true
			}
		}
		return false
	}
	return test(v)
}

// hasLeaf reports whether v is or holds a leaf value.
func hasLeaf(v any) bool {
	return anyLeaf(v, func(any) bool { return true })
}

// eachObject calls fn with each object in arr, nested arrays flattened,
// until fn returns false.
func eachObject(arr []any, fn func(map[string]any) bool) bool {
	for _, e := range arr {
		switch e := e.(type) {
		case map[string]any:
			if !fn(e) {
				return false
			}
		case []any:
			if !eachObject(e, fn) {
				return false
			}
		}
	}
	return true
}

// DecodeEvent checks an event's size, JSON and nesting, and returns its
// object.
func DecodeEvent(data []byte) (map[string]any, error) {
	if len(data) > MaxEventSize {
		return nil, fmt.Errorf("event: %d bytes is more than the %d an event may have", len(data), MaxEventSize)
	}
	v, err := decodeJSON(data, MaxEventDepth, false)
	if err != nil {
		return nil, fmt.Errorf("event: %w", err)
	}
	obj, ok := v.(map[string]any)
	if !ok {
		return nil, fmt.Errorf("event: an event is a JSON object, not %s", Kind(v))
	}
	return obj, nil
}
