// Package stack reads a stack file, the list of what a scangate
// installation is made of (the resources the seed's CloudFormation template
// creates), plans what it takes to make a server match it, and applies or
// destroys the plan through a Backend.
//
// A stack file is YAML:
//
//	name: seed
//	parameters:                      # ${registry} anywhere in a value below
//	  registry: {default: "127.0.0.1:5000"}
//	tokens:          [{name: ci, role: pusher}]
//	repositories:    [{name: shop-api, content: app}]    # content: a folder, pushed once
//	clusters:        [{clusterName: demo}]
//	task-definitions: [<a task definition, as scangate taskdef register takes it>]
//	services:        [{clusterName: demo, serviceName: shop-api, taskDefinition: shop-api}]
//	rules:           [{name: critical, pattern: {...}, targets: [...]}]
//	pipelines:       [<a pipeline definition, as scangate pipeline put takes it>]
//
// What a stack made is recorded on the server (the Record), as Terraform
// keeps its state in a remote backend and CloudFormation its stack's
// resources: a resource is the stack's because the stack created it, not
// because of its name, so `down` removes exactly that, and `up` refuses to
// take over a resource of the same name that someone else made.
package stack

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"reflect"
	"sort"
	"strings"

	"go.yaml.in/yaml/v3"

	"github.com/scangate/scangate/internal/auth"
	"github.com/scangate/scangate/internal/deploy"
	"github.com/scangate/scangate/internal/events"
	"github.com/scangate/scangate/internal/lazyregexp"
	"github.com/scangate/scangate/internal/pipeline"
	"github.com/scangate/scangate/internal/source"
	"github.com/scangate/scangate/internal/taskdef"
)

// Limits of a stack file: it is read whole, and every resource in it is a
// request to the server.
const (
	// MaxSize is the most bytes a stack file may have.
	MaxSize = 1 << 20
	// MaxDepth is how deeply a stack file's values may nest (a task
	// definition's deepest field is 8 below the file's root).
	MaxDepth = 32
	// MaxResources is the most resources of one kind.
	MaxResources = 200
	// MaxNodes bounds the YAML nodes of a file, aliases expanded.
	MaxNodes = 200_000
)

// ErrInvalid marks a stack file that cannot be applied.
var ErrInvalid = errors.New("invalid stack file")

// Kind is a kind of resource.
type Kind string

// The kinds, in the order up creates them: what a later one names exists
// before it (a service's cluster and task definition, a pipeline's
// repository and service). Down removes them in the reverse order.
const (
	KindToken          Kind = "token"
	KindRepository     Kind = "repository"
	KindCluster        Kind = "cluster"
	KindTaskDefinition Kind = "task-definition"
	KindService        Kind = "service"
	KindRule           Kind = "rule"
	KindPipeline       Kind = "pipeline"
)

// Kinds lists the kinds in creation order.
var Kinds = []Kind{KindToken, KindRepository, KindCluster, KindTaskDefinition, KindService, KindRule, KindPipeline}

func (k Kind) order() int {
	for i, x := range Kinds {
		if x == k {
			return i
		}
	}
	return len(Kinds)
}

// Mutable tells whether a resource of the kind can be changed in place.
// A cluster's host address and a token's role cannot: changing them means
// removing the resource from the stack, up, and adding it again.
func (k Kind) Mutable() bool { return k != KindCluster && k != KindToken && k != KindRepository }

// Resource is one resource the stack file names.
type Resource struct {
	Kind Kind
	// Name names it among its kind: a service is CLUSTER/SERVICE.
	Name string
	// Body is what the server is sent to create or change it: JSON for
	// tokens, clusters, services and rules, YAML for task definitions and
	// pipelines (as their commands take them).
	Body []byte
	// Digest is the SHA-256 of Body: the plan compares it with the
	// recorded one.
	Digest string
	// Content is a repository's initial content: a folder (absolute).
	Content string
	// Line is where the resource starts in the file.
	Line int
}

// Key names a resource among all kinds.
func (r Resource) Key() string { return string(r.Kind) + " " + r.Name }

// Stack is a parsed stack file.
type Stack struct {
	Name string
	// File is the file's path, for messages.
	File      string
	Resources []Resource
}

// TokenSpec is a token in a stack file: its secret is printed once, when
// up creates it.
type TokenSpec struct {
	Name string `yaml:"name" json:"name"`
	Role string `yaml:"role" json:"role"`
}

// RepositorySpec is a hosted git repository in a stack file.
type RepositorySpec struct {
	Name string `yaml:"name"`
	// Content is a folder (relative to the stack file) committed and
	// pushed to the repository's main branch when up creates it, never
	// after: from then on the repository is its users'.
	Content string `yaml:"content,omitempty"`
}

// ClusterSpec is a cluster in a stack file, with the API's fields.
type ClusterSpec struct {
	Name            string `yaml:"clusterName" json:"clusterName"`
	HostIP          string `yaml:"hostIp,omitempty" json:"hostIp,omitempty"`
	AllowPrivileged bool   `yaml:"allowPrivileged,omitempty" json:"allowPrivileged,omitempty"`
}

// ServiceSpec is a service in a stack file, with ECS's fields. Its desired
// count is 0 unless given, as in the seed: no task runs before an image
// is approved and someone says how many.
type ServiceSpec struct {
	Cluster        string    `yaml:"clusterName"`
	Name           string    `yaml:"serviceName"`
	TaskDefinition string    `yaml:"taskDefinition"`
	DesiredCount   int       `yaml:"desiredCount,omitempty"`
	Config         yaml.Node `yaml:"config,omitempty"`
}

// RuleSpec is an event rule and its targets in a stack file.
type RuleSpec struct {
	Name    string    `yaml:"name"`
	Pattern yaml.Node `yaml:"pattern"`
	Targets yaml.Node `yaml:"targets"`
}

// ParameterSpec declares a parameter.
type ParameterSpec struct {
	Default     *string `yaml:"default"`
	Description string  `yaml:"description,omitempty"`
}

// file is a stack file as YAML has it.
type file struct {
	Name            string                   `yaml:"name"`
	Parameters      map[string]ParameterSpec `yaml:"parameters"`
	Tokens          []yaml.Node              `yaml:"tokens"`
	Repositories    []yaml.Node              `yaml:"repositories"`
	Clusters        []yaml.Node              `yaml:"clusters"`
	TaskDefinitions []yaml.Node              `yaml:"task-definitions"`
	Services        []yaml.Node              `yaml:"services"`
	Rules           []yaml.Node              `yaml:"rules"`
	Pipelines       []yaml.Node              `yaml:"pipelines"`
}

// nameRE is a stack's name: it names its record.
var nameRE = lazyregexp.New(`^[a-z0-9][a-z0-9._-]{0,62}$`)

// paramNameRE is a parameter's name.
var paramNameRE = lazyregexp.New(`^[A-Za-z_][A-Za-z0-9_]*$`)

// paramRE is a parameter reference in a value.
var paramRE = lazyregexp.New(`\$\{([A-Za-z_][A-Za-z0-9_]*)\}`)

// ReadFile reads and parses the stack file path; params override the
// parameters' defaults.
func ReadFile(path string, params map[string]string) (*Stack, error) {
	fh, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("stack file: %w", err)
	}
	defer fh.Close()
	data, err := io.ReadAll(io.LimitReader(fh, MaxSize+1))
	if err != nil {
		return nil, fmt.Errorf("stack file %s: %w", path, err)
	}
	return Parse(path, data, params)
}

// fieldError is an error about a field of the file, at a line.
type fieldError struct {
	file  string
	line  int
	field string
	msg   string
}

func (e *fieldError) Error() string {
	return fmt.Sprintf("%s:%d: %s: %s", e.file, e.line, e.field, e.msg)
}

func (e *fieldError) Unwrap() error { return ErrInvalid }

// Parse reads a stack file's bytes. name is the file's path: messages name
// it, and a repository's content is relative to its folder. Every error
// names the file, the line and the field.
func Parse(name string, data []byte, params map[string]string) (*Stack, error) {
	dir, err := filepath.Abs(filepath.Dir(name))
	if err != nil {
		return nil, fmt.Errorf("stack file %s: %w", name, err)
	}
	p := &parser{file: name, dir: dir}
	if len(data) > MaxSize {
		return nil, fmt.Errorf("%w: %s: over %d bytes", ErrInvalid, name, MaxSize)
	}
	var doc yaml.Node
	dec := yaml.NewDecoder(bytes.NewReader(data))
	if err := dec.Decode(&doc); err != nil {
		return nil, p.yamlError(err, "stack")
	}
	var extra yaml.Node
	if err := dec.Decode(&extra); err == nil {
		return nil, p.errf(extra.Line, "stack", "one YAML document only")
	}
	if len(doc.Content) != 1 || doc.Content[0].Kind != yaml.MappingNode {
		return nil, p.errf(doc.Line, "stack", "want a mapping of name, parameters, tokens, repositories, clusters, task-definitions, services, rules, pipelines")
	}
	root := doc.Content[0]
	count := 0
	if err := p.checkTree(root, "", 0, &count); err != nil {
		return nil, err
	}
	if err := p.substitute(root, params); err != nil {
		return nil, err
	}
	var f file
	if err := p.strictDecode(root, "", &f); err != nil {
		return nil, err
	}
	if !nameRE.MatchString(f.Name) {
		return nil, p.errf(fieldLine(root, "name"), "name", "want a stack name: lower-case letters, digits, '.', '_', '-', up to 63, such as seed")
	}
	st := &Stack{Name: f.Name, File: name}
	type section struct {
		field string
		nodes []yaml.Node
		read  func(field string, n *yaml.Node) (Resource, error)
	}
	for _, s := range []section{
		{"tokens", f.Tokens, p.token},
		{"repositories", f.Repositories, p.repository},
		{"clusters", f.Clusters, p.cluster},
		{"task-definitions", f.TaskDefinitions, p.taskDefinition},
		{"services", f.Services, p.service},
		{"rules", f.Rules, p.rule},
		{"pipelines", f.Pipelines, p.pipeline},
	} {
		if len(s.nodes) > MaxResources {
			return nil, p.errf(fieldLine(root, s.field), s.field, fmt.Sprintf("%d entries, at most %d", len(s.nodes), MaxResources))
		}
		seen := map[string]int{}
		for i := range s.nodes {
			n := &s.nodes[i]
			field := fmt.Sprintf("%s[%d]", s.field, i)
			if n.Kind != yaml.MappingNode {
				return nil, p.errf(n.Line, field, "want a mapping")
			}
			r, err := s.read(field, n)
			if err != nil {
				return nil, err
			}
			if first, dup := seen[r.Name]; dup {
				return nil, p.errf(n.Line, field, fmt.Sprintf("%s %s is also at line %d", r.Kind, r.Name, first))
			}
			seen[r.Name] = n.Line
			r.Line = n.Line
			r.Digest = digest(r.Body)
			st.Resources = append(st.Resources, r)
		}
	}
	return st, nil
}

type parser struct {
	file, dir string
}

func (p *parser) errf(line int, field, msg string) error {
	return &fieldError{file: p.file, line: line, field: field, msg: msg}
}

// yamlLineRE finds the line yaml.v3 names in its messages.
var yamlLineRE = lazyregexp.New(`^(?:yaml: )?line (\d+): (.*)$`)

// yamlError turns a YAML error into one naming the file and line.
func (p *parser) yamlError(err error, field string) error {
	var te *yaml.TypeError
	msgs := []string{err.Error()}
	if errors.As(err, &te) {
		msgs = te.Errors
	}
	var out []string
	for _, m := range msgs {
		if g := yamlLineRE.FindStringSubmatch(m); g != nil {
			out = append(out, fmt.Sprintf("%s:%s: %s: %s", p.file, g[1], field, g[2]))
		} else {
			out = append(out, fmt.Sprintf("%s: %s: %s", p.file, field, strings.TrimPrefix(m, "yaml: ")))
		}
	}
	return fmt.Errorf("%w: %s", ErrInvalid, strings.Join(out, "; "))
}

// checkTree bounds the file's depth and size and refuses aliases: a stack
// file is short, and an alias is how a small file grows big.
func (p *parser) checkTree(n *yaml.Node, field string, depth int, count *int) error {
	*count++
	if *count > MaxNodes {
		return p.errf(n.Line, "stack", fmt.Sprintf("over %d values", MaxNodes))
	}
	if depth > MaxDepth {
		return p.errf(n.Line, orRoot(field), fmt.Sprintf("nested deeper than %d", MaxDepth))
	}
	if n.Kind == yaml.AliasNode || n.Anchor != "" {
		return p.errf(n.Line, orRoot(field), "anchors and aliases (& and *) are not allowed in a stack file")
	}
	for i, c := range n.Content {
		f := field
		switch n.Kind {
		case yaml.MappingNode:
			if i%2 == 1 {
				f = joinField(field, n.Content[i-1].Value)
			}
		case yaml.SequenceNode:
			f = fmt.Sprintf("%s[%d]", field, i)
		}
		if err := p.checkTree(c, f, depth+1, count); err != nil {
			return err
		}
	}
	return nil
}

func orRoot(f string) string {
	if f == "" {
		return "stack"
	}
	return f
}

func joinField(a, b string) string {
	if a == "" {
		return b
	}
	return a + "." + b
}

// substitute replaces ${NAME} in the values below the parameters with the
// parameter's value: params, else its default.
func (p *parser) substitute(root *yaml.Node, params map[string]string) error {
	declared := map[string]ParameterSpec{}
	for i := 0; i+1 < len(root.Content); i += 2 {
		if root.Content[i].Value != "parameters" {
			continue
		}
		pn := root.Content[i+1]
		if pn.Kind != yaml.MappingNode {
			return p.errf(pn.Line, "parameters", "want a mapping of names to {default: VALUE}")
		}
		for j := 0; j+1 < len(pn.Content); j += 2 {
			name := pn.Content[j].Value
			if !paramNameRE.MatchString(name) {
				return p.errf(pn.Content[j].Line, "parameters."+name, "want a name of letters, digits and '_'")
			}
			var ps ParameterSpec
			if err := p.strictDecode(pn.Content[j+1], "parameters."+name, &ps); err != nil {
				return err
			}
			declared[name] = ps
		}
	}
	for name := range params {
		if _, ok := declared[name]; !ok {
			return fmt.Errorf("%w: %s: parameter %s is given but the stack file declares no such parameter", ErrInvalid, p.file, name)
		}
	}
	var walk func(n *yaml.Node, field string) error
	walk = func(n *yaml.Node, field string) error {
		if n.Kind == yaml.ScalarNode && strings.Contains(n.Value, "${") {
			var bad error
			n.Value = paramRE.ReplaceAllStringFunc(n.Value, func(ref string) string {
				name := paramRE.FindStringSubmatch(ref)[1]
				if v, ok := params[name]; ok {
					return v
				}
				d, ok := declared[name]
				switch {
				case !ok:
					bad = p.errf(n.Line, orRoot(field), fmt.Sprintf("${%s}: no such parameter (declare it under parameters)", name))
				case d.Default == nil:
					bad = p.errf(n.Line, orRoot(field), fmt.Sprintf("${%s}: the parameter has no default: give it with --param %s=VALUE", name, name))
				default:
					return *d.Default
				}
				return ref
			})
			return bad
		}
		for i, c := range n.Content {
			f := field
			switch n.Kind {
			case yaml.MappingNode:
				if i%2 == 0 {
					continue // keys are names, not values
				}
				f = joinField(field, n.Content[i-1].Value)
				if field == "" && n.Content[i-1].Value == "parameters" {
					continue
				}
			case yaml.SequenceNode:
				f = fmt.Sprintf("%s[%d]", field, i)
			}
			if err := walk(c, f); err != nil {
				return err
			}
		}
		return nil
	}
	return walk(root, "")
}

// strictDecode decodes the mapping n into the struct *v, refusing fields
// the struct does not have. yaml.v3 checks unknown fields only in a
// Decoder, which would lose the node's lines; the keys are checked here
// against the struct's yaml tags instead, at their own lines.
func (p *parser) strictDecode(n *yaml.Node, field string, v any) error {
	if n.Kind != yaml.MappingNode {
		return p.errf(n.Line, orRoot(field), "want a mapping")
	}
	known := map[string]bool{}
	t := reflect.TypeOf(v).Elem()
	for i := 0; i < t.NumField(); i++ {
		name, _, _ := strings.Cut(t.Field(i).Tag.Get("yaml"), ",")
		if name != "" && name != "-" {
			known[name] = true
		}
	}
	var names []string
	for k := range known {
		names = append(names, k)
	}
	sort.Strings(names)
	for i := 0; i+1 < len(n.Content); i += 2 {
		k := n.Content[i]
		if !known[k.Value] {
			return p.errf(k.Line, joinField(field, k.Value), "no such field (want one of "+strings.Join(names, ", ")+")")
		}
	}
	if err := n.Decode(v); err != nil {
		return p.yamlError(err, orRoot(field))
	}
	return nil
}

// fieldLine is the line of key's value in the mapping n (n's own line if
// it has no such key).
func fieldLine(n *yaml.Node, key string) int {
	for i := 0; i+1 < len(n.Content); i += 2 {
		if n.Content[i].Value == key {
			return n.Content[i].Line
		}
	}
	return n.Line
}

func (p *parser) decode(field string, n *yaml.Node, v any) error {
	return p.strictDecode(n, field, v)
}

func (p *parser) token(field string, n *yaml.Node) (Resource, error) {
	var t TokenSpec
	if err := p.decode(field, n, &t); err != nil {
		return Resource{}, err
	}
	if t.Name == "" {
		return Resource{}, p.errf(n.Line, field+".name", "a token needs a name")
	}
	if _, err := auth.ParseRole(t.Role); err != nil {
		return Resource{}, p.errf(fieldLine(n, "role"), field+".role", err.Error())
	}
	body, _ := json.Marshal(t)
	return Resource{Kind: KindToken, Name: t.Name, Body: body}, nil
}

func (p *parser) repository(field string, n *yaml.Node) (Resource, error) {
	var r RepositorySpec
	if err := p.decode(field, n, &r); err != nil {
		return Resource{}, err
	}
	if err := source.ValidName(r.Name); err != nil {
		return Resource{}, p.errf(fieldLine(n, "name"), field+".name", err.Error())
	}
	res := Resource{Kind: KindRepository, Name: r.Name}
	res.Body, _ = json.Marshal(map[string]string{"name": r.Name})
	if r.Content != "" {
		dir := r.Content
		if !filepath.IsAbs(dir) {
			dir = filepath.Join(p.dir, dir)
		}
		fi, err := os.Stat(dir)
		if err != nil || !fi.IsDir() {
			return Resource{}, p.errf(fieldLine(n, "content"), field+".content", fmt.Sprintf("%s: want a folder (relative to the stack file)", r.Content))
		}
		res.Content = dir
	}
	return res, nil
}

func (p *parser) cluster(field string, n *yaml.Node) (Resource, error) {
	var c ClusterSpec
	if err := p.decode(field, n, &c); err != nil {
		return Resource{}, err
	}
	if c.Name == "" {
		return Resource{}, p.errf(n.Line, field+".clusterName", "a cluster needs a clusterName")
	}
	body, _ := json.Marshal(c)
	return Resource{Kind: KindCluster, Name: c.Name, Body: body}, nil
}

func (p *parser) taskDefinition(field string, n *yaml.Node) (Resource, error) {
	data, err := yaml.Marshal(n)
	if err != nil {
		return Resource{}, p.errf(n.Line, field, err.Error())
	}
	def, err := taskdef.Parse(data)
	if err != nil {
		return Resource{}, p.errf(n.Line, field, err.Error())
	}
	if err := def.Validate(taskdef.Options{AllowPrivileged: true}); err != nil {
		return Resource{}, p.errf(n.Line, field, err.Error())
	}
	return Resource{Kind: KindTaskDefinition, Name: def.Family, Body: data}, nil
}

func (p *parser) service(field string, n *yaml.Node) (Resource, error) {
	var s ServiceSpec
	if err := p.decode(field, n, &s); err != nil {
		return Resource{}, err
	}
	in := deploy.ServiceInput{Cluster: s.Cluster, Name: s.Name, TaskDefinition: s.TaskDefinition, DesiredCount: s.DesiredCount}
	switch {
	case s.Cluster == "":
		return Resource{}, p.errf(n.Line, field+".clusterName", "a service needs its cluster's name")
	case s.Name == "":
		return Resource{}, p.errf(n.Line, field+".serviceName", "a service needs a serviceName")
	case s.TaskDefinition == "":
		return Resource{}, p.errf(n.Line, field+".taskDefinition", "a service needs a task definition (FAMILY or FAMILY:REVISION)")
	case s.DesiredCount < 0:
		return Resource{}, p.errf(fieldLine(n, "desiredCount"), field+".desiredCount", "want 0 or more")
	}
	if s.Config.Kind != 0 {
		if err := p.jsonOf(field+".config", &s.Config, &in.Config); err != nil {
			return Resource{}, err
		}
	}
	body, _ := json.Marshal(in)
	return Resource{Kind: KindService, Name: s.Cluster + "/" + s.Name, Body: body}, nil
}

// jsonOf decodes a YAML value into v as the API's JSON decoder would, with
// no unknown fields.
func (p *parser) jsonOf(field string, n *yaml.Node, v any) error {
	var x any
	if err := n.Decode(&x); err != nil {
		return p.yamlError(err, field)
	}
	data, err := json.Marshal(x)
	if err != nil {
		return p.errf(n.Line, field, err.Error())
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return p.errf(n.Line, field, strings.TrimPrefix(err.Error(), "json: "))
	}
	return nil
}

func (p *parser) rule(field string, n *yaml.Node) (Resource, error) {
	var r RuleSpec
	if err := p.decode(field, n, &r); err != nil {
		return Resource{}, err
	}
	if r.Name == "" {
		return Resource{}, p.errf(n.Line, field+".name", "a rule needs a name")
	}
	var body events.RuleBody
	var pattern any
	if err := r.Pattern.Decode(&pattern); err != nil || r.Pattern.Kind != yaml.MappingNode {
		return Resource{}, p.errf(fieldLine(n, "pattern"), field+".pattern", "want an event pattern (a mapping)")
	}
	pj, err := json.Marshal(pattern)
	if err != nil {
		return Resource{}, p.errf(fieldLine(n, "pattern"), field+".pattern", err.Error())
	}
	body.Pattern = pj
	if err := p.jsonOf(field+".targets", &r.Targets, &body.Targets); err != nil {
		return Resource{}, err
	}
	data, _ := json.Marshal(body)
	if _, err := events.ParseRule(r.Name, bytes.NewReader(data)); err != nil {
		return Resource{}, p.errf(n.Line, field, err.Error())
	}
	return Resource{Kind: KindRule, Name: r.Name, Body: data}, nil
}

func (p *parser) pipeline(field string, n *yaml.Node) (Resource, error) {
	data, err := yaml.Marshal(n)
	if err != nil {
		return Resource{}, p.errf(n.Line, field, err.Error())
	}
	d, err := pipeline.ParseDefinition(data)
	if err != nil {
		return Resource{}, p.errf(n.Line, field, err.Error())
	}
	if err := d.Check(); err != nil {
		return Resource{}, p.errf(n.Line, field, err.Error())
	}
	return Resource{Kind: KindPipeline, Name: d.Name, Body: data}, nil
}

// sortResources puts resources in creation order, by name within a kind.
func sortResources(rs []Resource) {
	sort.SliceStable(rs, func(i, j int) bool {
		if rs[i].Kind != rs[j].Kind {
			return rs[i].Kind.order() < rs[j].Kind.order()
		}
		return rs[i].Name < rs[j].Name
	})
}
