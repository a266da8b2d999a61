// Command hook is the seed walkthrough's webhook receiver, in the place of
// the seed's notification Lambda: it prints one line per event scangate
// delivers to it (a rule's webhook target), after checking the event's
// signature with the target's secret.
//
//	hook ADDR-FILE SECRET    listen on 127.0.0.1:0, write the address to ADDR-FILE
package main

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"time"
)

func main() {
	if len(os.Args) != 3 {
		fmt.Fprintln(os.Stderr, "usage: hook ADDR-FILE SECRET")
		os.Exit(2)
	}
	secret := []byte(os.Args[2])
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		fmt.Fprintln(os.Stderr, "hook:", err)
		os.Exit(1)
	}
	if err := os.WriteFile(os.Args[1], []byte(ln.Addr().String()), 0o600); err != nil {
		fmt.Fprintln(os.Stderr, "hook:", err)
		os.Exit(1)
	}
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, err := io.ReadAll(io.LimitReader(r.Body, 1<<20))
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		mac := hmac.New(sha256.New, secret)
		mac.Write(body)
		if !hmac.Equal([]byte(r.Header.Get("X-Scangate-Signature-256")), []byte("sha256="+hex.EncodeToString(mac.Sum(nil)))) {
			http.Error(w, "bad signature", http.StatusUnauthorized)
			return
		}
		var e struct {
			DetailType string         `json:"detail-type"`
			Detail     map[string]any `json:"detail"`
		}
		_ = json.Unmarshal(body, &e)
		fmt.Printf("webhook (rule %s): %s: pipeline %v, stage %v %v: %v\n", r.Header.Get("X-Scangate-Rule"),
			e.DetailType, e.Detail["pipeline"], e.Detail["stage"], e.Detail["state"], e.Detail["message"])
		w.WriteHeader(http.StatusNoContent)
	})
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 5 * time.Second}
	_ = srv.Serve(ln)
}
