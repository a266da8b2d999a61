package cli

import (
	"bytes"
	"context"
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

// The commands that are clients of the server's REST API (cluster, taskdef,
// service, task) share this client. They run wherever the server can be
// reached, where the other commands work on the data folder directly: the
// first step of moving the whole CLI onto the API.

// defaultServer is where `scangate server` listens unless told otherwise.
const defaultServer = "http://127.0.0.1:5000"

// tokenEnv holds the API token. It is read from the environment, or from a
// file (--token-file), never from a flag's value: that would land in the
// shell's history and in every process listing.
const tokenEnv = "SCANGATE_TOKEN"

// clientHelp ends the help of every client command.
const clientHelp = `

This command is a client of a running scangate server, over its REST API:
--server names it (default ` + defaultServer + `, or SCANGATE_SERVER), and the
token comes from the SCANGATE_TOKEN environment variable or --token-file
FILE (make one with scangate token create --role deployer; reader tokens
only read). Unlike the commands that work on the data folder, it runs from
any machine that reaches the server.`

// serverFlags are the flags of the client commands.
type serverFlags struct {
	server    string
	tokenFile string
}

func (f *serverFlags) add(cmd *cobra.Command) {
	pf := cmd.PersistentFlags()
	pf.StringVar(&f.server, "server", defaultServer, "the scangate server's URL (env SCANGATE_SERVER)")
	pf.StringVar(&f.tokenFile, "token-file", "", "a file holding the API token (default: the SCANGATE_TOKEN environment variable)")
}

// apiClient calls the server's REST API.
type apiClient struct {
	base  string // http://host:port, without a trailing slash
	token string
	// http bounds a call; stream does not (logs --follow).
	http, stream *http.Client
}

// client makes the API client from the flags and the environment.
func (f *serverFlags) client() (*apiClient, error) {
	base, err := serverURL(f.server)
	if err != nil {
		return nil, usageError{err}
	}
	token, err := f.readToken()
	if err != nil {
		return nil, usageError{err}
	}
	return &apiClient{base: base, token: token, http: &http.Client{Timeout: 2 * time.Minute}, stream: &http.Client{}}, nil
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

func (f *serverFlags) readToken() (string, error) {
	if f.tokenFile != "" {
		fh, err := os.Open(f.tokenFile)
		if err != nil {
			return "", fmt.Errorf("--token-file: %w", err)
		}
		defer fh.Close()
		data, err := io.ReadAll(io.LimitReader(fh, 4097))
		if err != nil {
			return "", fmt.Errorf("--token-file: %w", err)
		}
		token := strings.TrimSpace(string(data))
		if len(data) > 4096 || strings.ContainsAny(token, " \t\r\n") {
			return "", fmt.Errorf("--token-file %s: want a file holding one token, as scangate token create prints it", f.tokenFile)
		}
		if token == "" {
			return "", fmt.Errorf("--token-file %s is empty: put a token in it (scangate token create prints one)", f.tokenFile)
		}
		return token, nil
	}
	token := strings.TrimSpace(os.Getenv(tokenEnv))
	if token == "" {
		return "", errors.New("no API token: set SCANGATE_TOKEN, or give --token-file FILE (scangate token create --name NAME --role deployer makes one)")
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
		return nil, internalError{fmt.Errorf("server %s is unreachable: %v (is scangate server running there? --server or SCANGATE_SERVER names it)", c.base, err)}
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
		return usageError{fmt.Errorf("server %s refused the token: %s (set SCANGATE_TOKEN or --token-file to a token the server knows)", c.base, msg)}
	case resp.StatusCode/100 == 4:
		return usageError{fmt.Errorf("server %s: %s", c.base, msg)}
	}
	return internalError{fmt.Errorf("server %s: %s (%s)", c.base, msg, resp.Status)}
}
