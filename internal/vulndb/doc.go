// Package vulndb holds scangate's local vulnerability database: the advisory
// model shared by every feed, its storage in the scangate SQL database, and the
// query the scanner runs for each package it finds (Affected).
//
// The storage is our own rather than a library's: the scanners that publish a
// database (Trivy's BoltDB, Grype's SQLite) tie its schema to their release
// cycle and download it from their own hosts, which scangate must not depend
// on. Advisories are kept whole as JSON documents, with one row per affected
// (ecosystem, package) so that a query reads only what can match, and version
// order comes from osv-scalibr's semantic package.
package vulndb
