package bedrock

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/bedrockruntime/types"
	"github.com/aws/smithy-go"
	smithyhttp "github.com/aws/smithy-go/transport/http"

	"aigw/gateway"
)

// exceptionStatus is the HTTP status the Bedrock API reference gives each
// error code, by lower-cased code. In-stream exceptions come without a
// status of their own and take it from here.
var exceptionStatus = map[string]int{
	"validationexception":           http.StatusBadRequest,
	"servicequotaexceededexception": http.StatusBadRequest,
	"conflictexception":             http.StatusBadRequest,
	"accessdeniedexception":         http.StatusForbidden,
	"resourcenotfoundexception":     http.StatusNotFound,
	"modeltimeoutexception":         http.StatusRequestTimeout,
	"modelerrorexception":           http.StatusFailedDependency,
	"modelstreamerrorexception":     http.StatusFailedDependency,
	"throttlingexception":           http.StatusTooManyRequests,
	"modelnotreadyexception":        http.StatusTooManyRequests,
	"internalserverexception":       http.StatusInternalServerError,
	"serviceunavailableexception":   http.StatusServiceUnavailable,
}

// callError maps an error of a Converse or ConverseStream call. An error
// status becomes a *gateway.ProviderError carrying the status, the Bedrock
// error code as Type, the message and Retry-After; a canceled or expired
// context stays recognisable by errors.Is; anything else (a transport
// failure) is returned wrapped.
func (p *Provider) callError(ctx context.Context, op string, err error) error {
	if cerr := ctx.Err(); cerr != nil {
		if errors.Is(err, cerr) {
			return fmt.Errorf("%s: %s: %w", p.name, op, err)
		}
		return fmt.Errorf("%s: %s: %w: %w", p.name, op, cerr, err)
	}
	var re *smithyhttp.ResponseError
	if errors.As(err, &re) && re.Response != nil && re.HTTPStatusCode() >= 300 {
		pe := &gateway.ProviderError{
			Provider:   p.name,
			Status:     re.HTTPStatusCode(),
			RetryAfter: gateway.ParseRetryAfter(re.Response.Header, time.Now()),
		}
		var api smithy.APIError
		if errors.As(err, &api) {
			pe.Type, pe.Message = api.ErrorCode(), api.ErrorMessage()
		} else {
			pe.Message = "error body does not parse: " + http.StatusText(pe.Status)
		}
		return pe
	}
	return fmt.Errorf("%s: %s: %w", p.name, op, err)
}

// exceptionError maps an exception Bedrock sent inside a stream.
func exceptionError(provider string, api smithy.APIError) *gateway.ProviderError {
	code := api.ErrorCode()
	status, ok := exceptionStatus[strings.ToLower(code)]
	if !ok {
		status = http.StatusInternalServerError
	}
	msg := api.ErrorMessage()
	var mse *types.ModelStreamErrorException
	if errors.As(api, &mse) && mse.OriginalStatusCode != nil {
		msg += fmt.Sprintf(" (model status %d: %s)", *mse.OriginalStatusCode, deref(mse.OriginalMessage))
	}
	return &gateway.ProviderError{Provider: provider, Status: status, Type: code, Message: msg}
}
