package api

import (
	"bytes"
	"encoding/json"
	"testing"
	"time"
)

// FuzzDecode feeds request bodies to the decoder every endpoint uses: it
// never panics, refuses what is over MaxBody, and what it accepts is one
// JSON value of the request's shape.
func FuzzDecode(f *testing.F) {
	f.Add([]byte(`{"name": "ci", "role": "pusher"}`))
	f.Add([]byte(`{"since": "2026-01-01T00:00:00Z", "rule": "r"}`))
	f.Add([]byte(`{"ids": [1, 2, 3]}`))
	f.Add([]byte(`{"name": "a"} {"name": "b"}`))
	f.Add([]byte(`[[[[[[[[[[[[[[[[[[[[`))
	f.Fuzz(func(t *testing.T, body []byte) {
		var req struct {
			Name  string    `json:"name"`
			Role  string    `json:"role"`
			Since time.Time `json:"since"`
			IDs   []int64   `json:"ids"`
		}
		err := decode(bytes.NewReader(body), &req)
		if err != nil {
			return
		}
		if len(body) > MaxBody {
			t.Fatalf("accepted %d bytes", len(body))
		}
		if !json.Valid(bytes.TrimSpace(body)) {
			t.Fatalf("accepted a body that is not one JSON value: %q", body)
		}
	})
}
