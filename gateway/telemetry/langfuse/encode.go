package langfuse

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"time"

	"aigw/gateway"
)

// Ingestion event types.
const (
	typeTrace      = "trace-create"
	typeGeneration = "generation-create"
)

// Observation levels.
const levelError = "ERROR"

// timeLayout is ISO 8601 in UTC with microseconds, the resolution
// Langfuse recommends for event timestamps.
const timeLayout = "2006-01-02T15:04:05.000000Z07:00"

// event is one encoded ingestion event.
type event struct {
	id  string // the envelope's id, which Langfuse deduplicates on
	raw json.RawMessage
}

// envelope is an ingestion event as sent.
type envelope struct {
	ID        string `json:"id"`
	Timestamp string `json:"timestamp"`
	Type      string `json:"type"`
	Body      any    `json:"body"`
}

// traceBody is a trace-create event's body.
type traceBody struct {
	ID          string        `json:"id"`
	Timestamp   string        `json:"timestamp"`
	Name        string        `json:"name,omitempty"`
	UserID      string        `json:"userId,omitempty"`
	Environment string        `json:"environment,omitempty"`
	Metadata    traceMetadata `json:"metadata"`
}

// traceMetadata is a trace's metadata: who called.
type traceMetadata struct {
	Tenant  string `json:"tenant,omitempty"`
	Team    string `json:"team,omitempty"`
	KeyID   string `json:"key_id,omitempty"`
	AgentID string `json:"agent_id,omitempty"`
}

// generationMetadata is a generation's metadata: what the gateway did.
type generationMetadata struct {
	Status         int              `json:"status"`
	Attempts       int              `json:"attempts"`
	Stream         bool             `json:"stream"`
	Model          string           `json:"model,omitempty"` // the model asked for
	Provider       string           `json:"provider,omitempty"`
	Target         string           `json:"target,omitempty"`
	FinishReason   string           `json:"finish_reason,omitempty"`
	ErrorType      string           `json:"error_type,omitempty"`
	ErrorCode      string           `json:"error_code,omitempty"`
	ParentSpanID   string           `json:"parent_span_id,omitempty"`
	PriceVersion   string           `json:"price_version,omitempty"`
	UsageEstimated bool             `json:"usage_estimated,omitempty"`
	Guardrails     []map[string]any `json:"guardrails,omitempty"`
	GuardPolicy    string           `json:"guardrail_policy,omitempty"`
	GuardVersion   string           `json:"guardrail_policy_version,omitempty"`
}

// usageDetails are a generation's tokens.
type usageDetails struct {
	Input  int `json:"input"`
	Output int `json:"output"`
	Total  int `json:"total"`
}

// costDetails is a generation's cost in USD.
type costDetails struct {
	Total json.Number `json:"total"`
}

// generationBody is a generation-create event's body.
type generationBody struct {
	ID                  string             `json:"id"`
	TraceID             string             `json:"traceId"`
	Name                string             `json:"name,omitempty"`
	StartTime           string             `json:"startTime"`
	EndTime             string             `json:"endTime"`
	CompletionStartTime string             `json:"completionStartTime,omitempty"`
	Model               string             `json:"model,omitempty"`
	Input               json.RawMessage    `json:"input,omitempty"`
	Output              json.RawMessage    `json:"output,omitempty"`
	UsageDetails        *usageDetails      `json:"usageDetails,omitempty"`
	CostDetails         *costDetails       `json:"costDetails,omitempty"`
	Level               string             `json:"level,omitempty"`
	StatusMessage       string             `json:"statusMessage,omitempty"`
	Environment         string             `json:"environment,omitempty"`
	Metadata            generationMetadata `json:"metadata"`
}

// recordKey identifies a call: its trace id is not enough, since an agent
// may run several calls under one trace (its traceparent's).
func recordKey(r *gateway.CallRecord) string {
	return r.TraceID + "\x00" + r.ParentSpanID + "\x00" + strconv.FormatInt(r.Start.UnixNano(), 10)
}

// GenerationID is the id of the Langfuse generation exported for r: 16
// hex digits derived from its trace id, parent span id and start time, so
// that exporting r again (a retry) names the same generation, and two
// calls under one trace id name two.
func GenerationID(r *gateway.CallRecord) string {
	sum := sha256.Sum256([]byte("aigw/langfuse/generation\x00" + recordKey(r)))
	return hex.EncodeToString(sum[:8])
}

// eventID derives a deterministic ingestion event id, shaped as a UUID
// (version 8: application-defined), from the record's key and the event
// type.
func eventID(key, typ string) string {
	sum := sha256.Sum256([]byte("aigw/langfuse/event\x00" + typ + "\x00" + key))
	sum[6] = sum[6]&0x0f | 0x80 // version 8
	sum[8] = sum[8]&0x3f | 0x80 // RFC 9562 variant
	var b [36]byte
	hex.Encode(b[0:8], sum[0:4])
	b[8] = '-'
	hex.Encode(b[9:13], sum[4:6])
	b[13] = '-'
	hex.Encode(b[14:18], sum[6:8])
	b[18] = '-'
	hex.Encode(b[19:23], sum[8:10])
	b[23] = '-'
	hex.Encode(b[24:36], sum[10:16])
	return string(b[:])
}

func formatTime(t time.Time) string { return t.UTC().Format(timeLayout) }

// encodeRecord encodes r as its trace-create and generation-create events.
func (e *Exporter) encodeRecord(r *gateway.CallRecord) ([2]event, error) {
	var evs [2]event
	if r.TraceID == "" {
		return evs, errors.New("record has no trace id")
	}
	key := recordKey(r)
	end := r.Start.Add(r.Duration)

	trace := traceBody{
		ID:          r.TraceID,
		Timestamp:   formatTime(r.Start),
		Name:        r.Endpoint,
		UserID:      cmpOr(r.AgentID, r.KeyID),
		Environment: e.cfg.Environment,
		Metadata:    traceMetadata{Tenant: r.Tenant, Team: r.Team, KeyID: r.KeyID, AgentID: r.AgentID},
	}

	gen := generationBody{
		ID:          GenerationID(r),
		TraceID:     r.TraceID,
		Name:        r.Endpoint,
		StartTime:   formatTime(r.Start),
		EndTime:     formatTime(end),
		Model:       cmpOr(r.UpstreamModel, r.Model),
		Environment: e.cfg.Environment,
		Metadata: generationMetadata{
			Status: r.Status, Attempts: r.Attempts, Stream: r.Stream, Model: r.Model,
			Provider: r.Provider, Target: r.Target, FinishReason: r.FinishReason,
			ErrorType: r.ErrorType, ErrorCode: r.ErrorCode, ParentSpanID: r.ParentSpanID,
			Guardrails: r.Guardrails, GuardPolicy: r.GuardrailPolicy, GuardVersion: r.GuardrailPolicyVersion,
		},
	}
	if r.TTFB > 0 {
		gen.CompletionStartTime = formatTime(r.Start.Add(r.TTFB))
	}
	if u := r.Usage; u != nil {
		gen.UsageDetails = &usageDetails{Input: u.PromptTokens, Output: u.CompletionTokens, Total: u.TotalTokens}
		gen.Metadata.UsageEstimated = u.Estimated
	}
	if r.Priced {
		// The exact decimal ("0.000012500") is a valid JSON number.
		gen.CostDetails = &costDetails{Total: json.Number(r.Cost.Amount.String())}
		gen.Metadata.PriceVersion = r.Cost.PriceVersion
	}
	if r.Status >= 400 || r.ErrorType != "" {
		gen.Level = levelError
		gen.StatusMessage = statusMessage(r)
	}
	if e.cfg.CaptureContent {
		gen.Input = content(r.Input)
		gen.Output = content(r.Output)
	}

	ts := formatTime(end)
	for i, ev := range []envelope{
		{ID: eventID(key, typeTrace), Timestamp: ts, Type: typeTrace, Body: &trace},
		{ID: eventID(key, typeGeneration), Timestamp: ts, Type: typeGeneration, Body: &gen},
	} {
		raw, err := json.Marshal(&ev)
		if err != nil {
			return evs, fmt.Errorf("encode %s: %w", ev.Type, err)
		}
		evs[i] = event{id: ev.ID, raw: raw}
	}
	return evs, nil
}

// statusMessage describes a failed call: its error type and code and its
// HTTP status, e.g. "rate_limit_error: rate_limit_exceeded (HTTP 429)".
func statusMessage(r *gateway.CallRecord) string {
	s := cmpOr(r.ErrorType, "error")
	if r.ErrorCode != "" {
		s += ": " + r.ErrorCode
	}
	if r.Status != 0 {
		s += " (HTTP " + strconv.Itoa(r.Status) + ")"
	}
	return s
}

// content is a body as a JSON value: itself when it is JSON, else a JSON
// string of it (e.g. a recorded event stream); nil when empty.
func content(b []byte) json.RawMessage {
	if len(b) == 0 {
		return nil
	}
	if json.Valid(b) {
		return b
	}
	s, err := json.Marshal(string(b))
	if err != nil {
		return nil
	}
	return s
}

func cmpOr(s, def string) string {
	if s == "" {
		return def
	}
	return s
}
