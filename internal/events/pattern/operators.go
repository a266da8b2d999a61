package pattern

import (
	"encoding/json"
	"fmt"
	"math"
	"net/netip"
	"sort"
	"strconv"
	"strings"
)

// operators compile the operator objects of a leaf, such as {"prefix": "us-"}.
var operators = map[string]func(v any) (matcher, error){
	"prefix":             compilePrefix,
	"suffix":             compileSuffix,
	"equals-ignore-case": compileEqualsIgnoreCase,
	"wildcard":           compileWildcardOp,
	"anything-but":       compileAnythingBut,
	"numeric":            compileNumeric,
	"exists":             compileExists,
	"cidr":               compileCIDR,
}

// operatorNames lists the operators for error messages.
func operatorNames() string {
	names := make([]string, 0, len(operators))
	for n := range operators {
		names = append(names, n)
	}
	sort.Strings(names)
	return strings.Join(names, ", ")
}

// compileOperator compiles an operator object: exactly one known operator
// and its argument.
func compileOperator(obj object, path string) (matcher, error) {
	if len(obj) != 1 {
		return nil, newError(path, "an operator object has exactly one operator, not %d fields (operators: %s)", len(obj), operatorNames())
	}
	name, arg := obj[0].key, obj[0].val
	compile, ok := operators[name]
	if !ok {
		return nil, newError(path, "unknown operator %q (operators: %s)", name, operatorNames())
	}
	m, err := compile(arg)
	if err != nil {
		return nil, newError(path, "%s: %v", name, err)
	}
	return m, nil
}

func compilePrefix(v any) (matcher, error) {
	s, fold, err := foldableString(v)
	return prefix{s, fold}, err
}

func compileSuffix(v any) (matcher, error) {
	s, fold, err := foldableString(v)
	return suffix{s, fold}, err
}

// foldableString reads the argument of prefix and suffix: a string, or
// {"equals-ignore-case": string} to ignore case.
func foldableString(v any) (string, bool, error) {
	if s, ok := v.(string); ok {
		return s, false, nil
	}
	if obj, ok := v.(object); ok && len(obj) == 1 && obj[0].key == "equals-ignore-case" {
		if s, ok := obj[0].val.(string); ok {
			return s, true, nil
		}
	}
	return "", false, fmt.Errorf(`want a string or {"equals-ignore-case": string}, not %s`, Kind(v))
}

func compileEqualsIgnoreCase(v any) (matcher, error) {
	s, ok := v.(string)
	if !ok {
		return nil, fmt.Errorf("want a string, not %s", Kind(v))
	}
	return equalsIgnoreCase{s}, nil
}

func compileWildcardOp(v any) (matcher, error) {
	s, ok := v.(string)
	if !ok {
		return nil, fmt.Errorf("want a string, not %s", Kind(v))
	}
	w, err := compileWildcard(s)
	if err != nil {
		return nil, fmt.Errorf("%q: %v", s, err)
	}
	return w, nil
}

func compileExists(v any) (matcher, error) {
	b, ok := v.(bool)
	if !ok {
		return nil, fmt.Errorf("want true or false, not %s", Kind(v))
	}
	return exists(b), nil
}

func compileCIDR(v any) (matcher, error) {
	s, ok := v.(string)
	if !ok {
		return nil, fmt.Errorf("want a string, not %s", Kind(v))
	}
	block, err := netip.ParsePrefix(s)
	if err != nil {
		return nil, fmt.Errorf("%q is not an address block such as 10.0.0.0/24 or 2001:db8::/32", s)
	}
	return cidr{block.Masked()}, nil
}

// compileAnythingBut reads the argument of anything-but: a string or a
// number; an array of strings or of numbers (not both); or an object
// {"prefix"|"suffix"|"equals-ignore-case"|"wildcard": string or array of
// strings}.
func compileAnythingBut(v any) (matcher, error) {
	switch v := v.(type) {
	case string, json.Number:
		return anythingBut{[]matcher{exact{v}}}, nil
	case []any:
		return anythingButList(v)
	case object:
		return anythingButOperator(v)
	}
	return nil, fmt.Errorf("want a string, a number, an array of strings or of numbers, or an object such as {\"prefix\": \"init\"}, not %s", Kind(v))
}

func anythingButList(arr []any) (matcher, error) {
	if len(arr) == 0 {
		return nil, fmt.Errorf("an empty array excludes nothing: list at least one value")
	}
	not := make([]matcher, len(arr))
	var strs, nums int
	for i, e := range arr {
		switch e.(type) {
		case string:
			strs++
		case json.Number:
			nums++
		default:
			return nil, fmt.Errorf("element %d: want a string or a number, not %s", i, Kind(e))
		}
		not[i] = exact{e}
	}
	if strs > 0 && nums > 0 {
		return nil, fmt.Errorf("the values must be all strings or all numbers, not a mix")
	}
	return anythingBut{not}, nil
}

// anythingButOperators build the matchers anything-but can negate.
var anythingButOperators = map[string]func(s string) (matcher, error){
	"prefix": func(s string) (matcher, error) { return prefix{s: s}, nonEmpty(s) },
	"suffix": func(s string) (matcher, error) { return suffix{s: s}, nonEmpty(s) },
	"equals-ignore-case": func(s string) (matcher, error) {
		return equalsIgnoreCase{s}, nil
	},
	"wildcard": func(s string) (matcher, error) {
		w, err := compileWildcard(s)
		if err != nil {
			return nil, fmt.Errorf("%q: %v", s, err)
		}
		return w, nil
	},
}

func nonEmpty(s string) error {
	if s == "" {
		return fmt.Errorf("an empty string would exclude every string")
	}
	return nil
}

func anythingButOperator(obj object) (matcher, error) {
	if len(obj) != 1 || anythingButOperators[obj[0].key] == nil {
		return nil, fmt.Errorf(`want one of prefix, suffix, equals-ignore-case or wildcard, as in {"prefix": "init"}`)
	}
	name := obj[0].key
	build := anythingButOperators[name]
	args, err := stringOrStrings(obj[0].val)
	if err != nil {
		return nil, fmt.Errorf("%s: %v", name, err)
	}
	not := make([]matcher, len(args))
	for i, s := range args {
		if not[i], err = build(s); err != nil {
			return nil, fmt.Errorf("%s: %v", name, err)
		}
	}
	return anythingBut{not}, nil
}

// stringOrStrings reads a string or a non-empty array of strings.
func stringOrStrings(v any) ([]string, error) {
	if s, ok := v.(string); ok {
		return []string{s}, nil
	}
	arr, ok := v.([]any)
	if !ok || len(arr) == 0 {
		return nil, fmt.Errorf("want a string or a non-empty array of strings, not %s", Kind(v))
	}
	out := make([]string, len(arr))
	for i, e := range arr {
		s, ok := e.(string)
		if !ok {
			return nil, fmt.Errorf("element %d: want a string, not %s", i, Kind(e))
		}
		out[i] = s
	}
	return out, nil
}

// compileNumeric reads the argument of numeric: one comparison [op, n], or
// a lower bound and an upper bound [">" or ">=", n, "<" or "<=", m].
func compileNumeric(v any) (matcher, error) {
	arr, ok := v.([]any)
	if !ok || (len(arr) != 2 && len(arr) != 4) {
		return nil, fmt.Errorf(`want [operator, number] or [">" or ">=", number, "<" or "<=", number], such as [">", 0, "<=", 5]`)
	}
	var m numeric
	op, n, err := comparison(arr, 0)
	if err != nil {
		return nil, err
	}
	if len(arr) == 2 {
		m.bound(op, n)
		return m, nil
	}
	if op != ">" && op != ">=" {
		return nil, fmt.Errorf("with two comparisons the first is a lower bound (> or >=), not %q", op)
	}
	m.bound(op, n)
	op2, n2, err := comparison(arr, 2)
	if err != nil {
		return nil, err
	}
	if op2 != "<" && op2 != "<=" {
		return nil, fmt.Errorf("the second comparison is an upper bound (< or <=), not %q", op2)
	}
	if n >= n2 {
		return nil, fmt.Errorf("the lower bound %v is not below the upper bound %v", n, n2)
	}
	m.bound(op2, n2)
	return m, nil
}

// comparison reads the operator and number at arr[i] and arr[i+1].
func comparison(arr []any, i int) (string, float64, error) {
	op, ok := arr[i].(string)
	if !ok {
		return "", 0, fmt.Errorf("element %d: want an operator (=, <, <=, >, >=), not %s", i, Kind(arr[i]))
	}
	switch op {
	case "=", "<", "<=", ">", ">=":
	default:
		return "", 0, fmt.Errorf("element %d: unknown operator %q (want =, <, <=, > or >=)", i, op)
	}
	num, ok := arr[i+1].(json.Number)
	if !ok {
		return "", 0, fmt.Errorf("element %d: %q needs a number, not %s", i+1, op, Kind(arr[i+1]))
	}
	f, err := strconv.ParseFloat(string(num), 64)
	if err != nil || math.IsInf(f, 0) {
		return "", 0, fmt.Errorf("element %d: %s is out of range", i+1, num)
	}
	return op, f, nil
}

// bound sets the bound a comparison gives.
func (m *numeric) bound(op string, n float64) {
	switch op {
	case "=":
		m.lo, m.hi, m.hasLo, m.hasHi, m.loIncl, m.hiIncl = n, n, true, true, true, true
	case ">", ">=":
		m.lo, m.hasLo, m.loIncl = n, true, op == ">="
	case "<", "<=":
		m.hi, m.hasHi, m.hiIncl = n, true, op == "<="
	}
}
