package gemini

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"time"

	"aigw/gateway"
)

// maxErrorBody bounds how much of an error body is read.
const maxErrorBody = 1 << 20

// statusError turns an error response into a *gateway.ProviderError: the
// status, Google's status name as Type (RESOURCE_EXHAUSTED, ...), the
// ErrorInfo reason as Code (API_KEY_INVALID, ...), the message, and the
// retry delay from Retry-After or else from a google.rpc.RetryInfo detail.
func (p *Provider) statusError(resp *http.Response) error {
	b, _ := io.ReadAll(io.LimitReader(resp.Body, maxErrorBody))
	if e := parseError(b); e != nil {
		return p.apiError(e, resp.StatusCode, resp.Header)
	}
	msg := strings.TrimSpace(string(b))
	if len(msg) > 512 {
		msg = msg[:512]
	}
	if msg == "" {
		msg = http.StatusText(resp.StatusCode)
	}
	return &gateway.ProviderError{
		Provider:   p.name,
		Status:     resp.StatusCode,
		Message:    msg,
		RetryAfter: gateway.ParseRetryAfter(resp.Header, time.Now()),
	}
}

// parseError reads Google's error body, {"error":{...}} or (from the
// JSON-array stream endpoint) [{"error":{...}}]; nil if b is neither.
func parseError(b []byte) *apiError {
	b = bytes.TrimSpace(b)
	if len(b) > 0 && b[0] == '[' {
		var arr []errorBody
		if json.Unmarshal(b, &arr) != nil || len(arr) == 0 {
			return nil
		}
		return arr[0].Error
	}
	var eb errorBody
	if json.Unmarshal(b, &eb) != nil {
		return nil
	}
	return eb.Error
}

// apiError converts an error object; status is the HTTP status, used when
// the object carries no code (in-stream errors carry one).
func (p *Provider) apiError(e *apiError, status int, h http.Header) *gateway.ProviderError {
	if e.Code != 0 {
		status = e.Code
	} else if status < 400 { // an error object in a 200 answer or a stream
		status = http.StatusInternalServerError
	}
	pe := &gateway.ProviderError{
		Provider: p.name,
		Status:   status,
		Type:     e.Status,
		Message:  e.Message,
	}
	if h != nil {
		pe.RetryAfter = gateway.ParseRetryAfter(h, time.Now())
	}
	for _, d := range e.Details {
		switch {
		case strings.HasSuffix(d.Type, "/google.rpc.RetryInfo"):
			if pe.RetryAfter == 0 {
				pe.RetryAfter = parseDelay(d.RetryDelay)
			}
		case strings.HasSuffix(d.Type, "/google.rpc.ErrorInfo"):
			if pe.Code == "" {
				pe.Code = d.Reason
			}
		}
	}
	return pe
}

// parseDelay reads a protobuf Duration in JSON ("30s", "1.500s"); 0 if it
// does not parse. It is capped at one hour, as gateway.ParseRetryAfter is.
func parseDelay(s string) time.Duration {
	if !strings.HasSuffix(s, "s") {
		return 0
	}
	d, err := time.ParseDuration(s)
	if err != nil || d < 0 {
		return 0
	}
	return min(d, time.Hour)
}
