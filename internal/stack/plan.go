package stack

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"sort"
	"strings"
	"time"
)

func digest(b []byte) string {
	sum := sha256.Sum256(b)
	return "sha256:" + hex.EncodeToString(sum[:])
}

// Entry is a resource a stack made, as its record keeps it.
type Entry struct {
	Kind Kind   `json:"kind"`
	Name string `json:"name"`
	// Digest is the digest of the body last applied: a resource whose
	// stack-file body has not changed since is left alone, whatever was
	// done to it since by other means (a service's desired count set by
	// hand, a task definition's revision made by a deploy).
	Digest string `json:"digest"`
	// Revisions are the task-definition revisions up registered.
	Revisions []int `json:"revisions,omitempty"`
}

// Key names the entry's resource among all kinds.
func (e Entry) Key() string { return string(e.Kind) + " " + e.Name }

// Record is what a stack made, kept by the server.
type Record struct {
	Name      string    `json:"name"`
	Resources []Entry   `json:"resources"`
	UpdatedAt time.Time `json:"updatedAt"`
}

func (r *Record) find(key string) *Entry {
	for i := range r.Resources {
		if r.Resources[i].Key() == key {
			return &r.Resources[i]
		}
	}
	return nil
}

// set records e in place of the entry of the same key.
func (r *Record) set(e Entry) {
	if x := r.find(e.Key()); x != nil {
		*x = e
		return
	}
	r.Resources = append(r.Resources, e)
}

func (r *Record) remove(key string) {
	out := r.Resources[:0]
	for _, e := range r.Resources {
		if e.Key() != key {
			out = append(out, e)
		}
	}
	r.Resources = out
}

// Action is what a plan does to a resource.
type Action string

// The actions.
const (
	Create Action = "create"
	Change Action = "change"
	Leave  Action = "leave"
	Delete Action = "delete"
)

// Step is one resource's part of a plan.
type Step struct {
	Action Action
	Kind   Kind
	Name   string
	// Resource is the stack file's (nil for a delete).
	Resource *Resource
	// Entry is the recorded one (nil for a resource the stack has not
	// made yet).
	Entry *Entry
	// Live tells whether the resource is on the server now.
	Live bool
	// Why says why, for the plan's reader.
	Why string
}

// Plan is what up or down does, in order.
type Plan struct {
	Stack string
	Steps []Step
}

// Count returns how many steps do a.
func (p *Plan) Count(a Action) int {
	n := 0
	for _, s := range p.Steps {
		if s.Action == a {
			n++
		}
	}
	return n
}

// Changes tells whether the plan changes anything.
func (p *Plan) Changes() bool { return p.Count(Leave) != len(p.Steps) }

// Print writes the plan, one line a step, then a summary.
func (p *Plan) Print(w io.Writer) {
	fmt.Fprintf(w, "stack %s: plan\n", p.Stack)
	for _, s := range p.Steps {
		fmt.Fprintf(w, "  %-7s %-16s %-28s %s\n", s.Action, s.Kind, s.Name, s.Why)
	}
	fmt.Fprintf(w, "%d to create, %d to change, %d to delete, %d left as they are\n",
		p.Count(Create), p.Count(Change), p.Count(Delete), p.Count(Leave))
}

// ErrConflict reports a resource the stack would make that exists and is
// not the stack's.
var ErrConflict = errors.New("exists and is not the stack's")

// ErrImmutable reports a change to a resource that cannot change in place.
var ErrImmutable = errors.New("cannot be changed in place")

// PlanUp works out what up does: live tells, by Key, which resources exist
// on the server. A resource of the stack file that the record does not
// have is created; one whose body changed since the record's digest is
// changed; one the record has and the file no longer names is deleted.
// A resource the stack would create but someone else made is a conflict:
// up never takes over what it did not make, so down never removes it.
func PlanUp(st *Stack, rec *Record, live map[string]bool) (*Plan, error) {
	if rec == nil {
		rec = &Record{Name: st.Name}
	}
	p := &Plan{Stack: st.Name}
	want := map[string]bool{}
	var errs []error
	// Deletions first, in reverse creation order: a resource removed from
	// the file goes before what replaces it is made.
	var gone []Entry
	for _, e := range rec.Resources {
		want[e.Key()] = false
		gone = append(gone, e)
	}
	for _, r := range st.Resources {
		delete(want, r.Key())
	}
	sortEntriesForDelete(gone)
	for i := range gone {
		e := gone[i]
		if _, removed := want[e.Key()]; !removed {
			continue
		}
		why := "removed from the stack file"
		if !live[e.Key()] {
			why = "removed from the stack file (already gone from the server)"
		}
		p.Steps = append(p.Steps, Step{Action: Delete, Kind: e.Kind, Name: e.Name, Entry: &e, Live: live[e.Key()], Why: why})
	}
	rs := append([]Resource(nil), st.Resources...)
	sortResources(rs)
	for i := range rs {
		r := rs[i]
		e := rec.find(r.Key())
		s := Step{Kind: r.Kind, Name: r.Name, Resource: &r, Live: live[r.Key()]}
		if e != nil {
			c := *e
			s.Entry = &c
		}
		switch {
		case e == nil && s.Live:
			errs = append(errs, fmt.Errorf("%s:%d: %s %s %w: give the stack's another name, or remove the server's (scangate down removes only what its stack made)",
				st.File, r.Line, r.Kind, r.Name, ErrConflict))
			continue
		case e == nil:
			s.Action, s.Why = Create, "new"
			if r.Content != "" {
				s.Why += "; its content pushed last, from " + r.Content
			}
		case !s.Live:
			s.Action, s.Why = Create, "the stack made it, and it is gone from the server: made again"
		case e.Digest == r.Digest:
			s.Action, s.Why = Leave, "unchanged since the last up"
		case !r.Kind.Mutable():
			errs = append(errs, fmt.Errorf("%s:%d: %s %s %w: remove it from the stack file and up, then add it again", st.File, r.Line, r.Kind, r.Name, ErrImmutable))
			continue
		default:
			s.Action, s.Why = Change, "changed in the stack file since the last up"
			if r.Kind == KindTaskDefinition {
				s.Why += ": registers a new revision"
			}
		}
		p.Steps = append(p.Steps, s)
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	return p, nil
}

// PlanDown works out what down does: delete what the record has, in
// reverse creation order.
func PlanDown(name string, rec *Record, live map[string]bool) *Plan {
	p := &Plan{Stack: name}
	if rec == nil {
		return p
	}
	es := append([]Entry(nil), rec.Resources...)
	sortEntriesForDelete(es)
	for i := range es {
		e := es[i]
		why := "made by the stack"
		if !live[e.Key()] {
			why = "made by the stack, already gone from the server"
		}
		p.Steps = append(p.Steps, Step{Action: Delete, Kind: e.Kind, Name: e.Name, Entry: &e, Live: live[e.Key()], Why: why})
	}
	return p
}

func sortEntriesForDelete(es []Entry) {
	sort.SliceStable(es, func(i, j int) bool {
		if es[i].Kind != es[j].Kind {
			return es[i].Kind.order() > es[j].Kind.order()
		}
		return es[i].Name < es[j].Name
	})
}

// Backend makes, changes and removes resources on a server, and keeps the
// stack's record there. The CLI implements it over the REST API.
type Backend interface {
	// Exists tells whether a resource is on the server.
	Exists(ctx context.Context, kind Kind, name string) (bool, error)
	// Create makes r and returns its record entry, and a secret to show
	// the user once (a token's), if any.
	Create(ctx context.Context, r Resource) (Entry, string, error)
	// Change brings the recorded resource e to r.
	Change(ctx context.Context, r Resource, e Entry) (Entry, error)
	// Delete removes the recorded resource e; purge also removes what it
	// made (a pipeline's images and executions).
	Delete(ctx context.Context, e Entry, purge bool) error
	// PushContent commits the folder dir and pushes it to the hosted
	// repository repo's main branch.
	PushContent(ctx context.Context, repo, dir string) error
	// Record returns the stack's record (nil if there is none).
	Record(ctx context.Context, name string) (*Record, error)
	// SaveRecord stores the stack's record.
	SaveRecord(ctx context.Context, rec *Record) error
	// DeleteRecord removes the stack's record.
	DeleteRecord(ctx context.Context, name string) error
}

// Observe asks the backend which of the resources of the stack and of the
// record exist, by Key.
func Observe(ctx context.Context, b Backend, st *Stack, rec *Record) (map[string]bool, error) {
	live := map[string]bool{}
	ask := func(k Kind, name string) error {
		key := string(k) + " " + name
		if _, done := live[key]; done {
			return nil
		}
		ok, err := b.Exists(ctx, k, name)
		if err != nil {
			return fmt.Errorf("%s %s: %w", k, name, err)
		}
		live[key] = ok
		return nil
	}
	if st != nil {
		for _, r := range st.Resources {
			if err := ask(r.Kind, r.Name); err != nil {
				return nil, err
			}
		}
	}
	if rec != nil {
		for _, e := range rec.Resources {
			if err := ask(e.Kind, e.Name); err != nil {
				return nil, err
			}
		}
	}
	return live, nil
}

// Apply carries out an up plan, saving the record after each step so that
// an up cut short leaves a record of what it made. A repository created
// with content gets it last, once the pipelines that build it exist: its
// first commit runs through them, as the seed's does.
func Apply(ctx context.Context, b Backend, p *Plan, rec *Record, out io.Writer) error {
	if rec == nil {
		rec = &Record{Name: p.Stack}
	}
	save := func() error {
		rec.UpdatedAt = time.Now().UTC()
		if err := b.SaveRecord(ctx, rec); err != nil {
			return fmt.Errorf("stack %s: save its record: %w", p.Stack, err)
		}
		return nil
	}
	type seed struct{ repo, dir string }
	var seeds []seed
	for _, s := range p.Steps {
		switch s.Action {
		case Leave:
			continue
		case Delete:
			if s.Live {
				if err := b.Delete(ctx, *s.Entry, false); err != nil {
					return fmt.Errorf("delete %s %s: %w", s.Kind, s.Name, err)
				}
			}
			rec.remove(s.Entry.Key())
			fmt.Fprintf(out, "deleted %s %s\n", s.Kind, s.Name)
		case Create:
			e, secret, err := b.Create(ctx, *s.Resource)
			if err != nil {
				return fmt.Errorf("create %s %s (stack file line %d): %w", s.Kind, s.Name, s.Resource.Line, err)
			}
			e.Kind, e.Name, e.Digest = s.Kind, s.Name, s.Resource.Digest
			rec.set(e)
			fmt.Fprintf(out, "created %s %s\n", s.Kind, s.Name)
			if secret != "" {
				fmt.Fprintf(out, "  its secret, shown this once: %s\n", secret)
			}
			if s.Resource.Content != "" {
				seeds = append(seeds, seed{s.Name, s.Resource.Content})
			}
		case Change:
			e, err := b.Change(ctx, *s.Resource, *s.Entry)
			if err != nil {
				return fmt.Errorf("change %s %s: %w", s.Kind, s.Name, err)
			}
			e.Kind, e.Name, e.Digest = s.Kind, s.Name, s.Resource.Digest
			rec.set(e)
			fmt.Fprintf(out, "changed %s %s\n", s.Kind, s.Name)
		}
		if err := save(); err != nil {
			return err
		}
	}
	for _, sd := range seeds {
		if err := b.PushContent(ctx, sd.repo, sd.dir); err != nil {
			return fmt.Errorf("repository %s: push its content from %s: %w", sd.repo, sd.dir, err)
		}
		fmt.Fprintf(out, "pushed %s to repository %s (branch main)\n", sd.dir, sd.repo)
	}
	if !p.Changes() {
		fmt.Fprintf(out, "stack %s: nothing to do\n", p.Stack)
	}
	return nil
}

// Destroy carries out a down plan and removes the record. A step that
// fails stops it; the record keeps what is left, so down can be run again.
func Destroy(ctx context.Context, b Backend, p *Plan, rec *Record, purge bool, out io.Writer) error {
	if rec == nil {
		return nil
	}
	for _, s := range p.Steps {
		if s.Live {
			if err := b.Delete(ctx, *s.Entry, purge); err != nil {
				return fmt.Errorf("delete %s %s: %w", s.Kind, s.Name, err)
			}
		}
		rec.remove(s.Entry.Key())
		rec.UpdatedAt = time.Now().UTC()
		if err := b.SaveRecord(ctx, rec); err != nil {
			return fmt.Errorf("stack %s: save its record: %w", p.Stack, err)
		}
		fmt.Fprintf(out, "deleted %s %s\n", s.Kind, s.Name)
	}
	if err := b.DeleteRecord(ctx, p.Stack); err != nil {
		return fmt.Errorf("stack %s: delete its record: %w", p.Stack, err)
	}
	fmt.Fprintf(out, "stack %s: down\n", p.Stack)
	return nil
}

// SplitService splits a service resource's name, CLUSTER/SERVICE.
func SplitService(name string) (cluster, service string) {
	cluster, service, _ = strings.Cut(name, "/")
	return cluster, service
}
