// Package a2a is the gateway's A2A proxy: agents delegate tasks to each
// other through it, under audit, with the A2A protocol's JSON-RPC 2.0
// binding (v0.3: message/send, message/stream, tasks/get, tasks/cancel,
// tasks/resubscribe, tasks/pushNotificationConfig/{set,get,list,delete}).
//
// # Routes
//
// A [Proxy] is an http.Handler for everything under its path prefix
// (default /a2a), for each registered [Agent]:
//
//	GET  /a2a/{agent}/.well-known/agent-card.json  the agent's card, its url the gateway's
//	POST /a2a/{agent}                              JSON-RPC, to the agent
//	POST /a2a/{agent}/push/{task}                  the agent's push notifications to the gateway
//
// Callers authenticate with their gateway key (Authorization: Bearer)
// and name themselves with X-Aigw-Agent; an agent is reachable only from
// its own tenant, by the callers its configuration lists.
//
// # Hops and tokens
//
// Each new task delegated through the gateway is a hop (caller → callee).
// The gateway names the task to the caller by the hop id (a UUIDv7) and
// maps it to the callee's own task id both ways. For each hop it issues a
// delegation token ([Claims], Ed25519-signed by [Signer]): issuer, tenant,
// caller, callee, task, parent hop, root task, chain of agents, depth and
// max depth, scopes and budget (nano-USD and tokens), expiry. The callee
// gets it in the X-Aigw-Delegation header and in
// params.message.metadata["aigw.delegation"]. When the callee delegates
// in turn, it presents that token (header or metadata) and may ask for
// less in params.metadata["aigw.delegation_request"] ([DelegationRequest]);
// the gateway verifies the token and issues a narrowed one: scopes ⊆ the
// parent's, budget ≤ the parent's remaining (taken from it atomically),
// expiry ≤ the parent's, depth + 1 ≤ the max depth. A request for more,
// an expired or forged token, a token of another callee, a loop (callee
// already on the chain) or a hop too deep is refused with a JSON-RPC
// error (codes -32030 to -32040, data.reason) and recorded. A registered
// agent must delegate under its token unless Agent.MayInitiate.
//
// # Tasks
//
// A [TaskStore] keeps each hop's token, state and last answer:
// [MemoryStore] (embedded default) or [RedisStore] (replicas share tasks,
// which survive restarts). States move only as A2A allows
// ([CanTransition]); an agent reporting another move gets the caller an
// invalid-agent-response error. A retried message (same caller, callee
// and messageId) gets the first answer from the store, never a second
// call to the callee. Canceling a task cancels, before the answer, every
// unfinished task delegated under it. The gateway keeps the caller's push
// notification config itself, asks the callee (when its card says it can
// push and Config.BaseURL is set) to notify the gateway, and sends every
// state change it sees to the caller's webhook as a Standard Webhooks
// message signed with the config's token.
//
// # Ledger
//
// Every hop, call, state change, refusal and webhook delivery is an event
// of kind ledger.KindDelegation in the tenant's log (attribute "event":
// hop, call, state, refused, push), with hop_id, parent_hop_id, task_id,
// root_task_id, caller, callee, depth, method and, as each says, scopes,
// budget, chain, state, outcome, duration_us, error. Message contents and
// status messages are payloads (committed in the entry, stored beside
// it). Fail-closed (the default), a hop's grant is acknowledged by the
// ledger before the callee is called, and every answer waits for the
// call's events. [BuildTree] rebuilds and checks a task's delegation tree
// from the log.
//
// SPEC: https://a2a-protocol.org/v0.3.0/specification/
package a2a
