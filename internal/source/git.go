package source

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strconv"
	"strings"
)

// gitCmd describes one run of the git binary.
type gitCmd struct {
	dir    string   // the working directory, often a bare repository
	args   []string // git's arguments
	config []kv     // configuration given through the environment
	env    []string // more environment variables
	stdout io.Writer
	redact func(string) string // scrubs secrets from the error text
}

type kv struct{ key, value string }

// keptEnv are the variables of the server's environment git may see. GIT_*
// variables of the operator's shell (GIT_DIR above all) are not passed on,
// except the ones that choose how SSH runs.
var keptEnv = map[string]bool{
	"GIT_SSH": true, "GIT_SSH_COMMAND": true, "GIT_SSH_VARIANT": true,
}

// gitEnv is the environment of every git command: no system or user
// configuration (so that an operator's url.insteadOf or hooks do not change
// what scangate does), no prompts, and the given configuration.
func gitEnv(config []kv) []string {
	var env []string
	for _, e := range os.Environ() {
		k, _, _ := strings.Cut(e, "=")
		if strings.HasPrefix(k, "GIT_") && !keptEnv[k] {
			continue
		}
		env = append(env, e)
	}
	env = append(env,
		"GIT_CONFIG_NOSYSTEM=1",
		"GIT_CONFIG_GLOBAL="+os.DevNull,
		"GIT_TERMINAL_PROMPT=0",
		"GIT_ASKPASS=",
		"SSH_ASKPASS=",
		"LC_ALL=C",
	)
	return append(env, ConfigEnv(config)...)
}

// ConfigEnv gives git configuration through GIT_CONFIG_COUNT (git 2.31),
// which other processes cannot read from the command line.
func ConfigEnv(config []kv) []string {
	if len(config) == 0 {
		return nil
	}
	env := []string{"GIT_CONFIG_COUNT=" + strconv.Itoa(len(config))}
	for i, c := range config {
		n := strconv.Itoa(i)
		env = append(env, "GIT_CONFIG_KEY_"+n+"="+c.key, "GIT_CONFIG_VALUE_"+n+"="+c.value)
	}
	return env
}

// run runs git and returns its output (when c.stdout is nil). A failure's
// error carries git's last lines of standard error.
func (c gitCmd) run(ctx context.Context) ([]byte, error) {
	cmd := exec.CommandContext(ctx, "git", c.args...)
	cmd.Dir = c.dir
	cmd.Env = append(gitEnv(c.config), c.env...)
	var out bytes.Buffer
	stderr := &tailBuffer{max: 4096}
	cmd.Stdout = &out
	if c.stdout != nil {
		cmd.Stdout = c.stdout
	}
	cmd.Stderr = stderr
	if err := cmd.Run(); err != nil {
		msg := strings.TrimSpace(stderr.String())
		if c.redact != nil {
			msg = c.redact(msg)
		}
		if ctx.Err() != nil {
			err = ctx.Err()
		}
		if msg == "" {
			return nil, fmt.Errorf("git %s: %w", c.args[0], err)
		}
		return nil, fmt.Errorf("git %s: %w: %s", c.args[0], err, msg)
	}
	return out.Bytes(), nil
}

// tailBuffer keeps the last max bytes written to it.
type tailBuffer struct {
	max int
	buf []byte
}

func (b *tailBuffer) Write(p []byte) (int, error) {
	b.buf = append(b.buf, p...)
	if len(b.buf) > b.max {
		b.buf = b.buf[len(b.buf)-b.max:]
	}
	return len(p), nil
}

func (b *tailBuffer) String() string { return string(b.buf) }
