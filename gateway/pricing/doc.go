// Package pricing owns the versioned price table from which the exact cost
// of every call is computed, and the gateway.Pricer built on it.
//
// # The table
//
// [Builtin] is the embedded table (prices.json): for each provider kind
// (openai, anthropic, gemini, bedrock, mock) and model, exact decimal
// prices in US dollars per million tokens — input, output, cached_input
// (a prompt-cache read), cache_write (a prompt-cache write, Anthropic and
// Bedrock), an optional fee per request, and an optional long-context tier
// whose prices apply to a whole call whose prompt exceeds a size (Gemini
// 2.5 Pro and Claude Sonnet 4 and 4.5 above 200k prompt tokens). Its
// prices are the providers' published list prices for standard
// pay-as-you-go use as known when it was compiled (its version, as_of and
// source say when and from where). They are not a contract: operators
// must check them against their own agreements (discounts, committed use,
// regional premiums, new prices) and override what differs in config
// ([Table.With]). openai-compatible hosts serve whatever models they
// serve: they have no built-in prices and are priced only by config.
//
// # Exact arithmetic
//
// No floating point is used. A price is parsed exactly (at most 9
// decimals) into nano-USD per million tokens, an int64. The cost of a call
// is
//
//	ceil((uncached×input + cached×cached_input + written×cache_write + completion×output) / 1e6)
//
// nano-USD plus the request fee, where uncached = PromptTokens −
// CachedTokens − CacheCreationTokens (the providers' adapters count cache
// reads and writes inside PromptTokens), clamped at zero, and completion
// tokens include reasoning tokens. The sum is computed in 128 bits
// (math/bits), so no token count or price can overflow it; a cost beyond
// an int64 of nano-USD (9.2 billion dollars) saturates. Rounding is up,
// once per call, so a call never costs less than its exact price and at
// most one nano-USD more.
//
// # Model names
//
// Traffic names models in many ways. [Table.Lookup] tries, for the
// provider kind: the exact name; the model the name designates (a Bedrock
// cross-region inference profile "us."/"eu."/"apac."/"global."... or an
// ARN, Gemini's "models/" prefix, an alias such as "claude-sonnet-4-0");
// then the longest name left by removing version tokens from the end:
// dated snapshots ("gpt-4o-2024-08-06" → gpt-4o,
// "claude-sonnet-4-5-20250929" → claude-sonnet-4-5), "-latest", Gemini
// revisions ("-001"), Bedrock revisions and context variants ("-v1:0",
// ":200k"). Only version tokens are removed, never a word, so a model is
// never priced as another family: gpt-4o-mini is not gpt-4o,
// gemini-2.5-flash-lite is not gemini-2.5-flash. A model that matches
// nothing is unpriced, never guessed.
//
// # Versions and overrides
//
// A table has a version. Overrides (from config) price a provider kind's
// model, or one router target; they are looked up before the built-in
// table. The version of a table with overrides is the built-in version,
// "+config." and the first 8 hex digits of the SHA-256 of the overrides'
// canonical JSON (sorted; amounts in their shortest exact decimal, every
// default made explicit): gateways with the same prices report the same
// version, and any change of a price changes it. Every cost carries the
// version that computed it.
//
// # The Pricer
//
// [NewPricer] resolves each router target's price once (its own price
// from config, else the table's for its kind and upstream model) so that
// [Pricer.Cost] is a map lookup and integer arithmetic, without
// allocating. [Pricer.Estimate] is the upper estimate a budget reserves
// before a call is routed: the dearest priced target of the route.
//
// # Known limits
//
// Cache writes are priced at the 5-minute TTL price (usage does not tell
// 1-hour writes apart). Gemini's cache storage per token-hour, audio and
// image token prices that differ from text, and batch, flex, priority and
// provisioned-throughput prices are not modeled. Bedrock inference
// profiles are priced as their model; where a geographic or regional
// endpoint costs more than the global one, override the exact profile id.
package pricing
