package cli

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"strings"
	"time"

	"github.com/spf13/cobra"
)

// Every command but the few local ones (server, scan, db, key, cache,
// and the first admin's token create) is a client of a scangate server's
// REST API, so it runs wherever the server can be reached: the server's
// machine, a laptop, a build runner. Which server and which token:
//
//  1. --server (or SCANGATE_SERVER), else the --context's server, else the
//     current context's (scangate login sets it), else
//     http://127.0.0.1:5000;
//  2. the token of --token-file, else of SCANGATE_TOKEN, else of the
//     context whose server that is. A token never comes from a flag's
//     value: it would land in the shell's history and every process
//     listing.

// defaultServer is where `scangate server` listens unless told otherwise.
const defaultServer = "http://127.0.0.1:5000"

// tokenEnv holds the API token for CI, where no one logs in.
const tokenEnv = "SCANGATE_TOKEN"

// maxTokenSize bounds a token read from a file or standard input.
const maxTokenSize = 4096

// clientHelp ends the help of every client command.
const clientHelp = `

This command is a client of a scangate server, over its REST API: the
server is --server (or SCANGATE_SERVER), else the current context's
(scangate login URL sets one; scangate context use switches), else
` + defaultServer + `. The token is --token-file's, else SCANGATE_TOKEN's,
else the context's. It runs from any machine that reaches the server.`

// localHelp ends the help of the local commands.
const localHelp = `

This command is local: it works on the data folder (--data-dir, default
$XDG_DATA_HOME/scangate, else ~/.local/share/scangate) itself, not through a
server, so it runs where that folder is.`

// serverFlags are the flags of the client commands.
type serverFlags struct {
	server    string
	tokenFile string
	context   string
	caFile    string
}

func (f *serverFlags) add(cmd *cobra.Command) {
	pf := cmd.PersistentFlags()
	pf.StringVar(&f.server, "server", "", "the scangate server's URL (env SCANGATE_SERVER; default: the current context's, else "+defaultServer+")")
	pf.StringVar(&f.tokenFile, "token-file", "", "a file holding the API token (default: SCANGATE_TOKEN, else the context's token)")
	pf.StringVar(&f.context, "context", "", "the context (a server logged in to) to use instead of the current one (env SCANGATE_CONTEXT)")
	pf.StringVar(&f.caFile, "ca-file", "", "PEM certificates of the authorities to check the server's TLS certificate with, instead of the system's")
}

// apiClient calls the server's REST API.
type apiClient struct {
	base  string // http://host:port, without a trailing slash
	token string
	// tokenFrom says where the token came from, for error messages.
	tokenFrom string
	// http bounds a call; stream does not (logs --follow).
	http, stream *http.Client
}

// client makes the API client from the flags, the environment and the
// configuration file; warn receives notes about the file.
func (f *serverFlags) client(warn io.Writer) (*apiClient, error) {
	cfg, path, err := loadConfig(warn)
	if err != nil {
		return nil, usageError{err}
	}
	var cx *clientContext
	if f.context != "" {
		if cx = cfg.find(f.context); cx == nil {
			return nil, usageError{fmt.Errorf("--context %s: no such context in %s (scangate context list shows them; scangate login URL makes one)", f.context, path)}
		}
	} else if cfg.CurrentContext != "" {
		cx = cfg.find(cfg.CurrentContext)
	}
	server := f.server
	if server == "" {
		server = defaultServer
		if cx != nil {
			server = cx.Server
		}
	}
	base, err := serverURL(server)
	if err != nil {
		return nil, usageError{err}
	}
	// A context's token goes only to that context's server.
	if cx != nil && cx.Server != base {
		if f.context != "" {
			return nil, usageError{fmt.Errorf("--context %s is for %s, --server names %s: give one of them", f.context, cx.Server, base)}
		}
		cx = nil
	}
	if cx == nil {
		cx = cfg.forServer(base)
	}
	c := &apiClient{base: base}
	if err := f.readToken(c, cx); err != nil {
		return nil, usageError{err}
	}
	caFile := f.caFile
	if caFile == "" && cx != nil {
		caFile = cx.CAFile
	}
	tr, err := httpTransport(caFile)
	if err != nil {
		return nil, usageError{err}
	}
	c.http = &http.Client{Timeout: 2 * time.Minute, Transport: tr}
	c.stream = &http.Client{Transport: tr}
	return c, nil
}

// httpTransport is the default transport, checking the server's certificate against
// the authorities in caFile when one is given.
func httpTransport(caFile string) (*http.Transport, error) {
	tr := http.DefaultTransport.(*http.Transport).Clone()
	if caFile == "" {
		return tr, nil
	}
	data, err := readSmallFile(caFile)
	if err != nil {
		return nil, fmt.Errorf("--ca-file: %w", err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(data) {
		return nil, fmt.Errorf("--ca-file %s: no PEM certificate in it", caFile)
	}
	tr.TLSClientConfig = &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}
	return tr, nil
}

// serverURL checks --server: a scheme and a host, nothing else ("HOST:PORT"
// alone means http).
func serverURL(s string) (string, error) {
	if !strings.Contains(s, "://") {
		s = "http://" + s
	}
	u, err := url.Parse(s)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.User != nil || u.RawQuery != "" || u.Fragment != "" ||
		strings.Trim(u.Path, "/") != "" {
		return "", fmt.Errorf("--server %q: want the server's URL, such as %s", s, defaultServer)
	}
	return u.Scheme + "://" + u.Host, nil
}

// errNoToken reports that no token was found for the server.
var errNoToken = errors.New("no token")

// readToken sets c's token: --token-file (a flag wins over the
// environment), else SCANGATE_TOKEN, else the context's.
func (f *serverFlags) readToken(c *apiClient, cx *clientContext) error {
	if f.tokenFile != "" {
		fh, err := os.Open(f.tokenFile)
		if err != nil {
			return fmt.Errorf("--token-file: %w", err)
		}
		defer fh.Close()
		token, err := readToken(fh)
		if err != nil {
			return fmt.Errorf("--token-file %s: %w", f.tokenFile, err)
		}
		c.token, c.tokenFrom = token, "--token-file "+f.tokenFile
		return nil
	}
	if token := strings.TrimSpace(os.Getenv(tokenEnv)); token != "" {
		c.token, c.tokenFrom = token, tokenEnv
		return nil
	}
	if cx != nil && cx.Token != "" {
		c.token, c.tokenFrom = cx.Token, "context "+cx.Name
		return nil
	}
	return fmt.Errorf("%w for server %s: run scangate login %s, or set SCANGATE_TOKEN (for CI), or give --token-file FILE", errNoToken, c.base, c.base)
}

// readToken reads one token from r: what token create prints, with or
// without a line end.
func readToken(r io.Reader) (string, error) {
	data, err := io.ReadAll(io.LimitReader(r, maxTokenSize+1))
	if err != nil {
		return "", err
	}
	token := strings.TrimSpace(string(data))
	if len(data) > maxTokenSize || strings.ContainsAny(token, " \t\r\n") {
		return "", errors.New("want one token, as scangate token create prints it")
	}
	if token == "" {
		return "", errors.New("no token in it (scangate token create prints one)")
	}
	return token, nil
}

// rawBody is a request body sent as it is.
type rawBody struct {
	contentType string
	data        []byte
}

// call sends a request to the API and decodes a 2xx answer's JSON into out
// (when out is not nil). body is nil, a rawBody, or a value sent as JSON.
// A refusal becomes an error that names the server and says why as the
// server said it: a usage error for a 4xx (exit 2), an internal one for
// the rest (exit 3).
func (c *apiClient) call(ctx context.Context, method, path string, query url.Values, body, out any) error {
	resp, err := c.send(ctx, c.http, method, path, query, body)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if out == nil {
		_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 1<<20))
		return nil
	}
	if err := json.NewDecoder(resp.Body).Decode(out); err != nil {
		return internalError{fmt.Errorf("server %s: %s %s: an answer that is not the API's JSON: %v", c.base, method, path, err)}
	}
	return nil
}

// send sends a request and returns a 2xx answer, whose body the caller
// closes; any other answer becomes the error call describes.
func (c *apiClient) send(ctx context.Context, hc *http.Client, method, path string, query url.Values, body any) (*http.Response, error) {
	var rd io.Reader
	contentType := ""
	switch b := body.(type) {
	case nil:
	case rawBody:
		rd, contentType = bytes.NewReader(b.data), b.contentType
	default:
		data, err := json.Marshal(b)
		if err != nil {
			return nil, internalError{err}
		}
		rd, contentType = bytes.NewReader(data), "application/json"
	}
	u := c.base + path
	if len(query) > 0 {
		u += "?" + query.Encode()
	}
	req, err := http.NewRequestWithContext(ctx, method, u, rd)
	if err != nil {
		return nil, internalError{err}
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	req.Header.Set("Authorization", "Bearer "+c.token)
	resp, err := hc.Do(req)
	if err != nil {
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err
		}
		return nil, internalError{fmt.Errorf("server %s is unreachable: %v (is scangate server running there? --server, SCANGATE_SERVER or the current context names it)", c.base, err)}
	}
	if resp.StatusCode/100 == 2 {
		return resp, nil
	}
	defer resp.Body.Close()
	return nil, c.refusal(resp)
}

// refusal turns an answer that is not a success into an error.
func (c *apiClient) refusal(resp *http.Response) error {
	data, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	var e struct {
		Error string `json:"error"`
	}
	msg := ""
	if json.Unmarshal(data, &e) == nil && e.Error != "" {
		msg = e.Error
	} else {
		// Not the API's error: a proxy's page, or not scangate at all.
		msg = fmt.Sprintf("%s: %s", resp.Status, oneLine(string(data), 200))
	}
	switch {
	case resp.StatusCode == http.StatusUnauthorized:
		return usageError{fmt.Errorf("server %s: 401: the token (from %s) was refused: %s (scangate login %s stores a new one)", c.base, c.tokenFrom, msg, c.base)}
	case resp.StatusCode/100 == 4:
		return usageError{fmt.Errorf("server %s: %d: %s", c.base, resp.StatusCode, msg)}
	}
	return internalError{fmt.Errorf("server %s: %s (%s)", c.base, msg, resp.Status)}
}
