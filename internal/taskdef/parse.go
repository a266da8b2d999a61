package taskdef

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"reflect"
	"strconv"
	"strings"

	"go.yaml.in/yaml/v3"

	"github.com/scangate/scangate/internal/lazyregexp"
)

// MaxSize is the most bytes a task definition may have: ECS's own limit.
const MaxSize = 64 << 10

// maxDepth is how deeply objects and lists may nest. ECS's deepest field
// (taskDefinition.containerDefinitions[0].linuxParameters.capabilities.add[0])
// is 6 deep; the rest is room for the ignored ones.
const maxDepth = 32

// Parse reads a task definition: ECS's JSON when the first byte that is
// not white space is '{' (a task definition, or describe-task-definition's
// output with its taskDefinition wrapper), else scangate's YAML with the
// same field names (one document, no aliases). It refuses documents larger
// than MaxSize, nested deeper than 32, with a field given twice, an
// unknown field, a value of the wrong type, or an unsupported ECS field
// that is not empty (see the package comment); the ECS fields scangate
// ignores are listed in Ignored. Null, in either syntax, is an absent
// field; in YAML a field that wants a string also takes a number or a
// boolean as written (cpu: 256), but a number must be a number in both.
// Parse judges no values: call Validate.
func Parse(data []byte) (*Definition, error) {
	if len(data) > MaxSize {
		return nil, fmt.Errorf("task definition: %d bytes, at most %d (ECS's limit)", len(data), MaxSize)
	}
	data = bytes.TrimPrefix(data, []byte("\ufeff")) // a BOM some editors write
	var root *node
	var err error
	if isJSON(data) {
		root, err = readJSON(data)
	} else {
		root, err = readYAML(data)
	}
	if err != nil {
		return nil, fmt.Errorf("task definition: %w", err)
	}
	d, err := decodeDefinition(root)
	if err == nil {
		err = d.checkSize()
	}
	if err != nil {
		return nil, fmt.Errorf("task definition: %w", err)
	}
	return d, nil
}

// checkSize holds d's JSON, as the store keeps it, to MaxSize too: YAML is
// terser than JSON, and a definition must read back from the store.
func (d *Definition) checkSize() error {
	b, err := json.Marshal(d)
	if err != nil {
		return err
	}
	if len(b) > MaxSize {
		return fmt.Errorf("%d bytes once written as JSON, at most %d (ECS's limit)", len(b), MaxSize)
	}
	return nil
}

func isJSON(data []byte) bool {
	s := bytes.TrimLeft(data, " \t\r\n")
	return len(s) > 0 && s[0] == '{'
}

// A node is a value of either syntax, so that one decoder, with one set of
// messages, reads both. Reading into a tree first also lets Parse refuse
// what encoding/json and yaml.v3 pass over in silence: a key given twice
// (the last one would win, unseen by whoever reviewed the first) and, in
// YAML, aliases, which can expand a small document into a huge one.
type node struct {
	kind kind
	text string // a string; a number's or a bool's source text
	num  string // a whole number, in decimal; "" if the number is not one
	b    bool
	// loose marks a YAML scalar that is not a string (80, true, 1.5): a
	// field that wants a string takes it as written, as YAML users expect.
	loose bool
	keys  []string // an object's keys, in order
	vals  []*node  // an object's values, or a list's items
}

type kind int

const (
	kindNull kind = iota
	kindBool
	kindNumber
	kindString
	kindList
	kindObject
)

// describe names what a node is, in the user's words.
func (n *node) describe() string {
	switch n.kind {
	case kindBool:
		return n.text
	case kindNumber:
		return "the number " + clip(n.text)
	case kindString:
		return "a string"
	case kindList:
		return "a list"
	case kindObject:
		return "an object"
	}
	return "null"
}

// readJSON reads one JSON value with json.Decoder's tokens, which keep
// numbers as written and let nesting be counted as it is read.
func readJSON(data []byte) (*node, error) {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	n, err := jsonValue(dec, "", 0)
	if err == nil {
		if _, err = dec.Token(); err == nil {
			return nil, errors.New("more than one JSON value")
		} else if errors.Is(err, io.EOF) {
			return n, nil
		}
	}
	var syn *json.SyntaxError
	switch {
	case errors.As(err, &syn):
		line, col := position(data, syn.Offset)
		return nil, fmt.Errorf("JSON: line %d, column %d: %s", line, col, syn.Error())
	case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF):
		return nil, errors.New("JSON: unexpected end of the document")
	}
	return nil, err
}

func jsonValue(dec *json.Decoder, path string, depth int) (*node, error) {
	tok, err := dec.Token()
	if err != nil {
		return nil, err
	}
	switch t := tok.(type) {
	case nil:
		return &node{kind: kindNull}, nil
	case bool:
		return &node{kind: kindBool, b: t, text: strconv.FormatBool(t)}, nil
	case string:
		return &node{kind: kindString, text: t}, nil
	case json.Number:
		return &node{kind: kindNumber, text: t.String(), num: t.String()}, nil
	}
	if depth >= maxDepth {
		return nil, fmt.Errorf("%s: nested more than %d deep", at(path), maxDepth)
	}
	n := &node{kind: kindList}
	if tok == json.Delim('{') {
		n.kind = kindObject
		seen := map[string]bool{}
		for dec.More() {
			k, err := dec.Token()
			if err != nil {
				return nil, err
			}
			key, _ := k.(string) // the decoder gives only strings here
			p := join(path, key)
			if seen[key] {
				return nil, fmt.Errorf("%s: given twice", p)
			}
			seen[key] = true
			v, err := jsonValue(dec, p, depth+1)
			if err != nil {
				return nil, err
			}
			n.keys = append(n.keys, key)
			n.vals = append(n.vals, v)
		}
	} else {
		for i := 0; dec.More(); i++ {
			v, err := jsonValue(dec, index(path, i), depth+1)
			if err != nil {
				return nil, err
			}
			n.vals = append(n.vals, v)
		}
	}
	if _, err := dec.Token(); err != nil { // the closing '}' or ']'
		return nil, err
	}
	return n, nil
}

// position turns a byte offset into a line and column, both from 1.
func position(data []byte, offset int64) (line, col int) {
	offset = min(max(offset, 0), int64(len(data)))
	before := data[:offset]
	line = bytes.Count(before, []byte("\n")) + 1
	col = len(before) - bytes.LastIndexByte(before, '\n')
	return line, col
}

// readYAML reads one YAML document into a yaml.Node, which leaves aliases
// unexpanded, then into a tree, refusing them.
func readYAML(data []byte) (*node, error) {
	dec := yaml.NewDecoder(bytes.NewReader(data))
	var doc yaml.Node
	if err := dec.Decode(&doc); errors.Is(err, io.EOF) {
		return nil, errors.New("the document is empty")
	} else if err != nil {
		return nil, err
	}
	var more yaml.Node
	if err := dec.Decode(&more); err == nil {
		return nil, errors.New("more than one YAML document")
	} else if !errors.Is(err, io.EOF) {
		return nil, err
	}
	if doc.Kind != yaml.DocumentNode || len(doc.Content) != 1 {
		return nil, errors.New("the document is empty")
	}
	return yamlValue(doc.Content[0], "", 0)
}

func yamlValue(y *yaml.Node, path string, depth int) (*node, error) {
	switch y.Kind {
	case yaml.AliasNode:
		return nil, fmt.Errorf("%s: line %d: YAML aliases are not allowed", at(path), y.Line)
	case yaml.ScalarNode:
		return yamlScalar(y, path)
	case yaml.MappingNode, yaml.SequenceNode:
	default:
		return nil, fmt.Errorf("%s: line %d: not a YAML value", at(path), y.Line)
	}
	if tag := y.ShortTag(); tag != "!!map" && tag != "!!seq" {
		return nil, fmt.Errorf("%s: line %d: YAML tag %s is not supported", at(path), y.Line, clip(tag))
	}
	if depth >= maxDepth {
		return nil, fmt.Errorf("%s: line %d: nested more than %d deep", at(path), y.Line, maxDepth)
	}
	if y.Kind == yaml.SequenceNode {
		n := &node{kind: kindList}
		for i, item := range y.Content {
			v, err := yamlValue(item, index(path, i), depth+1)
			if err != nil {
				return nil, err
			}
			n.vals = append(n.vals, v)
		}
		return n, nil
	}
	n := &node{kind: kindObject}
	seen := map[string]bool{}
	for i := 0; i+1 < len(y.Content); i += 2 {
		k := y.Content[i]
		if k.Kind == yaml.AliasNode {
			return nil, fmt.Errorf("%s: line %d: YAML aliases are not allowed", at(path), k.Line)
		}
		if k.Kind != yaml.ScalarNode {
			return nil, fmt.Errorf("%s: line %d: a field name must be a plain string", at(path), k.Line)
		}
		p := join(path, k.Value)
		if seen[k.Value] {
			return nil, fmt.Errorf("%s: line %d: given twice", p, k.Line)
		}
		seen[k.Value] = true
		v, err := yamlValue(y.Content[i+1], p, depth+1)
		if err != nil {
			return nil, err
		}
		n.keys = append(n.keys, k.Value)
		n.vals = append(n.vals, v)
	}
	return n, nil
}

func yamlScalar(y *yaml.Node, path string) (*node, error) {
	n := &node{kind: kindString, text: y.Value}
	switch tag := y.ShortTag(); tag {
	case "!!str", "!!timestamp":
		return n, nil
	case "!!null":
		return &node{kind: kindNull}, nil
	case "!!bool":
		if err := y.Decode(&n.b); err != nil {
			return nil, fmt.Errorf("%s: line %d: %q is not true or false", at(path), y.Line, clip(y.Value))
		}
		n.kind, n.loose = kindBool, true
	case "!!int", "!!float":
		n.kind, n.loose = kindNumber, true
		var i int64
		if tag == "!!int" && y.Decode(&i) == nil {
			n.num = strconv.FormatInt(i, 10) // YAML also writes 0x1f, 0o17, 1_000
		}
	default:
		return nil, fmt.Errorf("%s: line %d: YAML tag %s is not supported", at(path), y.Line, clip(tag))
	}
	return n, nil
}

// A field path as the document names it: containerDefinitions[1].image.
var plainKey = lazyregexp.New(`^[A-Za-z_][A-Za-z0-9_]*$`)

func join(path, key string) string {
	if len(key) > 80 || !plainKey.MatchString(key) {
		return path + "[" + strconv.Quote(clip(key)) + "]"
	}
	if path == "" {
		return key
	}
	return path + "." + key
}

func index(path string, i int) string { return path + "[" + strconv.Itoa(i) + "]" }

func at(path string) string {
	if path == "" {
		return "the document"
	}
	return path
}

// A fieldRule says what Parse does with an ECS field that is not a field
// of the Go type: ignore it (listing it, with the reason, in Ignored), or
// refuse it as unsupported unless its value is empty or the default.
type fieldRule struct {
	ignored     string
	unsupported string
}

func ignored(why string) fieldRule     { return fieldRule{ignored: why} }
func unsupported(why string) fieldRule { return fieldRule{unsupported: why} }

// describeOutput is what aws ecs describe-task-definition prints.
type describeOutput struct {
	TaskDefinition *Definition `json:"taskDefinition"`
}

var (
	noIAM    = ignored("no IAM in scangate")
	byECS    = ignored("written by ECS when it registered the definition; scangate's store numbers revisions")
	noVolume = unsupported("scangate's engine mounts no volumes")
)

// otherFields holds, for each type, the ECS fields that are not its Go
// fields: ECS's RegisterTaskDefinition and DescribeTaskDefinition, as of
// 2025.
var otherFields = map[reflect.Type]map[string]fieldRule{
	reflect.TypeFor[describeOutput](): {
		"tags": ignored("tags are not kept"),
	},
	reflect.TypeFor[Definition](): {
		"taskDefinitionArn":       byECS,
		"revision":                byECS,
		"status":                  byECS,
		"requiresAttributes":      byECS,
		"compatibilities":         byECS,
		"registeredAt":            byECS,
		"registeredBy":            byECS,
		"deregisteredAt":          byECS,
		"executionRoleArn":        noIAM,
		"taskRoleArn":             noIAM,
		"requiresCompatibilities": ignored("scangate runs every task on its Docker Engine"),
		"runtimePlatform":         ignored("tasks run on the engine's own platform"),
		"tags":                    ignored("tags are not kept"),
		"placementConstraints":    ignored("one engine: there is nowhere else to place a task"),
		"ephemeralStorage":        ignored("Fargate's disk size; containers use the engine's storage"),
		"enableFaultInjection":    ignored("no fault injection in scangate"),
		"proxyConfiguration":      unsupported("App Mesh's proxy is not part of scangate"),
		"inferenceAccelerators":   unsupported("no Elastic Inference in scangate"),
	},
	reflect.TypeFor[Container](): {
		"logConfiguration":       ignored("scangate reads container logs from the engine"),
		"repositoryCredentials":  ignored("images are pulled with the cluster's registry credentials"),
		"versionConsistency":     ignored("scangate deploys images pinned by digest"),
		"links":                  unsupported("legacy Docker links, which scangate's engine does not make"),
		"restartPolicy":          unsupported("a service replaces a stopped task; its containers are not restarted in place"),
		"environmentFiles":       unsupported("no S3 in scangate; use environment"),
		"secrets":                unsupported("no secret store in scangate: the container would start without them"),
		"startTimeout":           unsupported("scangate cannot bound the wait for dependencies yet"),
		"hostname":               unsupported("the container would run with another hostname"),
		"user":                   unsupported("the container would run as the image's user, not this one"),
		"workingDirectory":       unsupported("the container would start in the image's directory"),
		"disableNetworking":      unsupported("the container would have a network"),
		"readonlyRootFilesystem": unsupported("the container's root filesystem would be writable"),
		"dnsServers":             unsupported("the engine's DNS is used"),
		"dnsSearchDomains":       unsupported("the engine's DNS is used"),
		"extraHosts":             unsupported("the container would have no extra /etc/hosts entries"),
		"dockerSecurityOptions":  unsupported("the engine's default security options are used"),
		"interactive":            unsupported("no stdin for a service's container"),
		"pseudoTerminal":         unsupported("no terminal for a service's container"),
		"dockerLabels":           unsupported("scangate labels the containers it starts itself"),
		"ulimits":                unsupported("the container would run with the engine's limits"),
		"systemControls":         unsupported("the container would run with the engine's sysctls"),
		"resourceRequirements":   unsupported("no GPUs or accelerators in scangate"),
		"firelensConfiguration":  unsupported("no FireLens log routing in scangate"),
		"credentialSpecs":        unsupported("no Active Directory in scangate"),
	},
	reflect.TypeFor[PortMapping](): {
		"name":               ignored("no Service Connect in scangate"),
		"appProtocol":        ignored("no Service Connect in scangate"),
		"containerPortRange": unsupported("map each port on its own"),
	},
	reflect.TypeFor[LinuxParameters](): {
		"initProcessEnabled": unsupported("the engine's init process is not started"),
		"maxSwap":            unsupported("the container would swap as the engine allows"),
		"swappiness":         unsupported("the container would swap as the engine allows"),
		"sharedMemorySize":   unsupported("the container would get the engine's /dev/shm size"),
		"tmpfs":              noVolume,
	},
	reflect.TypeFor[Capabilities](): {
		"drop": unsupported("the container would keep the capabilities it asks to drop"),
	},
	reflect.TypeFor[Volume](): {
		"dockerVolumeConfiguration":               noVolume,
		"efsVolumeConfiguration":                  noVolume,
		"fsxWindowsFileServerVolumeConfiguration": noVolume,
		"configuredAtLaunch":                      noVolume,
	},
}

// decodeDefinition reads the tree into a Definition, unwrapping
// describe-task-definition's output.
func decodeDefinition(root *node) (*Definition, error) {
	if root.kind != kindObject {
		return nil, fmt.Errorf("want an object with family and containerDefinitions, found %s", root.describe())
	}
	var dc decoder
	d := new(Definition)
	path := ""
	if hasKey(root, "taskDefinition") {
		var out describeOutput
		if err := dc.value(root, reflect.ValueOf(&out).Elem(), ""); err != nil {
			return nil, err
		}
		if out.TaskDefinition == nil {
			return nil, errors.New("taskDefinition: null")
		}
		d, path = out.TaskDefinition, "taskDefinition"
	} else if err := dc.value(root, reflect.ValueOf(d).Elem(), ""); err != nil {
		return nil, err
	}
	// Kept, for Validate to judge, but not used.
	if d.NetworkMode == "awsvpc" || d.NetworkMode == "bridge" {
		dc.ignore(join(path, "networkMode"), "every task joins its cluster's network")
	}
	if d.Cpu != "" {
		dc.ignore(join(path, "cpu"), "kept, but scangate limits each container, not the task")
	}
	if d.Memory != "" {
		dc.ignore(join(path, "memory"), "kept, but scangate limits each container, not the task")
	}
	d.Ignored = dc.ignored
	return d, nil
}

func hasKey(n *node, key string) bool {
	for _, k := range n.keys {
		if k == key {
			return true
		}
	}
	return false
}

// A decoder reads a tree into Go values by their JSON field names.
type decoder struct {
	ignored []string
}

func (dc *decoder) ignore(path, why string) {
	dc.ignored = append(dc.ignored, path+": ignored ("+why+")")
}

// value reads n into v. Null, in either syntax, leaves v as it is: the
// field is absent.
func (dc *decoder) value(n *node, v reflect.Value, path string) error {
	if n.kind == kindNull {
		return nil
	}
	switch v.Kind() {
	case reflect.Pointer:
		p := reflect.New(v.Type().Elem())
		if err := dc.value(n, p.Elem(), path); err != nil {
			return err
		}
		v.Set(p)
	case reflect.String:
		if n.kind != kindString && !n.loose {
			return fmt.Errorf("%s: want a string, found %s", path, n.describe())
		}
		v.SetString(n.text)
	case reflect.Int:
		if n.kind != kindNumber {
			return fmt.Errorf("%s: want a whole number, found %s", path, n.describe())
		}
		i, err := strconv.ParseInt(n.num, 10, 0)
		if errors.Is(err, strconv.ErrRange) {
			return fmt.Errorf("%s: %s is too large", path, clip(n.text))
		} else if err != nil {
			return fmt.Errorf("%s: want a whole number, found %s", path, clip(n.text))
		}
		v.SetInt(i)
	case reflect.Bool:
		if n.kind != kindBool {
			return fmt.Errorf("%s: want true or false, found %s", path, n.describe())
		}
		v.SetBool(n.b)
	case reflect.Slice:
		if n.kind != kindList {
			return fmt.Errorf("%s: want a list, found %s", path, n.describe())
		}
		if len(n.vals) == 0 {
			return nil // an empty list is no list, as omitempty writes it
		}
		s := reflect.MakeSlice(v.Type(), len(n.vals), len(n.vals))
		for i, item := range n.vals {
			if err := dc.value(item, s.Index(i), index(path, i)); err != nil {
				return err
			}
		}
		v.Set(s)
	case reflect.Struct:
		return dc.object(n, v, path)
	default:
		panic("taskdef: no decoding for " + v.Type().String())
	}
	return nil
}

func (dc *decoder) object(n *node, v reflect.Value, path string) error {
	if n.kind != kindObject {
		return fmt.Errorf("%s: want an object, found %s", at(path), n.describe())
	}
	fields := jsonFields(v.Type())
	rules := otherFields[v.Type()]
	for i, key := range n.keys {
		val, p := n.vals[i], join(path, key)
		if f, ok := fields[key]; ok {
			if err := dc.value(val, v.Field(f), p); err != nil {
				return err
			}
			continue
		}
		rule, ok := rules[key]
		switch {
		case !ok:
			return fmt.Errorf("%s: unknown field%s", p, suggest(key, fields, rules))
		case rule.ignored != "":
			dc.ignore(p, rule.ignored)
		case !isEmpty(val):
			return fmt.Errorf("%s: not supported (%s); remove it", p, rule.unsupported)
		}
	}
	return nil
}

// jsonFields maps a struct's JSON field names to its field indexes.
func jsonFields(t reflect.Type) map[string]int {
	m := make(map[string]int, t.NumField())
	for i := range t.NumField() {
		name, _, _ := strings.Cut(t.Field(i).Tag.Get("json"), ",")
		if name != "" && name != "-" {
			m[name] = i
		}
	}
	return m
}

// isEmpty says whether a value says nothing: null, false, 0, "", an empty
// list, or an object of such values. An unsupported field so written
// changes nothing when dropped.
func isEmpty(n *node) bool {
	switch n.kind {
	case kindNull:
		return true
	case kindBool:
		return !n.b
	case kindNumber:
		return n.num == "0"
	case kindString:
		return n.text == ""
	case kindList:
		return len(n.vals) == 0
	}
	for _, v := range n.vals {
		if !isEmpty(v) {
			return false
		}
	}
	return true
}

// suggest names the known field closest to an unknown one: the same but
// for case, else one or two letters apart.
func suggest(key string, fields map[string]int, rules map[string]fieldRule) string {
	var names []string
	for k := range fields {
		names = append(names, k)
	}
	for k := range rules {
		names = append(names, k)
	}
	best, bestDist := "", 3
	for _, name := range names {
		d := 3
		switch {
		case strings.EqualFold(name, key):
			d = 0
		case len(key) >= 4 && abs(len(name)-len(key)) <= 2:
			d = distance(strings.ToLower(key), strings.ToLower(name))
		}
		if d < bestDist || (d == bestDist && d < 3 && name < best) {
			best, bestDist = name, d
		}
	}
	if best == "" {
		return ""
	}
	return fmt.Sprintf(" (did you mean %s?)", best)
}

func abs(i int) int { return max(i, -i) }

// distance is the Levenshtein distance between a and b.
func distance(a, b string) int {
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}
