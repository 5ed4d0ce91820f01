-- Agents and routes of a tenant that a human stopped (EU AI Act Art. 14(4)(e)):
-- the gateway refuses their calls while their row is here, and a resume
-- deletes the row. The history of stops and resumes, with who and why, is
-- in the tenant's ledger log (`oversight` events); event_id names the event
-- that recorded this stop.

CREATE TABLE oversight_stops (
	tenant      text        NOT NULL REFERENCES tenants (id),
	target_type text        NOT NULL CHECK (target_type IN ('agent', 'route')),
	target      text        NOT NULL CHECK (octet_length(target) BETWEEN 1 AND 256),
	stopped_at  timestamptz NOT NULL,
	stopped_by  text        NOT NULL,
	reason      text        NOT NULL,
	event_id    text        NOT NULL CHECK (event_id ~ '^[0-9a-f-]{36}$'),
	PRIMARY KEY (tenant, target_type, target)
);
