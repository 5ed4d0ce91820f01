// Package gateway holds the gateway's domain: the chat, embedding and stream
// types every provider speaks (OpenAI's Chat Completions shape, the lingua
// franca of the API we serve), the consumer-owned interfaces of its parts
// (Provider, Stream, Recorder, Observer), the error model, an SSE decoder,
// and the Pipeline that turns one agent call into routed provider attempts
// and ledger events.
//
// Sub-packages implement the parts: router (aliases, fallback, retries,
// breakers, bulkheads, cost), openai, anthropic, bedrock and gemini
// (providers), tenant (tenants and hashed API keys), httpapi (the gin HTTP
// API) and providertest (fake provider servers for tests).
package gateway
