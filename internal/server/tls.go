package server

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"os/signal"
	"sync/atomic"
	"syscall"
	"time"
)

// certificate is the server's TLS certificate, read again from its files
// on SIGHUP so that a renewed certificate (certbot, cert-manager) is taken
// without a restart; the connections already open keep the one they have.
type certificate struct {
	certFile, keyFile string
	cur               atomic.Pointer[tls.Certificate]
}

func loadCertificate(certFile, keyFile string) (*certificate, error) {
	if certFile == "" || keyFile == "" {
		return nil, errors.New("TLS needs both --tls-cert and --tls-key")
	}
	c := &certificate{certFile: certFile, keyFile: keyFile}
	if _, err := c.reload(); err != nil {
		return nil, err
	}
	return c, nil
}

// reload reads the files again; on an error the previous certificate stays.
func (c *certificate) reload() (*x509.Certificate, error) {
	pair, err := tls.LoadX509KeyPair(c.certFile, c.keyFile)
	if err != nil {
		return nil, fmt.Errorf("TLS certificate %s, key %s: %w", c.certFile, c.keyFile, err)
	}
	leaf := pair.Leaf
	if leaf == nil {
		if leaf, err = x509.ParseCertificate(pair.Certificate[0]); err != nil {
			return nil, fmt.Errorf("TLS certificate %s: %w", c.certFile, err)
		}
	}
	c.cur.Store(&pair)
	return leaf, nil
}

func (c *certificate) get(*tls.ClientHelloInfo) (*tls.Certificate, error) { return c.cur.Load(), nil }

// tlsConfig serves c over TLS 1.2 and later; http.Server.ServeTLS adds
// HTTP/2 to what it offers.
func (c *certificate) tlsConfig() *tls.Config {
	return &tls.Config{MinVersion: tls.VersionTLS12, GetCertificate: c.get}
}

// reloadOnHangup reloads c at each SIGHUP until ctx is done.
func (c *certificate) reloadOnHangup(ctx context.Context, log *slog.Logger) {
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)
	for {
		select {
		case <-ctx.Done():
			return
		case <-hup:
			leaf, err := c.reload()
			if err != nil {
				log.Error("SIGHUP: the TLS certificate could not be read again; the previous one is still served", "err", err)
				continue
			}
			logCertificate(log, "SIGHUP: TLS certificate reloaded", leaf)
		}
	}
}

func logCertificate(log *slog.Logger, msg string, leaf *x509.Certificate) {
	args := []any{"subject", leaf.Subject.String(), "dns", leaf.DNSNames, "ips", leaf.IPAddresses,
		"not_after", leaf.NotAfter.UTC().Format(time.RFC3339), "serial", leaf.SerialNumber.String()}
	if time.Now().After(leaf.NotAfter) {
		log.Warn(msg+" (it has expired)", args...)
		return
	}
	log.Info(msg, args...)
}

// checkPlaintext refuses plain HTTP on an address other than loopback:
// tokens travel in every request, as Basic passwords or Bearer tokens, and
// must not cross a network in clear text unless the operator says so
// (a TLS-terminating proxy on another machine, a private test network).
func checkPlaintext(bound net.Addr, insecure bool, log *slog.Logger) error {
	tcp, ok := bound.(*net.TCPAddr)
	if ok && tcp.IP.IsLoopback() {
		return nil
	}
	if !insecure {
		return fmt.Errorf("refusing to serve plain HTTP on %s, which is not a loopback address: "+
			"give --tls-cert and --tls-key, listen on 127.0.0.1 behind a TLS proxy, or say --insecure-plaintext", bound)
	}
	log.Warn("INSECURE: serving plain HTTP on a non-loopback address (--insecure-plaintext); "+
		"tokens and images cross the network unencrypted and can be read or changed by anyone on the path", "addr", bound.String())
	return nil
}
