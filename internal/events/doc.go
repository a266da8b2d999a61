// Package events is scangate's event bus: the envelope every event travels
// in (Amazon EventBridge's: version, id, detail-type, source, account,
// time, region, resources, detail), the event log, rules and their
// targets, and delivery to webhooks and built-in handlers with retries,
// a circuit breaker per URL and dead letters.
//
// The pattern language rules are written in is package pattern, pure logic
// that stores and delivers nothing.
package events
