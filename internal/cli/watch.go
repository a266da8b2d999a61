package cli

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"time"

	"github.com/scangate/scangate/internal/pipeline"
)

// pollEvery is how often --wait, --follow and --watch ask the server
// again (a variable for the tests of watch's own logic).
var pollEvery = time.Second

// with returns a copy of g that prints to w.
func (g *globals) with(w io.Writer) *globals {
	c := *g
	c.stdout = w
	return &c
}

// sleep waits for d, or returns false when ctx ends first.
func sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}

// show prints what view returns once, in the output format; with watch,
// again each time it changes (see watch).
func (g *globals) show(ctx context.Context, watch bool, view func() (doc any, text string, err error)) error {
	if watch {
		return g.watch(ctx, view)
	}
	doc, text, err := view()
	if err != nil {
		return err
	}
	if g.structured() {
		return g.write(doc)
	}
	_, err = io.WriteString(g.stdout, text)
	return err
}

// watch prints what view returns each time it changes (its table text, or
// its document in json and yaml), until interrupted.
func (g *globals) watch(ctx context.Context, view func() (doc any, text string, err error)) error {
	last := ""
	for {
		doc, text, err := view()
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return err
		}
		if g.structured() {
			var b bytes.Buffer
			if err := g.with(&b).write(doc); err != nil {
				return err
			}
			text = b.String()
		}
		if text != last {
			if last != "" {
				fmt.Fprintf(g.stdout, "\n--- %s\n", time.Now().UTC().Format(time.RFC3339))
			}
			if _, err := io.WriteString(g.stdout, text); err != nil {
				return err
			}
			last = text
		}
		if !sleep(ctx, pollEvery) {
			return nil
		}
	}
}

// waitExecution prints an execution's stages as they change, and with
// follow its build log as it is written, until the execution ends (exit 1
// unless it succeeded) or its approval waits for a person.
func (g *globals) waitExecution(ctx context.Context, c *apiClient, id string, follow bool) error {
	seen := map[string]string{}
	var logOffset int64
	headed := false
	for {
		var ex pipeline.Execution
		if err := c.call(ctx, http.MethodGet, pathOf("executions", id), nil, nil, &ex); err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return err
		}
		if !headed && !g.structured() {
			fmt.Fprintf(g.stdout, "execution %s of %s: commit %.12s (%s)\n", ex.ID, ex.Pipeline, ex.Commit, ex.Trigger)
			headed = true
		}
		for _, st := range ex.Stages {
			key := st.Status + "\x00" + st.Message
			if seen[st.Name] == key {
				continue
			}
			seen[st.Name] = key
			if !g.structured() {
				fmt.Fprintf(g.stdout, "%s  %-8s  %-10s  %s\n", time.Now().UTC().Format(time.TimeOnly), st.Name, st.Status, oneLine(st.Message, 160))
			}
		}
		if follow && !g.structured() {
			n, err := c.logFrom(ctx, id, logOffset, g.stdout)
			if err != nil && ctx.Err() == nil {
				return err
			}
			logOffset += n
		}
		waiting := waitsForPerson(&ex)
		if ex.Status != pipeline.StateInProgress || waiting {
			if g.structured() {
				if err := g.write(ex); err != nil {
					return err
				}
			} else if ex.Approval != nil {
				fmt.Fprintln(g.stdout)
				printApproval(g.stdout, ex.Approval)
			}
			switch {
			case waiting:
				fmt.Fprintf(g.stderr, "execution %s waits for a person: scangate approval approve|reject %s --comment TEXT\n", ex.ID, ex.ID)
				return nil
			case ex.Status == pipeline.StateSucceeded:
				fmt.Fprintf(g.stderr, "execution %s Succeeded\n", ex.ID)
				return nil
			}
			fmt.Fprintf(g.stderr, "execution %s %s: %s\n", ex.ID, ex.Status, ex.Reason)
			return policyFailed{}
		}
		if !sleep(ctx, pollEvery) {
			return nil
		}
	}
}

// waitsForPerson reports whether an execution's approval is a person's to
// give now: the policy has had its say, and the mode wants a person.
func waitsForPerson(ex *pipeline.Execution) bool {
	a := ex.Approval
	if a == nil || a.Status != pipeline.StatePending || a.Policy == nil {
		return false
	}
	switch a.Mode {
	case pipeline.ModePerson:
		return true
	case pipeline.ModePolicyPerson:
		return a.Policy.Result == pipeline.VerdictPassed
	}
	return false
}

// logFrom copies the build log from offset on to w and returns how many
// bytes it copied.
func (c *apiClient) logFrom(ctx context.Context, id string, offset int64, w io.Writer) (int64, error) {
	resp, err := c.send(ctx, c.http, http.MethodGet, pathOf("executions", id, "log"), url.Values{"offset": {strconv.FormatInt(offset, 10)}}, nil)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	return io.Copy(w, resp.Body)
}
