-- A key may belong to a team (budgets and spend are kept per team), and a
-- tenant's budgets (spend caps) set through the admin API live here: the
-- budget's JSON (gateway/spend.Budget). The history of changes is in the
-- system log (`admin` events budget.set / budget.delete); event_id names
-- the event that recorded this one. The spend itself is never stored
-- here: it is in the counters (Redis or memory) and in the ledger.

ALTER TABLE api_keys ADD COLUMN team text NOT NULL DEFAULT '' CHECK (team ~ '^([a-z0-9][a-z0-9_.-]{0,62})?$');

CREATE TABLE budgets (
	tenant     text        NOT NULL REFERENCES tenants (id),
	id         text        NOT NULL CHECK (id ~ '^[a-z0-9][a-z0-9_.-]{0,62}$'),
	spec       text        NOT NULL,
	updated_at timestamptz NOT NULL,
	event_id   text        NOT NULL CHECK (event_id ~ '^[0-9a-f-]{36}$'),
	PRIMARY KEY (tenant, id)
);
