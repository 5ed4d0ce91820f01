// Package mcp is the gateway's Model Context Protocol side: one streamable
// HTTP endpoint (mounted at /mcp) that serves, to agents authenticated
// with their gateway key,
//
//   - the gateway itself as context: tools, resources and prompts for the
//     models the caller may use, the guardrail rules that apply to it, its
//     tenant's usage and budgets, and inclusion proofs of its own ledger
//     events (see [Config]; a nil function leaves its feature out);
//   - an MCP gateway: the tools of upstream MCP servers (streamable HTTP,
//     or stdio processes the gateway launches) registered per tenant,
//     named "<server>__<tool>", each call checked against the upstream's
//     tool policy (package gateway/guard/tools) and rate limits (package
//     gateway/guard/limits), forwarded with the MCP Go SDK's client, and
//     its result inspected for prompt injection (package
//     gateway/guard/injection) before the agent sees it.
//
// Every session belongs to one caller (tenant and key): the SDK refuses a
// session id presented with another key. Every MCP request is a ledger
// event in the caller's tenant log, published through [Config.Recorder]:
// kind "mcp" (attrs method, name, outcome, duration_us, error), or, for a
// call to an upstream tool, kind "tool_call" (attrs server, tool, outcome,
// verdicts, duration_us, arguments_sha256, result_sha256) whose payload,
// committed in the entry and stored beside it, is the JSON object
// {"arguments","result","salt"}; arguments_sha256 and result_sha256 are
// hex SHA-256(salt ‖ JSON) of the two members, so that erasing the payload
// leaves nothing in the entry to test a guess against. In fail-closed mode
// (the default) no answer leaves before the ledger has acknowledged its
// event: the agent gets a JSON-RPC error instead.
//
// # The SDK, and the hot path
//
// Sessions, the context features, and the connections to upstreams
// (initialize, keepalive pings, tool lists and their changes, stdio
// processes) are the MCP Go SDK's. A call of an upstream tool is the one
// hot path, and the SDK's JSON handling costs more there than the rest of
// the gateway (tens of kilobytes of buffers per message): on an
// initialized session, the gateway decodes such a POST itself and answers
// it as the SDK would (application/json), and it forwards the call to a
// streamable HTTP upstream as one POST on the session the SDK's client
// opened, reading the answer (JSON or an event stream) itself, so that
// the upstream's result bytes are what the ledger commits to and what the
// agent gets. Anything else (other methods, batches, per-request protocol
// metadata) goes through the SDK, the same calls included. The gateway
// keeps the sessions' idle timeout itself, since the SDK does not see
// those calls. A tenant's SDK server (its tools, resources and prompts)
// is made when its first session begins and freed once the tenant has
// had no session for [Config.TenantIdleTimeout]; a request that may be
// beginning a session pins it, so no session is ever connected to a
// server the gateway has let go.
//
// # What an upstream sends during a call
//
// On the fast path, what an upstream sends on the event stream of a call
// before its result is relayed to the agent on the stream of its own
// request (the answer becomes a text/event-stream at the first message
// relayed; a call with nothing to relay is answered application/json):
//
//   - notifications/progress, when the agent gave a _meta.progressToken:
//     the upstream gets a token of the gateway's (its session is shared
//     by all agents), and the agent its own back;
//   - notifications/message (the gateway asks HTTP upstreams for the
//     "info" level) and notifications/elicitation/complete;
//   - the requests sampling/createMessage, elicitation/create and
//     roots/list (the gateway declares these capabilities to HTTP
//     upstreams): relayed to the agent under an id of the gateway's
//     ("aigw-r-<n>"), and the agent's answer, which it POSTs on its
//     session, goes back to the upstream. The gateway answers the
//     upstream a JSON-RPC error instead when the agent did not declare
//     the capability, when the request looks like a prompt injection
//     (the upstream's Injection action: block withholds it, flag relays
//     it), or when the agent does not answer before the call ends; it
//     answers ping itself, and any other request method not found.
//
// Each relayed request is an event of kind "mcp" (attrs method, server,
// tool, outcome, duration_us, error, verdicts, request_sha256,
// answer_sha256; payload {"request","answer","salt"}, hashed as a
// tool_call's), and fail-closed, the agent's answer reaches the upstream
// only once the ledger has acknowledged it (the upstream gets
// [CodeLedgerUnavailable] otherwise). The call itself stays one tool_call
// event, with relayed_notifications and relayed_requests when anything
// was relayed; notifications are relayed as they come (they are not the
// call's answer) and are not recorded one by one.
//
// Limits, with SDK v1.8.0: over stdio, only progress is relayed (the
// SDK's client ties nothing else to a call, and it hands notifications
// over on a goroutine of their own without holding the result for them,
// so one handed over after the result is dropped); the gateway declares
// no sampling, elicitation or roots to stdio upstreams, whose requests
// the SDK's client answers method not found. A request an HTTP upstream
// sends outside a call's event stream (on its session's own stream, as
// an upstream answering application/json does) is answered method not
// found too, as nothing ties it to an agent. Calls the SDK serves (not the
// fast path: batches, other _meta keys, agents that do not accept event
// streams) relay nothing, and their upstreams' requests are answered an
// error.
package mcp
