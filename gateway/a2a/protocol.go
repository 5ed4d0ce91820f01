package a2a

import (
	"encoding/json"
	"fmt"
)

// The A2A JSON-RPC 2.0 binding, as much of it as the proxy reads or writes.
// Objects the proxy passes through (parts, artifacts, history) stay raw
// JSON, so nothing an agent sends is lost in transit.
//
// SPEC: https://a2a-protocol.org/v0.3.0/specification/

// Methods of the JSON-RPC binding.
const (
	MethodSend         = "message/send"
	MethodStream       = "message/stream"
	MethodGet          = "tasks/get"
	MethodCancel       = "tasks/cancel"
	MethodPushSet      = "tasks/pushNotificationConfig/set"
	MethodPushGet      = "tasks/pushNotificationConfig/get"
	MethodPushList     = "tasks/pushNotificationConfig/list"
	MethodPushDelete   = "tasks/pushNotificationConfig/delete"
	MethodResubscribe  = "tasks/resubscribe"
	MethodExtendedCard = "agent/getAuthenticatedExtendedCard"
)

// JSON-RPC 2.0 error codes, and the A2A ones (-32001 to -32007).
const (
	CodeParseError              = -32700
	CodeInvalidRequest          = -32600
	CodeMethodNotFound          = -32601
	CodeInvalidParams           = -32602
	CodeInternal                = -32603
	CodeTaskNotFound            = -32001
	CodeTaskNotCancelable       = -32002
	CodePushNotSupported        = -32003
	CodeUnsupportedOperation    = -32004
	CodeContentTypeNotSupported = -32005
	CodeInvalidAgentResponse    = -32006
)

// Error codes of the gateway itself, in the JSON-RPC range reserved for
// implementations (-32000 to -32099). Every error carries data.reason, a
// stable snake_case word (see the Reason constants).
const (
	// CodeUnauthenticated: no or bad gateway key, or no X-Aigw-Agent
	// (HTTP 401).
	CodeUnauthenticated = -32030
	// CodeAgentNotFound: no agent of the caller's tenant has that name
	// (HTTP 404).
	CodeAgentNotFound = -32031
	// CodeDelegationNotAllowed: the caller may not delegate to the callee,
	// or must do it under its own delegation token.
	CodeDelegationNotAllowed = -32032
	// CodeTokenInvalid: the delegation token is malformed, badly signed,
	// expired, of another tenant or issuer, for another callee, or its
	// task has ended.
	CodeTokenInvalid = -32033
	// CodeDelegationWidened: the delegation asks for more than its parent
	// has (scopes, budget, expiry, depth).
	CodeDelegationWidened = -32034
	// CodeDelegationLoop: the callee is already on the delegation chain.
	CodeDelegationLoop = -32035
	// CodeDepthExceeded: the delegation would be deeper than allowed.
	CodeDepthExceeded = -32036
	// CodeTooLarge: the request is over the size limit (HTTP 413).
	CodeTooLarge = -32037
	// CodeLedgerUnavailable: the audit ledger did not record the call, so
	// it was not made or its answer is withheld (fail-closed).
	CodeLedgerUnavailable = -32038
	// CodeUpstreamUnavailable: the callee's endpoint did not answer, or
	// answered with an HTTP error.
	CodeUpstreamUnavailable = -32039
	// CodeInProgress: a request with the same messageId is still in
	// flight; retry later.
	CodeInProgress = -32040
)

// RPCError is a JSON-RPC error object. Data, when set, is an object
// whose "reason" names the refusal.
type RPCError struct {
	Code    int            `json:"code"`
	Message string         `json:"message"`
	Data    map[string]any `json:"data,omitempty"`
}

// Error describes the error with its code.
func (e *RPCError) Error() string { return fmt.Sprintf("a2a: %s (%d)", e.Message, e.Code) }

// Reason returns data.reason ("" when none).
func (e *RPCError) Reason() string {
	r, _ := e.Data["reason"].(string)
	return r
}

// rpcErr returns an error with data {"reason": reason} plus kv pairs.
func rpcErr(code int, reason, format string, args ...any) *RPCError {
	e := &RPCError{Code: code, Message: fmt.Sprintf(format, args...)}
	if reason != "" {
		e.Data = map[string]any{"reason": reason}
	}
	return e
}

// Request is a JSON-RPC request.
type Request struct {
	JSONRPC string          `json:"jsonrpc"`
	ID      json.RawMessage `json:"id,omitempty"`
	Method  string          `json:"method"`
	Params  json.RawMessage `json:"params,omitempty"`
}

// Response is a JSON-RPC response: Result or Error.
type Response struct {
	JSONRPC string          `json:"jsonrpc"`
	ID      json.RawMessage `json:"id"`
	Result  json.RawMessage `json:"result,omitempty"`
	Error   *RPCError       `json:"error,omitempty"`
}

// TaskState is the state of a task.
type TaskState string

// Task states of the specification.
const (
	StateSubmitted     TaskState = "submitted"
	StateWorking       TaskState = "working"
	StateInputRequired TaskState = "input-required"
	StateAuthRequired  TaskState = "auth-required"
	StateCompleted     TaskState = "completed"
	StateFailed        TaskState = "failed"
	StateCanceled      TaskState = "canceled"
	StateRejected      TaskState = "rejected"
)

// Kinds of results (the "kind" discriminator).
const (
	KindTask           = "task"
	KindMessage        = "message"
	KindStatusUpdate   = "status-update"
	KindArtifactUpdate = "artifact-update"
)

// Part is a part of a message or artifact: kind "text" (Text), "file"
// (File) or "data" (Data).
type Part struct {
	Kind     string          `json:"kind"`
	Text     string          `json:"text,omitempty"`
	File     json.RawMessage `json:"file,omitempty"`
	Data     json.RawMessage `json:"data,omitempty"`
	Metadata map[string]any  `json:"metadata,omitempty"`
}

// Message is one turn of a conversation.
type Message struct {
	Role             string         `json:"role"`
	Parts            []Part         `json:"parts"`
	MessageID        string         `json:"messageId"`
	TaskID           string         `json:"taskId,omitempty"`
	ContextID        string         `json:"contextId,omitempty"`
	ReferenceTaskIDs []string       `json:"referenceTaskIds,omitempty"`
	Extensions       []string       `json:"extensions,omitempty"`
	Metadata         map[string]any `json:"metadata,omitempty"`
	Kind             string         `json:"kind"`
}

// TaskStatus is a task's state at a time.
type TaskStatus struct {
	State     TaskState       `json:"state"`
	Message   json.RawMessage `json:"message,omitempty"`
	Timestamp string          `json:"timestamp,omitempty"`
}

// Task is a unit of work of an agent.
type Task struct {
	ID        string            `json:"id"`
	ContextID string            `json:"contextId"`
	Status    TaskStatus        `json:"status"`
	History   []json.RawMessage `json:"history,omitempty"`
	Artifacts []json.RawMessage `json:"artifacts,omitempty"`
	Metadata  map[string]any    `json:"metadata,omitempty"`
	Kind      string            `json:"kind"`
}

// TaskStatusUpdateEvent is a streamed change of a task's status.
type TaskStatusUpdateEvent struct {
	TaskID    string         `json:"taskId"`
	ContextID string         `json:"contextId"`
	Kind      string         `json:"kind"`
	Status    TaskStatus     `json:"status"`
	Final     bool           `json:"final"`
	Metadata  map[string]any `json:"metadata,omitempty"`
}

// PushAuthentication is how an agent authenticates to a webhook.
type PushAuthentication struct {
	Schemes     []string `json:"schemes"`
	Credentials string   `json:"credentials,omitempty"`
}

// PushNotificationConfig is a webhook for a task's updates. Through the
// gateway, Token is the Standard Webhooks signing secret of the
// notifications ("whsec_<base64>" or a raw string of at least 24 bytes).
type PushNotificationConfig struct {
	ID             string              `json:"id,omitempty"`
	URL            string              `json:"url"`
	Token          string              `json:"token,omitempty"`
	Authentication *PushAuthentication `json:"authentication,omitempty"`
}

// TaskPushNotificationConfig ties a push notification config to a task.
type TaskPushNotificationConfig struct {
	TaskID                 string                 `json:"taskId"`
	PushNotificationConfig PushNotificationConfig `json:"pushNotificationConfig"`
}

// AgentCapabilities are the optional features of an agent.
type AgentCapabilities struct {
	Streaming              bool `json:"streaming,omitempty"`
	PushNotifications      bool `json:"pushNotifications,omitempty"`
	StateTransitionHistory bool `json:"stateTransitionHistory,omitempty"`
}

// AgentSkill is something an agent can do.
type AgentSkill struct {
	ID          string   `json:"id"`
	Name        string   `json:"name"`
	Description string   `json:"description"`
	Tags        []string `json:"tags"`
	Examples    []string `json:"examples,omitempty"`
	InputModes  []string `json:"inputModes,omitempty"`
	OutputModes []string `json:"outputModes,omitempty"`
}

// AgentCard describes an agent. Only the members below are typed; a card
// fetched from an agent keeps its other members when the gateway
// publishes it.
type AgentCard struct {
	ProtocolVersion    string                    `json:"protocolVersion,omitempty"`
	Name               string                    `json:"name"`
	Description        string                    `json:"description"`
	URL                string                    `json:"url"`
	PreferredTransport string                    `json:"preferredTransport,omitempty"`
	Version            string                    `json:"version"`
	Capabilities       AgentCapabilities         `json:"capabilities"`
	SecuritySchemes    map[string]map[string]any `json:"securitySchemes,omitempty"`
	Security           []map[string][]string     `json:"security,omitempty"`
	DefaultInputModes  []string                  `json:"defaultInputModes"`
	DefaultOutputModes []string                  `json:"defaultOutputModes"`
	Skills             []AgentSkill              `json:"skills"`
}

// ProtocolVersion is the A2A version the gateway's cards declare.
const ProtocolVersion = "0.3.0"
