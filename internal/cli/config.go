package cli

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"go.yaml.in/yaml/v3"
)

// The client's configuration: the servers the CLI has logged in to
// (contexts, as kubectl names them), each with its token, and which one is
// current. It holds secrets, so it is written 0600 in a 0700 folder.

// ConfigEnv names another configuration file (for tests and several
// identities on one account).
const ConfigEnv = "SCANGATE_CLIENT_CONFIG"

// maxConfigSize bounds the configuration file read.
const maxConfigSize = 1 << 20

// clientConfig is the file's content.
type clientConfig struct {
	CurrentContext string          `yaml:"current-context,omitempty"`
	Contexts       []clientContext `yaml:"contexts"`
}

// clientContext is one server with the token to present to it.
type clientContext struct {
	Name   string `yaml:"name"`
	Server string `yaml:"server"`
	Token  string `yaml:"token"`
	// CAFile is a PEM bundle of the certificate authorities the server's
	// certificate is checked against, instead of the system's.
	CAFile string `yaml:"ca-file,omitempty"`
	// TokenName and Role are what the server said of the token at
	// login, for context list.
	TokenName string `yaml:"token-name,omitempty"`
	Role      string `yaml:"role,omitempty"`
}

// configPath is $SCANGATE_CLIENT_CONFIG, else $XDG_CONFIG_HOME/scangate/config.yaml,
// else ~/.config/scangate/config.yaml.
func configPath() (string, error) {
	if p := os.Getenv(ConfigEnv); p != "" {
		return p, nil
	}
	dir := os.Getenv("XDG_CONFIG_HOME")
	if dir == "" {
		home, err := os.UserHomeDir()
		if err != nil {
			return "", fmt.Errorf("no configuration folder: set XDG_CONFIG_HOME or HOME: %w", err)
		}
		dir = filepath.Join(home, ".config")
	}
	return filepath.Join(dir, "scangate", "config.yaml"), nil
}

// loadConfig reads the configuration; a missing file is an empty one.
// warn receives a note when the file is readable by others.
func loadConfig(warn io.Writer) (*clientConfig, string, error) {
	path, err := configPath()
	if err != nil {
		return nil, "", err
	}
	fh, err := os.Open(path)
	if errors.Is(err, fs.ErrNotExist) {
		return &clientConfig{}, path, nil
	}
	if err != nil {
		return nil, path, fmt.Errorf("configuration %s: %w", path, err)
	}
	defer fh.Close()
	if fi, err := fh.Stat(); err == nil && fi.Mode().Perm()&0o077 != 0 && warn != nil {
		fmt.Fprintf(warn, "warning: %s holds tokens and is readable by others (%s): chmod 600 it\n", path, fi.Mode().Perm())
	}
	data, err := io.ReadAll(io.LimitReader(fh, maxConfigSize+1))
	if err != nil {
		return nil, path, fmt.Errorf("configuration %s: %w", path, err)
	}
	if len(data) > maxConfigSize {
		return nil, path, fmt.Errorf("configuration %s is larger than %d bytes", path, maxConfigSize)
	}
	c, err := decodeConfig(data)
	if err != nil {
		return nil, path, fmt.Errorf("configuration %s: %v", path, err)
	}
	return c, path, nil
}

// decodeConfig reads a configuration file's YAML; unknown fields are
// mistakes, said in a user's words.
func decodeConfig(data []byte) (*clientConfig, error) {
	var c clientConfig
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	if err := dec.Decode(&c); err != nil && !errors.Is(err, io.EOF) {
		return nil, yamlError(err)
	}
	return &c, nil
}

// save writes the configuration whole (a temporary file renamed over the
// old one), 0600 in a 0700 folder.
func (c *clientConfig) save(path string) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return fmt.Errorf("configuration folder: %w", err)
	}
	data, err := yaml.Marshal(c)
	if err != nil {
		return err
	}
	tmp, err := os.CreateTemp(filepath.Dir(path), ".config-*.yaml")
	if err != nil {
		return fmt.Errorf("configuration %s: %w", path, err)
	}
	defer os.Remove(tmp.Name())
	if err := tmp.Chmod(0o600); err != nil {
		tmp.Close()
		return err
	}
	if _, err := tmp.Write(data); err != nil {
		tmp.Close()
		return fmt.Errorf("configuration %s: %w", path, err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("configuration %s: %w", path, err)
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return fmt.Errorf("configuration %s: %w", path, err)
	}
	return nil
}

// find returns the context of that name, or nil.
func (c *clientConfig) find(name string) *clientContext {
	for i := range c.Contexts {
		if c.Contexts[i].Name == name {
			return &c.Contexts[i]
		}
	}
	return nil
}

// forServer returns the first context for server (a normalised URL), or
// nil.
func (c *clientConfig) forServer(server string) *clientContext {
	for i := range c.Contexts {
		if c.Contexts[i].Server == server {
			return &c.Contexts[i]
		}
	}
	return nil
}

// put adds or replaces a context.
func (c *clientConfig) put(ctx clientContext) {
	if old := c.find(ctx.Name); old != nil {
		*old = ctx
		return
	}
	c.Contexts = append(c.Contexts, ctx)
}

// remove deletes a context; the current one is then none.
func (c *clientConfig) remove(name string) bool {
	i := slices.IndexFunc(c.Contexts, func(x clientContext) bool { return x.Name == name })
	if i < 0 {
		return false
	}
	c.Contexts = slices.Delete(c.Contexts, i, i+1)
	if c.CurrentContext == name {
		c.CurrentContext = ""
	}
	return true
}

// contextName is the default name of a server's context: its host and
// port.
func contextName(server string) string {
	_, host, _ := strings.Cut(server, "://")
	return host
}
