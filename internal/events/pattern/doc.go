// Package pattern is EventBridge's event pattern language: a pattern is a
// JSON object shaped like the events it selects, each leaf an array of
// match values (exact values and the operators prefix, suffix,
// equals-ignore-case, anything-but, numeric, exists, wildcard and cidr),
// with "$or" for alternatives and dotted names as paths.
//
// It is pure logic, apart from the bus that stores and delivers events
// (package events), so that the CLI, the console's pattern tester and the
// bus all answer the same.
package pattern
