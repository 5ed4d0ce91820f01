// Package anthropic is the provider for Anthropic's Messages API, and the
// translations the gateway's Anthropic-compatible endpoint (/v1/messages)
// needs when the chosen upstream is not Anthropic.
//
// The Provider speaks OpenAI's shape to the gateway (gateway.Provider) and
// the Messages API to Anthropic; it also forwards native Messages requests
// byte for byte (gateway.RawProvider). For the compatible endpoint,
// ParseRequest validates a client's request as the API does, ToChat and
// FromChat translate it to and from the OpenAI shape, StreamWriter writes
// OpenAI chunks as Messages stream events, UsageFromBody and StreamTap
// read the usage of answers passed through unchanged, and InspectedStream
// passes a stream through event by event, as received, while a guard
// inspects it.
//
// # OpenAI to Anthropic (the Provider)
//
// System and developer messages, wherever they are, become the system
// prompt's text blocks, in order. Consecutive turns of one role merge into
// one message, so a run of tool messages (tool_result blocks) and the
// user's next words make a single user turn. Images given as data: URLs
// become base64 sources, http(s) URLs url sources; inline PDF and text
// files become document blocks. Tool call arguments must be a JSON object
// ("" is {}). A message's name, an assistant's reasoning_content (Anthropic
// takes earlier thinking only as signed blocks), seed, penalties,
// logit_bias and logprobs are dropped; n > 1, audio input and file ids are
// refused with a 400 *gateway.Error. Temperature is capped at 1 (OpenAI's
// range is 0-2, Anthropic's 0-1). max_completion_tokens, else max_tokens,
// else Config.DefaultMaxTokens is max_tokens.
//
// reasoning_effort enables extended thinking with a budget of 1024
// (minimal), 2048 (low), 8192 (medium) or 16384 (high) tokens. The budget
// counts in max_tokens, as OpenAI's reasoning tokens count in
// max_completion_tokens: without a client limit max_tokens grows to budget
// plus DefaultMaxTokens; with one the budget shrinks to fit, and thinking
// stays off when under the API's 1024 minimum. With thinking on,
// temperature and a top_p under 0.95, which the API refuses, are dropped.
//
// response_format json_schema, when the request has no tools and no
// thinking, becomes a forced tool named after the schema (input_schema =
// the schema, tool_choice {"type":"tool"}): the tool's input is the
// answer's content (compact JSON, or the raw partial_json deltas when
// streamed), text beside it is dropped, and the finish reason is stop, not
// tool_calls. With tools or thinking (both exclude forcing the tool) the
// schema, and for json_object a plain instruction, is appended to the
// system prompt instead: the answer is then JSON by instruction only.
//
// The answer translates back: text blocks are the content, tool_use
// blocks the tool calls (ids kept, arguments the compact JSON of the
// input), thinking the reasoning_content; redacted thinking, signatures
// and citations are dropped. Stop reasons map end_turn, stop_sequence and
// pause_turn to stop, max_tokens and model_context_window_exceeded to
// length, tool_use to tool_calls, refusal to content_filter. Prompt tokens
// count input, cache read and cache creation tokens; cached_tokens is the
// cache read, cache_creation_tokens the cache creation.
//
// # Anthropic to OpenAI (the compatible endpoint)
//
// ToChat and FromChat document what they drop; in short: thinking and
// top_k, signed thinking blocks of earlier turns, cache_control and
// server-tool blocks are dropped, server tools and MCP servers refused;
// reasoning content of the answer is dropped, as a thinking block without
// Anthropic's signature would break the conversation if it later went to
// Anthropic.
//
// SPEC: https://docs.anthropic.com/en/api/messages
// SPEC: https://docs.anthropic.com/en/docs/build-with-claude/streaming
package anthropic
