package docker

import (
	"errors"
	"testing"
)

// The engine's words for containerd timing out while it sets a container
// up (as CI's loaded engine said them) are tried again; a container's own
// failures are not.
func TestShimTimedOut(t *testing.T) {
	for _, c := range []struct {
		msg  string
		want bool
	}{
		{`Error response from daemon: failed to create shim task: failed to start io pipe copy: unable to copy pipes: containerd-shim: opening w/o fifo "/var/run/docker/containerd/dc05f41a/init-stdout" failed: context deadline exceeded`, true},
		{`Error response from daemon: failed to create shim task: OCI runtime create failed: runc create failed: unable to start container process: exec: "/app": stat /app: no such file or directory: unknown`, false},
		{`Error response from daemon: driver failed programming external connectivity on endpoint x: Bind for 127.0.0.1:8080 failed: port is already allocated`, false},
		{`context deadline exceeded`, false},
	} {
		if got := shimTimedOut(errors.New(c.msg)); got != c.want {
			t.Errorf("%.60s…: %v, want %v", c.msg, got, c.want)
		}
	}
}
