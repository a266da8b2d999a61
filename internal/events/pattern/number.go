package pattern

import (
	"encoding/json"
	"strconv"
	"strings"
)

// decimal is a JSON number in a canonical form, so that numbers equal in
// value compare equal however they are written: 300, 300.0 and 3.0e2 are all
// 0.3 × 10³, {digits: "3", exp: 3}. Zero is {} whatever its sign.
type decimal struct {
	neg    bool
	digits string // significant digits, without leading or trailing zeros
	exp    int64  // the value is 0.digits × 10^exp
}

// parseDecimal reads a JSON number (as encoding/json has checked it). It
// reports false for an exponent too large to represent, which only text
// equality can then compare.
func parseDecimal(n json.Number) (decimal, bool) {
	s := string(n)
	var d decimal
	if strings.HasPrefix(s, "-") {
		d.neg, s = true, s[1:]
	}
	mantissa, exponent, _ := strings.Cut(strings.ToLower(s), "e")
	var exp int64
	if exponent != "" {
		e, err := strconv.ParseInt(exponent, 10, 64)
		if err != nil || e > 1<<40 || e < -(1<<40) {
			return decimal{}, false
		}
		exp = e
	}
	whole, frac, _ := strings.Cut(mantissa, ".")
	digits := whole + frac
	exp += int64(len(whole))
	trimmed := strings.TrimLeft(digits, "0")
	exp -= int64(len(digits) - len(trimmed))
	d.digits = strings.TrimRight(trimmed, "0")
	if d.digits == "" {
		return decimal{}, true
	}
	d.exp = exp
	return d, true
}

// numbersEqual compares two JSON numbers by value.
func numbersEqual(a, b json.Number) bool {
	if a == b {
		return true
	}
	da, okA := parseDecimal(a)
	db, okB := parseDecimal(b)
	return okA && okB && da == db
}

// float reads a JSON number as a float64 for numeric comparisons; one too
// large for a float64 is ±Inf, which still compares correctly with any
// finite bound.
func float(n json.Number) float64 {
	f, _ := strconv.ParseFloat(string(n), 64)
	return f
}
