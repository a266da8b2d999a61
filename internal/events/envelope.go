package events

import (
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/scangate/scangate/internal/events/pattern"
)

// Sources of scangate's events.
const (
	SourceRegistry = "scangate.registry" // images pushed to scangate's registry
	SourceScanner  = "scangate.scanner"  // scans and their findings
	SourcePipeline = "scangate.pipeline" // pipeline executions, stages and approvals
	SourceDeploy   = "scangate.deploy"   // deployments
)

// Detail types of scangate's events.
const (
	DetailTypeImagePush                    = "Image Push"
	DetailTypeScan                         = "Scan"
	DetailTypeFinding                      = "Finding"
	DetailTypeApprovalRequested            = "Approval Requested"
	DetailTypeApprovalOverridden           = "Approval Overridden"
	DetailTypePipelineExecutionStateChange = "Pipeline Execution State Change"
	DetailTypeStageStateChange             = "Stage State Change"
)

// Limits on events.
const (
	// MaxEventSize is the most bytes an event may have, EventBridge's
	// limit; MaxEventDepth bounds its nesting. Patterns match events within
	// the same limits.
	MaxEventSize  = pattern.MaxEventSize
	MaxEventDepth = pattern.MaxEventDepth
)

// Envelope is an event as EventBridge shapes it, with EventBridge's JSON
// field names.
type Envelope struct {
	Version    string          `json:"version"`     // "0"
	ID         string          `json:"id"`          // unique per event
	DetailType string          `json:"detail-type"` // what happened: a DetailType constant
	Source     string          `json:"source"`      // who says so: a Source constant
	Account    string          `json:"account"`     // empty in scangate, which has no accounts
	Time       time.Time       `json:"time"`        // when, in UTC (RFC 3339 in JSON)
	Region     string          `json:"region"`      // empty in scangate, which has no regions
	Resources  []string        `json:"resources"`   // what it concerns, such as image references
	Detail     json.RawMessage `json:"detail"`      // a JSON object, by detail type
}

// New makes an event from source about resources: version "0", a random
// UUID for id, the time now in UTC to the second as EventBridge writes it,
// and detail marshalled as JSON, which must be an object (nil is {}).
func New(source, detailType string, resources []string, detail any) (Envelope, error) {
	if source == "" || detailType == "" {
		return Envelope{}, errors.New("new event: source and detail-type must not be empty")
	}
	id, err := newID()
	if err != nil {
		return Envelope{}, fmt.Errorf("new %s event: %w", detailType, err)
	}
	raw, err := marshalDetail(detail)
	if err != nil {
		return Envelope{}, fmt.Errorf("new %s event: %w", detailType, err)
	}
	e := Envelope{
		Version:    "0",
		ID:         id,
		DetailType: detailType,
		Source:     source,
		Time:       time.Now().UTC().Truncate(time.Second),
		Resources:  append([]string{}, resources...),
		Detail:     raw,
	}
	if data, err := json.Marshal(e); err != nil {
		return Envelope{}, fmt.Errorf("new %s event: %w", detailType, err)
	} else if len(data) > MaxEventSize {
		return Envelope{}, fmt.Errorf("new %s event: %d bytes is more than the %d an event may have", detailType, len(data), MaxEventSize)
	}
	return e, nil
}

// marshalDetail encodes an event's detail, which must be a JSON object
// nested within the event's depth limit.
func marshalDetail(detail any) (json.RawMessage, error) {
	if detail == nil {
		return json.RawMessage(`{}`), nil
	}
	data, err := json.Marshal(detail)
	if err != nil {
		return nil, fmt.Errorf("detail: %w", err)
	}
	v, err := pattern.Decode(data, MaxEventDepth-1)
	if err != nil {
		return nil, fmt.Errorf("detail: %w", err)
	}
	if _, ok := v.(map[string]any); !ok {
		return nil, fmt.Errorf("detail is %s, not a JSON object", pattern.Kind(v))
	}
	return data, nil
}

// newID makes a random (version 4) UUID.
func newID() (string, error) {
	var b [16]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", fmt.Errorf("event id: %w", err)
	}
	b[6] = b[6]&0x0f | 0x40 // version 4
	b[8] = b[8]&0x3f | 0x80 // RFC 9562 variant
	h := hex.EncodeToString(b[:])
	return h[0:8] + "-" + h[8:12] + "-" + h[12:16] + "-" + h[16:20] + "-" + h[20:], nil
}

// MarshalJSON writes the event as EventBridge does: no resources is [] and
// no detail {}, never null.
func (e Envelope) MarshalJSON() ([]byte, error) {
	type plain Envelope // without this method
	p := plain(e)
	if p.Resources == nil {
		p.Resources = []string{}
	}
	if len(p.Detail) == 0 {
		p.Detail = json.RawMessage(`{}`)
	}
	return json.Marshal(p)
}

// Parse reads an event. It must be a JSON object of at most MaxEventSize
// bytes nesting at most MaxEventDepth levels, with the fields id, source,
// detail-type and time (RFC 3339) given; version, account and region are
// strings if given, resources an array of strings, and detail an object.
// Other fields are ignored.
func Parse(data []byte) (Envelope, error) {
	if _, err := pattern.DecodeEvent(data); err != nil {
		return Envelope{}, err
	}
	var raw map[string]json.RawMessage
	if err := json.Unmarshal(data, &raw); err != nil {
		return Envelope{}, fmt.Errorf("event: %w", err)
	}
	var e Envelope
	var problems []string
	for _, err := range []error{
		stringField(raw, "id", true, &e.ID),
		stringField(raw, "source", true, &e.Source),
		stringField(raw, "detail-type", true, &e.DetailType),
		stringField(raw, "version", false, &e.Version),
		stringField(raw, "account", false, &e.Account),
		stringField(raw, "region", false, &e.Region),
		timeField(raw, &e.Time),
		resourcesField(raw, &e.Resources),
		detailField(raw, &e.Detail),
	} {
		if err != nil {
			problems = append(problems, err.Error())
		}
	}
	if problems != nil {
		return Envelope{}, errors.New("event: " + strings.Join(problems, "; "))
	}
	return e, nil
}

// stringField reads a string field; a required one must be present and not
// empty.
func stringField(raw map[string]json.RawMessage, name string, required bool, dst *string) error {
	r, ok := raw[name]
	if !ok {
		if required {
			return fmt.Errorf("%q is missing", name)
		}
		return nil
	}
	if !bytes.HasPrefix(r, []byte(`"`)) {
		return fmt.Errorf("%q must be a string", name)
	}
	if err := json.Unmarshal(r, dst); err != nil {
		return fmt.Errorf("%q: %w", name, err)
	}
	if required && *dst == "" {
		return fmt.Errorf("%q is empty", name)
	}
	return nil
}

func timeField(raw map[string]json.RawMessage, dst *time.Time) error {
	var s string
	if err := stringField(raw, "time", true, &s); err != nil {
		return err
	}
	t, err := time.Parse(time.RFC3339, s)
	if err != nil {
		return fmt.Errorf("\"time\" %q is not an RFC 3339 time such as 2017-12-22T18:43:48Z", s)
	}
	*dst = t
	return nil
}

func resourcesField(raw map[string]json.RawMessage, dst *[]string) error {
	*dst = []string{}
	r, ok := raw["resources"]
	if !ok {
		return nil
	}
	if err := json.Unmarshal(r, dst); err != nil || !bytes.HasPrefix(r, []byte("[")) {
		return errors.New(`"resources" must be an array of strings`)
	}
	return nil
}

func detailField(raw map[string]json.RawMessage, dst *json.RawMessage) error {
	r, ok := raw["detail"]
	if !ok {
		*dst = json.RawMessage(`{}`)
		return nil
	}
	if !bytes.HasPrefix(r, []byte("{")) {
		return errors.New(`"detail" must be a JSON object`)
	}
	*dst = append(json.RawMessage(nil), r...)
	return nil
}

// CheckEvent checks an event as EventBridge's TestEventPattern does before
// matching it, and as `scangate rules test` does: a JSON object of at most
// MaxEventSize bytes nesting at most MaxEventDepth levels, with id,
// source, detail-type and time (RFC 3339) given; version, account and
// region are strings if given, and resources an array of strings. Unlike
// Parse, which holds events to the shape scangate's own have, it takes a
// detail-type that is an array (as the events of EventBridge's "Exists
// matching" page are), which patterns match element by element, and a
// detail of any JSON type: one that is not an object has no fields, so a
// pattern on detail's fields does not match it; neither is an error.
func CheckEvent(data []byte) error {
	if _, err := pattern.DecodeEvent(data); err != nil {
		return err
	}
	var raw map[string]json.RawMessage
	if err := json.Unmarshal(data, &raw); err != nil {
		return fmt.Errorf("event: %w", err)
	}
	var e Envelope
	var problems []string
	for _, err := range []error{
		stringField(raw, "id", true, &e.ID),
		stringField(raw, "source", true, &e.Source),
		detailTypeField(raw),
		stringField(raw, "version", false, &e.Version),
		stringField(raw, "account", false, &e.Account),
		stringField(raw, "region", false, &e.Region),
		timeField(raw, &e.Time),
		resourcesField(raw, &e.Resources),
	} {
		if err != nil {
			problems = append(problems, err.Error())
		}
	}
	if problems != nil {
		return errors.New("event: " + strings.Join(problems, "; "))
	}
	return nil
}

// detailTypeField checks an event's detail-type: a string that is not
// empty, or an array.
func detailTypeField(raw map[string]json.RawMessage) error {
	r, ok := raw["detail-type"]
	switch {
	case !ok:
		return errors.New(`"detail-type" is missing`)
	case bytes.HasPrefix(r, []byte("[")):
		return nil
	case !bytes.HasPrefix(r, []byte(`"`)):
		return errors.New(`"detail-type" must be a string or an array`)
	}
	var s string
	return stringField(map[string]json.RawMessage{"detail-type": r}, "detail-type", true, &s)
}
