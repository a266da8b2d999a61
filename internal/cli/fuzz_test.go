package cli

import (
	"bytes"
	"testing"
)

// FuzzCredentialRequest: whatever git (or anyone) sends the credential
// helper is read within its bound or refused; nothing panics.
func FuzzCredentialRequest(f *testing.F) {
	f.Add([]byte("protocol=http\nhost=127.0.0.1:5000\npath=git/app.git\n\n"))
	f.Add([]byte("no equals sign\n"))
	f.Add(bytes.Repeat([]byte("a=b\n"), 20000))
	f.Fuzz(func(t *testing.T, data []byte) {
		attrs, err := readCredentialRequest(bytes.NewReader(data))
		if err == nil && len(attrs) > maxCredentialInput/2 {
			t.Errorf("%d attributes from %d bytes", len(attrs), len(data))
		}
	})
}

// FuzzClientConfig: a configuration file of any content is read or
// refused with an error; nothing panics.
func FuzzClientConfig(f *testing.F) {
	f.Add([]byte("current-context: a\ncontexts:\n  - {name: a, server: http://127.0.0.1:5000, token: sgt_x}\n"))
	f.Add([]byte("contexts: &a [*a]\n"))
	f.Add([]byte("unknown: 1\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		if len(data) > maxConfigSize {
			return // loadConfig refuses it before decoding
		}
		if c, err := decodeConfig(data); err == nil && c == nil {
			t.Error("no configuration and no error")
		}
	})
}
