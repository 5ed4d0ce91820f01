-- A tenant's guardrail policy set through the admin API (JSON of the
-- engine's policy configuration); it takes precedence over the config
-- file's policies for the tenant. The history of changes, with versions, is
-- in the system log (`admin` events guardrails.set / guardrails.delete);
-- event_id names the event that recorded this one. Times are Unix
-- microseconds, UTC.

CREATE TABLE guard_policies (
	tenant     TEXT    NOT NULL PRIMARY KEY REFERENCES tenants (id),
	policy     TEXT    NOT NULL,
	version    TEXT    NOT NULL,
	updated_at INTEGER NOT NULL,
	event_id   TEXT    NOT NULL CHECK (length(event_id) = 36)
) STRICT;
