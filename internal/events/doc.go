// Package events defines the envelope every scangate event travels in and
// matches events against rules' event patterns.
//
// The envelope is Amazon EventBridge's (version, id, detail-type, source,
// account, time, region, resources, detail), and patterns follow
// EventBridge's event pattern language: a pattern is a JSON object shaped
// like the events it selects, each leaf an array of match values (exact
// values and the operators prefix, suffix, equals-ignore-case, anything-but,
// numeric, exists, wildcard and cidr), with "$or" for alternatives. The
// package is pure logic: it reads and writes no files and starts nothing.
package events
