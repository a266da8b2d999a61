// Package nettest gives tests a free TCP port of 127.0.0.1, for programs
// that take a port number rather than a listener (git daemon, a server
// started as a process). It links nothing else, so that any package's
// tests may use it without linking the server.
package nettest

import (
	"net"
	"testing"
)

// FreePort is a TCP port of 127.0.0.1 that was free a moment ago.
func FreePort(t testing.TB) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}
