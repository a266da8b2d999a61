package pipeline

// The details of the events the pipeline publishes, as CodePipeline's
// events name their fields. Rules match on these names and other packages
// decode them, so they are declared once, here.

// ExecutionDetail is the detail of a Pipeline Execution State Change.
type ExecutionDetail struct {
	Pipeline    string `json:"pipeline"`
	ExecutionID string `json:"execution-id"`
	Version     int    `json:"version"`
	State       string `json:"state"`
	Commit      string `json:"commit"`
	Ref         string `json:"ref"`
	Reason      string `json:"reason"`
}

// The states an ExecutionDetail names, as CodePipeline's events do.
const (
	ExecutionStarted    = "STARTED"
	ExecutionResumed    = "RESUMED"
	ExecutionSucceeded  = "SUCCEEDED"
	ExecutionFailed     = "FAILED"
	ExecutionStopped    = "STOPPED"
	ExecutionSuperseded = "SUPERSEDED"
)

// StageDetail is the detail of a Stage Execution State Change.
type StageDetail struct {
	Pipeline    string `json:"pipeline"`
	ExecutionID string `json:"execution-id"`
	Version     int    `json:"version"`
	Stage       string `json:"stage"`
	State       string `json:"state"`
	Message     string `json:"message"`
}

// ApprovalRequestedDetail is the detail of an Approval Requested event.
type ApprovalRequestedDetail struct {
	Pipeline       string `json:"pipeline"`
	ExecutionID    string `json:"execution-id"`
	Stage          string `json:"stage"`
	Action         string `json:"action"`
	ApprovalID     string `json:"approval-id"`
	RepositoryName string `json:"repository-name"`
	ImageDigest    string `json:"image-digest"`
	ImageURI       string `json:"image-uri"`
	Commit         string `json:"commit"`
	Expires        string `json:"expires"` // RFC 3339
	Notify         string `json:"notify"`  // the rule that tells people
	Mode           string `json:"mode"`
	// AnswerWith tells a person how to answer.
	AnswerWith string `json:"answer-with"`
}

// ApprovalOverriddenDetail is the detail of an Approval Overridden event.
type ApprovalOverriddenDetail struct {
	Pipeline       string   `json:"pipeline"`
	ExecutionID    string   `json:"execution-id"`
	ApprovalID     string   `json:"approval-id"`
	RepositoryName string   `json:"repository-name"`
	ImageDigest    string   `json:"image-digest"`
	Commit         string   `json:"commit"`
	OverriddenBy   string   `json:"overridden-by"`
	Comment        string   `json:"comment"`
	PolicySummary  string   `json:"policy-summary"`
	Accepted       []string `json:"accepted"`
	Expires        string   `json:"expires,omitempty"` // RFC 3339; none: until revoked
}
