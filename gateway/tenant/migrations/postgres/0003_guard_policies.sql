-- A tenant's guardrail policy set through the admin API (JSON of the
-- engine's policy configuration); it takes precedence over the config
-- file's policies for the tenant. The history of changes, with versions, is
-- in the system log (`admin` events guardrails.set / guardrails.delete);
-- event_id names the event that recorded this one.

CREATE TABLE guard_policies (
	tenant     text        NOT NULL PRIMARY KEY REFERENCES tenants (id),
	policy     text        NOT NULL,
	version    text        NOT NULL,
	updated_at timestamptz NOT NULL,
	event_id   text        NOT NULL CHECK (event_id ~ '^[0-9a-f-]{36}$')
);
