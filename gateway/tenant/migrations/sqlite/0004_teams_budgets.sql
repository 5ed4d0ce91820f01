-- A key may belong to a team (budgets and spend are kept per team), and a
-- tenant's budgets (spend caps) set through the admin API live here: the
-- budget's JSON (gateway/spend.Budget). The history of changes is in the
-- system log (`admin` events budget.set / budget.delete); event_id names
-- the event that recorded this one. The spend itself is never stored
-- here: it is in the counters (Redis or memory) and in the ledger. Times
-- are Unix microseconds, UTC.

ALTER TABLE api_keys ADD COLUMN team TEXT NOT NULL DEFAULT '';

CREATE TABLE budgets (
	tenant     TEXT    NOT NULL REFERENCES tenants (id),
	id         TEXT    NOT NULL,
	spec       TEXT    NOT NULL,
	updated_at INTEGER NOT NULL,
	event_id   TEXT    NOT NULL CHECK (length(event_id) = 36),
	PRIMARY KEY (tenant, id)
) STRICT;
