package langfuse

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"time"

	"aigw/gateway"
)

// maxResponseBody bounds the response bytes read.
const maxResponseBody = 1 << 20

// batchOverhead is the size of `{"batch":[]}`.
const batchOverhead = len(`{"batch":[]}`)

// exportRecords encodes recs and sends them in batches of at most
// MaxBatchBytes.
func (e *Exporter) exportRecords(ctx context.Context, recs []*gateway.CallRecord) {
	if ctx.Err() != nil { // Close's deadline passed: Close logs the count
		e.abandon(2 * len(recs))
		return
	}
	evs := make([]event, 0, 2*len(recs))
	for _, r := range recs {
		pair, err := e.encodeRecord(r)
		if err == nil && batchOverhead+len(pair[0].raw)+len(pair[1].raw)+1 > e.cfg.MaxBatchBytes {
			err = fmt.Errorf("its events take %d bytes, more than MaxBatchBytes %d", len(pair[0].raw)+len(pair[1].raw), e.cfg.MaxBatchBytes)
		}
		if err != nil {
			e.failed.Add(2)
			e.log.Warn("langfuse: call record not exported", slog.String("trace_id", r.TraceID), slog.Any("error", err))
			continue
		}
		evs = append(evs, pair[0], pair[1])
	}
	start, size := 0, batchOverhead
	for i, ev := range evs {
		n := len(ev.raw) + 1 // and a comma
		if i > start && size+n > e.cfg.MaxBatchBytes {
			e.send(ctx, evs[start:i])
			start, size = i, batchOverhead
		}
		size += n
	}
	if start < len(evs) {
		e.send(ctx, evs[start:])
	}
}

// response is what Langfuse answered to a batch.
type response struct {
	status     int
	body       []byte
	retryAfter time.Duration
}

// ingestionResponse is the body of a 207.
type ingestionResponse struct {
	Successes []struct {
		ID     string `json:"id"`
		Status int    `json:"status"`
	} `json:"successes"`
	Errors []struct {
		ID      string          `json:"id"`
		Status  int             `json:"status"`
		Message string          `json:"message"`
		Error   json.RawMessage `json:"error"`
	} `json:"errors"`
}

// send sends evs as one batch, retrying what failed transiently.
func (e *Exporter) send(ctx context.Context, evs []event) {
	pending := evs
	for attempt := 1; ; attempt++ {
		var retryAfter time.Duration
		var why error
		if ctx.Err() != nil {
			e.abandon(len(pending))
			return
		}
		res, err := e.post(ctx, pending)
		switch {
		case err != nil:
			if ctx.Err() != nil {
				e.abandon(len(pending))
				return
			}
			why = err
		case res.status == http.StatusRequestEntityTooLarge && len(pending) > 1:
			half := len(pending) / 2
			e.send(ctx, pending[:half])
			e.send(ctx, pending[half:])
			return
		case res.status == http.StatusTooManyRequests || res.status >= 500:
			retryAfter = res.retryAfter
			why = fmt.Errorf("langfuse answered HTTP %d", res.status)
		case res.status >= 200 && res.status < 300:
			retry := e.settle(pending, res)
			if len(retry) == 0 {
				return
			}
			pending = retry
			why = fmt.Errorf("langfuse failed %d events with a server error", len(retry))
		default:
			why = fmt.Errorf("langfuse answered HTTP %d", res.status)
			if res.status != http.StatusUnauthorized && res.status != http.StatusForbidden && len(res.body) > 0 {
				why = fmt.Errorf("%w: %s", why, snippet(res.body))
			}
			e.fail(pending, attempt, why)
			return
		}
		if attempt >= e.cfg.MaxAttempts {
			e.fail(pending, attempt, why)
			return
		}
		wait := e.backoff(attempt, retryAfter)
		e.log.Debug("langfuse: retrying batch", slog.Int("events", len(pending)), slog.Int("attempt", attempt),
			slog.Duration("wait", wait), slog.Any("error", why))
		if !gateway.Sleep(ctx, wait) {
			e.abandon(len(pending))
			return
		}
	}
}

// fail gives up on evs.
func (e *Exporter) fail(evs []event, attempts int, err error) {
	e.failed.Add(int64(len(evs)))
	e.log.Warn("langfuse: events not exported", slog.Int("events", len(evs)), slog.Int("attempts", attempts),
		slog.Any("error", err))
}

// abandon gives up on n events because Close's deadline passed (Close
// logs them, once).
func (e *Exporter) abandon(n int) {
	e.failed.Add(int64(n))
	e.abandoned.Add(int64(n))
}

// settle counts the results of a 2xx and returns the events Langfuse
// failed with a 429 or 5xx of their own (to retry).
func (e *Exporter) settle(evs []event, res response) []event {
	var ir ingestionResponse
	if len(res.body) > 0 {
		if err := json.Unmarshal(res.body, &ir); err != nil && res.status == http.StatusMultiStatus {
			e.log.Warn("langfuse: 207 response does not parse; counting its events as exported",
				slog.Int("events", len(evs)), slog.Any("error", err))
		}
	}
	if len(ir.Errors) == 0 {
		e.exported.Add(int64(len(evs)))
		return nil
	}
	errs := make(map[string]int, len(ir.Errors)) // id -> index in ir.Errors
	for i, er := range ir.Errors {
		errs[er.ID] = i
	}
	var retry []event
	var rejected int
	first := -1
	for _, ev := range evs {
		i, ok := errs[ev.id]
		if !ok {
			continue
		}
		if st := ir.Errors[i].Status; st == http.StatusTooManyRequests || st >= 500 {
			retry = append(retry, ev)
			continue
		}
		rejected++
		if first < 0 {
			first = i
		}
	}
	e.exported.Add(int64(len(evs) - len(retry) - rejected))
	if rejected > 0 {
		e.rejected.Add(int64(rejected))
		er := ir.Errors[first]
		msg := er.Message
		if msg == "" && len(er.Error) > 0 {
			msg = string(er.Error)
		}
		e.log.Warn("langfuse: events rejected as invalid", slog.Int("rejected", rejected), slog.Int("events", len(evs)),
			slog.String("first_id", er.ID), slog.Int("first_status", er.Status), slog.String("first_message", snippet([]byte(msg))))
	}
	return retry
}

// post sends one batch request.
func (e *Exporter) post(ctx context.Context, evs []event) (response, error) {
	n := batchOverhead
	for _, ev := range evs {
		n += len(ev.raw) + 1
	}
	body := make([]byte, 0, n)
	body = append(body, `{"batch":[`...)
	for i, ev := range evs {
		if i > 0 {
			body = append(body, ',')
		}
		body = append(body, ev.raw...)
	}
	body = append(body, "]}"...)

	ctx, cancel := context.WithTimeout(ctx, e.cfg.Timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, e.endpoint, bytes.NewReader(body))
	if err != nil {
		return response{}, fmt.Errorf("make request: %w", err)
	}
	req.Header.Set("Authorization", e.auth)
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", "aigw-langfuse")
	resp, err := e.client.Do(req)
	if err != nil {
		return response{}, fmt.Errorf("post batch: %w", unwrapURLError(err))
	}
	defer gateway.DrainBody(resp.Body)
	b, err := io.ReadAll(io.LimitReader(resp.Body, maxResponseBody))
	if err != nil && resp.StatusCode >= 200 && resp.StatusCode < 300 {
		// The batch was taken; only the per-event results are lost.
		b = nil
	}
	return response{status: resp.StatusCode, body: b, retryAfter: gateway.ParseRetryAfter(resp.Header, time.Now())}, nil
}

// backoff is the wait before the attempt after attempt (see
// gateway.RetryDelay).
func (e *Exporter) backoff(attempt int, retryAfter time.Duration) time.Duration {
	return gateway.RetryDelay(attempt, e.cfg.MinBackoff, e.cfg.MaxBackoff, retryAfter)
}

// unwrapURLError drops the URL net/http puts in its errors.
func unwrapURLError(err error) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		return ue.Err
	}
	return err
}

// snippet is the start of a response body, for logs.
func snippet(b []byte) string {
	const n = 200
	if len(b) > n {
		return strings.ToValidUTF8(string(b[:n]), "") + "…"
	}
	return strings.ToValidUTF8(string(b), "\uFFFD")
}
