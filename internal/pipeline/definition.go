package pipeline

import (
	"bytes"
	"errors"
	"fmt"
	"net/url"
	"path"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/scangate/scangate/internal/lazyregexp"
	"github.com/scangate/scangate/internal/policy"
	"github.com/scangate/scangate/internal/source"
)

// MaxDefinitionSize is the most bytes a pipeline definition may have.
const MaxDefinitionSize = 64 << 10

// Approval modes: who decides an approval.
const (
	ModePolicy       = "policy"
	ModePolicyPerson = "policy+person"
	ModePerson       = "person"
)

// DefaultPromote is the tag an approved image gets.
const DefaultPromote = "latest"

// tagRe is the distribution specification's tag grammar.
var tagRe = lazyregexp.New(`^[a-zA-Z0-9_][a-zA-Z0-9._-]{0,127}$`)

// DefaultApprovalTimeout is how long an approval waits for a decision.
const DefaultApprovalTimeout = 7 * 24 * time.Hour

// A Definition is a pipeline as its YAML file describes it.
type Definition struct {
	Name     string       `yaml:"name" json:"name"`
	Source   SourceSpec   `yaml:"source" json:"source"`
	Build    BuildSpec    `yaml:"build" json:"build"`
	Approval ApprovalSpec `yaml:"approval" json:"approval"`
	Deploy   *DeploySpec  `yaml:"deploy,omitempty" json:"deploy,omitempty"`
	// Version is set when the definition is stored: 1 for the first, one
	// more for each change.
	Version int `yaml:"-" json:"version"`

	// sealed holds the definition's secrets while they are sealed (see
	// secrets.go).
	sealed string
}

// SourceSpec names where commits come from: a repository hosted by
// scangate, or an external git URL that is polled or that sends webhooks.
type SourceSpec struct {
	Repository string `yaml:"repository,omitempty" json:"repository,omitempty"`
	URL        string `yaml:"url,omitempty" json:"url,omitempty"`
	Branch     string `yaml:"branch" json:"branch"`
	// Poll is how often an external repository is asked for its branch
	// head; zero means webhooks only.
	Poll Duration `yaml:"poll,omitempty" json:"poll,omitempty"`
	// WebhookSecret checks the push webhooks of GitHub, GitLab or Gitea.
	WebhookSecret string `yaml:"webhook-secret,omitempty" json:"webhook-secret,omitempty"`
}

// BuildSpec says how to build the image.
type BuildSpec struct {
	Context    string            `yaml:"context,omitempty" json:"context,omitempty"`
	Dockerfile string            `yaml:"dockerfile,omitempty" json:"dockerfile,omitempty"`
	Args       map[string]string `yaml:"args,omitempty" json:"args,omitempty"`
	// SecretArgs are build args whose values are secrets (a registry
	// token, say): they are sealed at rest, never shown, and taken out of
	// the build log. Docker's classic builder still records the values
	// of the args a RUN step uses in the image's history, so a secret
	// that must not reach the image belongs in a multi-stage build's
	// first stage.
	SecretArgs map[string]string `yaml:"secret-args,omitempty" json:"secret-args,omitempty"`
	// Network is the network the build's RUN steps use: bridge (Docker's
	// default, which cannot reach the server on the host's loopback) or
	// none. Host networking is not offered.
	Network string `yaml:"network,omitempty" json:"network,omitempty"`
	// Repository is the image repository in scangate's registry; the image
	// is tagged with the commit SHA, and with the approval's promote tag
	// ("latest") only once it is approved.
	Repository string `yaml:"repository" json:"repository"`
}

// ApprovalSpec is the vulnerability gate.
type ApprovalSpec struct {
	// Mode says who decides: policy (the evaluator), policy+person (the
	// policy's rejection ends the stage; its approval still waits for a
	// person) or person (a person decides, shown the findings).
	Mode string `yaml:"mode,omitempty" json:"mode,omitempty"`
	// TwoPerson refuses the approval or override of the token that pushed
	// the commit or started the execution: nobody lets their own change
	// through.
	TwoPerson bool `yaml:"two-person,omitempty" json:"two-person,omitempty"`
	// Promote is the tag moved to the image once it is approved
	// ("latest"); the build tags only the commit SHA, so that a pull of
	// the promoted tag never gets an image the gate has not approved.
	Promote string     `yaml:"promote,omitempty" json:"promote,omitempty"`
	Policy  PolicySpec `yaml:"policy" json:"policy"`
	// Timeout is how long the stage waits for a decision before it fails.
	Timeout Duration `yaml:"timeout,omitempty" json:"timeout,omitempty"`
	// Notify names the rule that tells people of Approval Requested events
	// (a rule of the event bus, with webhook targets).
	Notify string `yaml:"notify,omitempty" json:"notify,omitempty"`
}

// PolicySpec is the approval's policy: thresholds per severity, and
// exceptions.
type PolicySpec struct {
	Thresholds    map[string]int  `yaml:"thresholds" json:"thresholds"`
	IgnoreUnfixed bool            `yaml:"ignore-unfixed,omitempty" json:"ignore-unfixed,omitempty"`
	Exceptions    []ExceptionSpec `yaml:"exceptions,omitempty" json:"exceptions,omitempty"`
	// OnNewFindings is what the deploy stage does when today's database
	// finds, in the approved image, findings over the thresholds that
	// the approval did not see: block (the default) or warn.
	OnNewFindings string `yaml:"on-new-findings,omitempty" json:"on-new-findings,omitempty"`
	// Grace keeps an approval good for this long despite new findings: a
	// deploy within it warns instead of blocking.
	Grace Duration `yaml:"grace,omitempty" json:"grace,omitempty"`
	// OnNewFindingsRunning is what happens to a running service when
	// re-evaluation finds such findings in its image: none (the default;
	// a Service Compliance Change is published) or stop-after DURATION.
	OnNewFindingsRunning string `yaml:"on-new-findings-running,omitempty" json:"on-new-findings-running,omitempty"`
}

// Values of PolicySpec.OnNewFindings.
const (
	OnNewFindingsBlock = "block"
	OnNewFindingsWarn  = "warn"
)

// StopAfter is the duration of on-new-findings-running: stop-after D, or
// zero for none.
func (p PolicySpec) StopAfter() (time.Duration, error) {
	v := strings.TrimSpace(p.OnNewFindingsRunning)
	if v == "" || v == "none" {
		return 0, nil
	}
	d, ok := strings.CutPrefix(v, "stop-after ")
	if !ok {
		return 0, fmt.Errorf("on-new-findings-running %q: want none or stop-after DURATION (such as stop-after 7d)", v)
	}
	dur, err := parseDuration(strings.TrimSpace(d))
	if err != nil || dur == 0 {
		return 0, fmt.Errorf("on-new-findings-running %q: want none or stop-after DURATION (such as stop-after 7d)", v)
	}
	return dur, nil
}

// ExceptionSpec lets one vulnerability through, as an ignore-file entry does.
type ExceptionSpec struct {
	ID      string `yaml:"id" json:"id"`
	Package string `yaml:"package,omitempty" json:"package,omitempty"`
	Reason  string `yaml:"reason" json:"reason"`
	Expires string `yaml:"expires,omitempty" json:"expires,omitempty"` // a date or an RFC 3339 time
}

// DeploySpec names where an approved image goes: a new revision of the
// service's task definition, with the container's image replaced.
type DeploySpec struct {
	Cluster   string `yaml:"cluster" json:"cluster"`
	Service   string `yaml:"service" json:"service"`
	Container string `yaml:"container" json:"container"`
	// Timeout fails the stage when the deployment has not completed by
	// then (60m).
	Timeout Duration `yaml:"timeout,omitempty" json:"timeout,omitempty"`
}

// DefaultDeployTimeout is how long a deploy stage waits for its
// deployment.
const DefaultDeployTimeout = time.Hour

// Duration is a time.Duration written as "90s", "2h" or "7d".
type Duration time.Duration

// UnmarshalYAML reads a duration, allowing a number of days ("7d").
func (d *Duration) UnmarshalYAML(n *yaml.Node) error {
	v, err := parseDuration(n.Value)
	if err != nil {
		return fmt.Errorf("line %d: %w", n.Line, err)
	}
	*d = Duration(v)
	return nil
}

// MarshalYAML writes the duration as Go does.
func (d Duration) MarshalYAML() (any, error) { return time.Duration(d).String(), nil }

func parseDuration(s string) (time.Duration, error) {
	if days, ok := strings.CutSuffix(s, "d"); ok {
		var n int
		if _, err := fmt.Sscanf(days, "%d", &n); err != nil || n < 0 || n > 3650 || fmt.Sprint(n) != days {
			return 0, fmt.Errorf("duration %q: want a whole number of days such as 7d", s)
		}
		return time.Duration(n) * 24 * time.Hour, nil
	}
	v, err := time.ParseDuration(s)
	if err != nil || v < 0 {
		return 0, fmt.Errorf("duration %q: want 90s, 2h or 7d", s)
	}
	return v, nil
}

var (
	nameRe   = lazyregexp.New(`^[a-z0-9][a-z0-9._-]{0,62}$`)
	repoRe   = lazyregexp.New(`^[a-z0-9]+(?:[._-][a-z0-9]+)*(?:/[a-z0-9]+(?:[._-][a-z0-9]+)*)*$`)
	branchRe = lazyregexp.New(`^[A-Za-z0-9._/-]{1,200}$`)
	argRe    = lazyregexp.New(`^[A-Za-z_][A-Za-z0-9_]{0,127}$`)
)

// ParseDefinition reads a pipeline definition: YAML of at most
// MaxDefinitionSize bytes, with no unknown fields, checked.
func ParseDefinition(data []byte) (*Definition, error) {
	if len(data) > MaxDefinitionSize {
		return nil, fmt.Errorf("pipeline definition: %d bytes, at most %d", len(data), MaxDefinitionSize)
	}
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	var d Definition
	if err := dec.Decode(&d); err != nil {
		return nil, fmt.Errorf("pipeline definition: %w", err)
	}
	var more yaml.Node
	if err := dec.Decode(&more); err == nil {
		return nil, errors.New("pipeline definition: more than one YAML document")
	}
	if err := d.Check(); err != nil {
		return nil, err
	}
	return &d, nil
}

// Check validates a definition and fills its defaults.
func (d *Definition) Check() error {
	if !nameRe.MatchString(d.Name) {
		return fmt.Errorf("pipeline name %q: use 1 to 63 lower-case letters, digits, '.', '_' or '-'", d.Name)
	}
	wrap := func(err error) error { return fmt.Errorf("pipeline %s: %w", d.Name, err) }
	if err := d.Source.check(); err != nil {
		return wrap(err)
	}
	if err := d.Build.check(); err != nil {
		return wrap(err)
	}
	switch d.Approval.Mode {
	case "":
		d.Approval.Mode = ModePolicy
	case ModePolicy, ModePolicyPerson, ModePerson:
	default:
		return wrap(fmt.Errorf("approval: mode %q: want policy, policy+person or person", d.Approval.Mode))
	}
	if d.Approval.Promote == "" {
		d.Approval.Promote = DefaultPromote
	}
	if !tagRe.MatchString(d.Approval.Promote) || commitRe.MatchString(d.Approval.Promote) {
		return wrap(fmt.Errorf("approval: promote %q is not a tag (nor may it look like a commit SHA)", d.Approval.Promote))
	}
	p, err := d.Policy()
	if err != nil {
		return wrap(fmt.Errorf("approval policy: %w", err))
	}
	if len(p.Thresholds) == 0 && d.Approval.Mode != ModePerson {
		return wrap(errors.New("approval policy: no thresholds: say how many findings of each severity may pass, such as CRITICAL: 0 (or let a person decide: mode: person)"))
	}
	if d.Approval.Timeout == 0 {
		d.Approval.Timeout = Duration(DefaultApprovalTimeout)
	}
	if d.Deploy != nil {
		if d.Deploy.Service == "" || d.Deploy.Container == "" {
			return wrap(errors.New("deploy: name the service and the container"))
		}
		if d.Deploy.Cluster == "" {
			d.Deploy.Cluster = "default"
		}
		if d.Deploy.Timeout == 0 {
			d.Deploy.Timeout = Duration(DefaultDeployTimeout)
		}
	}
	switch d.Approval.Policy.OnNewFindings {
	case "":
		d.Approval.Policy.OnNewFindings = OnNewFindingsBlock
	case OnNewFindingsBlock, OnNewFindingsWarn:
	default:
		return wrap(fmt.Errorf("approval policy: on-new-findings %q: want block or warn", d.Approval.Policy.OnNewFindings))
	}
	if _, err := d.Approval.Policy.StopAfter(); err != nil {
		return wrap(fmt.Errorf("approval policy: %w", err))
	}
	return nil
}

func (s *SourceSpec) check() error {
	if (s.Repository == "") == (s.URL == "") {
		return errors.New("source: give either a hosted repository or an external url")
	}
	if s.Branch == "" {
		s.Branch = "main"
	}
	if !branchRe.MatchString(s.Branch) || strings.Contains(s.Branch, "..") {
		return fmt.Errorf("source: branch %q is not a branch name", s.Branch)
	}
	if s.URL != "" {
		// The source package refuses file:// (and ssh, whose credentials
		// scangate cannot give): a watch it refuses would stop the polls of
		// every pipeline, so such a definition is refused here.
		u, err := url.Parse(s.URL)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || source.CheckURL(s.URL) != nil {
			return fmt.Errorf("source: url %q: want an http(s) git URL", source.Redact(s.URL))
		}
		if s.Poll != 0 && time.Duration(s.Poll) < 5*time.Second {
			return errors.New("source: poll at most every 5s")
		}
	} else if s.Poll != 0 || s.WebhookSecret != "" {
		return errors.New("source: poll and webhook-secret are for external repositories")
	}
	return nil
}

// Build networks a pipeline may ask for.
const (
	NetworkBridge = "bridge"
	NetworkNone   = "none"
)

func (b *BuildSpec) check() error {
	if !repoRe.MatchString(b.Repository) || len(b.Repository) > 255 {
		return fmt.Errorf("build: repository %q is not an image repository name", b.Repository)
	}
	if b.Network != "" && b.Network != NetworkBridge && b.Network != NetworkNone {
		return fmt.Errorf("build: network %q: want %s or %s (host networking is not offered)", b.Network, NetworkBridge, NetworkNone)
	}
	if b.Context == "" {
		b.Context = "."
	}
	if b.Dockerfile == "" {
		b.Dockerfile = "Dockerfile"
	}
	for _, p := range []string{b.Context, b.Dockerfile} {
		if path.IsAbs(p) || strings.HasPrefix(path.Clean(p), "..") {
			return fmt.Errorf("build: path %q must stay inside the repository", p)
		}
	}
	if len(b.Args)+len(b.SecretArgs) > 64 {
		return errors.New("build: at most 64 build args")
	}
	for name, v := range b.SecretArgs {
		if _, dup := b.Args[name]; dup {
			return fmt.Errorf("build: %s is both an arg and a secret arg", name)
		}
		if !argRe.MatchString(name) || len(v) > 4096 {
			return fmt.Errorf("build: secret arg %q: want a name of letters, digits and '_', and a value of at most 4096 bytes", name)
		}
	}
	return nil
}

// AllArgs returns the build args and the secret ones, as the build takes
// them.
func (b *BuildSpec) AllArgs() map[string]string {
	out := make(map[string]string, len(b.Args)+len(b.SecretArgs))
	for k, v := range b.Args {
		out[k] = v
	}
	for k, v := range b.SecretArgs {
		out[k] = v
	}
	return out
}

// Policy turns the approval's policy into the gate's.
func (d *Definition) Policy() (policy.Policy, error) {
	p := policy.Policy{Thresholds: d.Approval.Policy.Thresholds, IgnoreUnfixed: d.Approval.Policy.IgnoreUnfixed}
	for i, e := range d.Approval.Policy.Exceptions {
		ig := policy.Ignore{ID: e.ID, Package: e.Package, Reason: e.Reason}
		if e.Reason == "" {
			return p, fmt.Errorf("exception %d (%s): say why (reason)", i+1, e.ID)
		}
		if e.Expires != "" {
			t, err := ParseExpiry(e.Expires)
			if err != nil {
				return p, fmt.Errorf("exception %d (%s): %w", i+1, e.ID, err)
			}
			ig.Expires = t
		}
		p.Ignores = append(p.Ignores, ig)
	}
	return p, p.Validate()
}

// ParseExpiry reads an expiry: a date (2027-01-31, midnight UTC) or an
// RFC 3339 time.
func ParseExpiry(s string) (time.Time, error) {
	t, err := policy.ParseExpiry(s)
	if err != nil {
		return time.Time{}, fmt.Errorf("expires: %w", err)
	}
	return t, nil
}

// Redacted returns a copy of d to show: the secrets, which are write-only,
// are hidden — the source URL's credentials, the webhook secret and the
// values of the secret build args.
func (d *Definition) Redacted() *Definition {
	c := *d
	c.sealed = ""
	c.Source.URL = source.Redact(c.Source.URL)
	if c.Source.WebhookSecret != "" {
		c.Source.WebhookSecret = "xxxxx"
	}
	c.Build.SecretArgs = hideValues(c.Build.SecretArgs)
	return &c
}

// ForReaders is Redacted for those who may read pipelines but not change
// them: the values of the plain build args are hidden too, since users put
// tokens in them without saying they are secret.
func (d *Definition) ForReaders() *Definition {
	c := d.Redacted()
	c.Build.Args = hideValues(c.Build.Args)
	return c
}

func hideValues(m map[string]string) map[string]string {
	if len(m) == 0 {
		return m
	}
	out := make(map[string]string, len(m))
	for k := range m {
		out[k] = "xxxxx"
	}
	return out
}

// MarshalJSON writes the duration as Go does ("168h0m0s").
func (d Duration) MarshalJSON() ([]byte, error) {
	return []byte(`"` + time.Duration(d).String() + `"`), nil
}

// UnmarshalJSON reads what MarshalJSON writes, or "7d".
func (d *Duration) UnmarshalJSON(b []byte) error {
	s := strings.Trim(string(b), `"`)
	v, err := parseDuration(s)
	if err != nil {
		return err
	}
	*d = Duration(v)
	return nil
}
