package gateway

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"time"
)

// Error is an error the gateway answers with, in OpenAI's JSON shape:
// {"error":{"message","type","param","code"}}. Message is shown to the
// client and must hold no secret and nothing of another tenant; Err, the
// cause, is logged, never shown.
type Error struct {
	Status     int
	Type       string
	Code       string
	Param      string
	Message    string
	RetryAfter time.Duration
	Err        error
}

func (e *Error) Error() string {
	if e.Err != nil {
		return e.Message + ": " + e.Err.Error()
	}
	return e.Message
}

func (e *Error) Unwrap() error { return e.Err }

// OpenAI error types.
const (
	TypeInvalidRequest = "invalid_request_error"
	TypeAuthentication = "authentication_error"
	TypePermission     = "permission_error"
	TypeNotFound       = "not_found_error"
	TypeRateLimit      = "rate_limit_error"
	TypeServer         = "server_error"
	TypeUnavailable    = "service_unavailable"
	TypeUpstream       = "upstream_error"
)

// Errorf returns an invalid_request_error with status 400.
func Errorf(param, format string, args ...any) *Error {
	return &Error{Status: http.StatusBadRequest, Type: TypeInvalidRequest, Param: param, Message: fmt.Sprintf(format, args...)}
}

// ErrStreamMalformed is wrapped by stream errors for an upstream chunk that
// does not parse.
var ErrStreamMalformed = errors.New("malformed stream chunk")

// ErrStreamCut is wrapped by stream errors for an upstream stream that
// ended without its end marker.
var ErrStreamCut = errors.New("upstream stream ended before its end marker")

// ProviderError is an error status from an upstream.
type ProviderError struct {
	Provider   string
	Status     int
	Type       string // the upstream's error type, e.g. rate_limit_error, overloaded_error
	Code       string
	Message    string
	RetryAfter time.Duration
}

func (e *ProviderError) Error() string {
	s := fmt.Sprintf("%s: status %d", e.Provider, e.Status)
	if e.Type != "" {
		s += " " + e.Type
	}
	if e.Message != "" {
		s += ": " + e.Message
	}
	return s
}

// Outcomes of an attempt (see [Attempt]).
const (
	OutcomeOK          = "ok"
	OutcomeError       = "error"
	OutcomeRateLimited = "rate_limited"
	OutcomeTimeout     = "timeout"
	OutcomeOverloaded  = "overloaded"
	OutcomeCanceled    = "canceled"
	OutcomeRejected    = "rejected"
)

// Classify says what an attempt's error means: its outcome, whether another
// try (the same target again or the next one) may succeed, and the upstream
// status (0 if none). A client error (400, 404, 413, 422: the request itself
// is wrong) is not retryable; 424 (Bedrock: the model failed) is; 401 and 403 are, on another target (the
// credentials are per provider).
func Classify(err error) (outcome string, retryable bool, status int) {
	if err == nil {
		return OutcomeOK, false, 0
	}
	var pe *ProviderError
	if errors.As(err, &pe) {
		switch s := pe.Status; {
		case s == http.StatusTooManyRequests:
			return OutcomeRateLimited, true, s
		case s == 529 || s == http.StatusServiceUnavailable:
			return OutcomeOverloaded, true, s
		case s == http.StatusRequestTimeout || s == http.StatusGatewayTimeout:
			return OutcomeTimeout, true, s
		case s >= 500 || s == http.StatusFailedDependency || s == http.StatusConflict || s == http.StatusTooEarly || s == http.StatusUnauthorized || s == http.StatusForbidden:
			return OutcomeError, true, s
		default:
			return OutcomeRejected, false, s
		}
	}
	switch {
	case errors.Is(err, context.Canceled):
		return OutcomeCanceled, false, 0
	case errors.Is(err, context.DeadlineExceeded):
		return OutcomeTimeout, true, 0
	}
	var ge *Error
	if errors.As(err, &ge) && ge.Status < 500 {
		return OutcomeRejected, false, 0
	}
	return OutcomeError, true, 0
}

// ParseRetryAfter reads retry-after-ms, then Retry-After (seconds or an HTTP
// date); 0 if absent or unparsable. It is capped at one hour.
func ParseRetryAfter(h http.Header, now time.Time) time.Duration {
	var d time.Duration
	if v := h.Get("retry-after-ms"); v != "" {
		if ms, err := strconv.ParseFloat(v, 64); err == nil && ms > 0 {
			d = time.Duration(ms * float64(time.Millisecond))
		}
	} else if v := h.Get("Retry-After"); v != "" {
		if s, err := strconv.ParseFloat(v, 64); err == nil && s > 0 {
			d = time.Duration(s * float64(time.Second))
		} else if t, err := http.ParseTime(v); err == nil {
			d = t.Sub(now)
		}
	}
	if d < 0 {
		return 0
	}
	return min(d, time.Hour)
}
