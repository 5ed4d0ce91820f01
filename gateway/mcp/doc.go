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
// those calls.
package mcp
