package router

import (
	"bytes"
	"io"
	"strconv"
	"strings"
	"time"

	"aigw/gateway"
)

// outcomes are the attempt outcomes counted per target, in metric order.
var outcomes = [...]string{
	gateway.OutcomeOK, gateway.OutcomeError, gateway.OutcomeRateLimited, gateway.OutcomeTimeout,
	gateway.OutcomeOverloaded, gateway.OutcomeCanceled, gateway.OutcomeRejected,
}

func outcomeIndex(o string) int {
	for i, s := range outcomes {
		if s == o {
			return i
		}
	}
	return 1 // error
}

// TargetHealth is a target's state as the router sees it.
type TargetHealth struct {
	Name     string `json:"name"`
	Provider string `json:"provider"`
	Model    string `json:"model"`
	// State is the breaker's state: closed, open or half_open (an open
	// breaker whose OpenFor passed shows half_open: the next attempt is a
	// probe).
	State string `json:"state"`
	// Requests and Failures count the attempts in the breaker's window
	// (rejected and canceled ones are not counted; slow successes count
	// as failures); ErrorRate is Failures/Requests.
	Requests  int     `json:"requests"`
	Failures  int     `json:"failures"`
	ErrorRate float64 `json:"error_rate"`
	// MeanLatency and MaxLatency are over the window's attempts (for a
	// stream, the time to its first chunk).
	MeanLatency time.Duration `json:"mean_latency_ns"`
	MaxLatency  time.Duration `json:"max_latency_ns"`
	// InFlight counts the target's attempts running now.
	InFlight int `json:"in_flight"`
	// BulkheadLimit and BulkheadInUse are the provider's bulkhead (shared
	// by the provider's targets).
	BulkheadLimit int `json:"bulkhead_limit"`
	BulkheadInUse int `json:"bulkhead_in_use"`
	// OpenUntil is when an open breaker lets a probe through (zero unless
	// open).
	OpenUntil time.Time `json:"open_until,omitzero"`
}

// Health returns every target's health, each target once, in the order
// the routes first name them.
func (r *Router) Health() []TargetHealth {
	now := r.now()
	out := make([]TargetHealth, len(r.targets))
	for i, t := range r.targets {
		v := t.breaker.snapshot(now)
		h := TargetHealth{
			Name: t.Name, Provider: t.Provider, Model: t.Model, State: v.state.String(),
			Requests: v.requests, Failures: v.failures, MaxLatency: v.latMax,
			InFlight: int(t.inflight.Load()), BulkheadLimit: t.bulk.limit(), BulkheadInUse: t.bulk.inUse(),
			OpenUntil: v.openUntil,
		}
		if v.requests > 0 {
			h.ErrorRate = float64(v.failures) / float64(v.requests)
			h.MeanLatency = v.latSum / time.Duration(v.requests)
		}
		out[i] = h
	}
	return out
}

// WriteMetrics writes the router's metrics in the Prometheus text
// exposition format (version 0.0.4).
//
// SPEC: https://prometheus.io/docs/instrumenting/exposition_formats/
func (r *Router) WriteMetrics(w io.Writer) {
	now := r.now()
	var b bytes.Buffer
	header(&b, "aigw_router_target_state", "gauge", "Circuit breaker state per target: 0 closed, 1 half-open, 2 open.")
	for _, t := range r.targets {
		sample(&b, "aigw_router_target_state", int64(t.breaker.snapshot(now).state), "target", t.Name, "provider", t.Provider)
	}
	header(&b, "aigw_router_attempts_total", "counter", "Attempts per target by outcome.")
	for _, t := range r.targets {
		for i, o := range outcomes {
			sample(&b, "aigw_router_attempts_total", t.attempts[i].Load(), "target", t.Name, "outcome", o)
		}
	}
	header(&b, "aigw_router_target_inflight", "gauge", "Attempts running per target.")
	for _, t := range r.targets {
		sample(&b, "aigw_router_target_inflight", t.inflight.Load(), "target", t.Name)
	}
	header(&b, "aigw_router_bulkhead_in_use", "gauge", "Bulkhead slots in use per provider.")
	for _, k := range r.bulkheads {
		sample(&b, "aigw_router_bulkhead_in_use", int64(k.inUse()), "provider", k.provider)
	}
	header(&b, "aigw_router_bulkhead_limit", "gauge", "Bulkhead size (concurrent attempts allowed) per provider.")
	for _, k := range r.bulkheads {
		sample(&b, "aigw_router_bulkhead_limit", int64(k.limit()), "provider", k.provider)
	}
	header(&b, "aigw_router_fallbacks_total", "counter", "Fallbacks from a failed target to the next, per route.")
	for _, rt := range r.routeList {
		sample(&b, "aigw_router_fallbacks_total", rt.fallbacks.Load(), "route", rt.Name)
	}
	w.Write(b.Bytes())
}

func header(b *bytes.Buffer, name, typ, help string) {
	b.WriteString("# HELP ")
	b.WriteString(name)
	b.WriteByte(' ')
	b.WriteString(help)
	b.WriteString("\n# TYPE ")
	b.WriteString(name)
	b.WriteByte(' ')
	b.WriteString(typ)
	b.WriteByte('\n')
}

// sample writes one sample; labels are name, value pairs.
func sample(b *bytes.Buffer, name string, v int64, labels ...string) {
	b.WriteString(name)
	b.WriteByte('{')
	for i := 0; i+1 < len(labels); i += 2 {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteString(labels[i])
		b.WriteString(`="`)
		b.WriteString(labelEscaper.Replace(labels[i+1]))
		b.WriteByte('"')
	}
	b.WriteString("} ")
	b.WriteString(strconv.FormatInt(v, 10))
	b.WriteByte('\n')
}

// labelEscaper escapes a label value: backslash, double quote and line
// feed.
var labelEscaper = strings.NewReplacer(`\`, `\\`, `"`, `\"`, "\n", `\n`)
