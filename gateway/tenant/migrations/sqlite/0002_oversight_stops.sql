-- Agents and routes of a tenant that a human stopped (EU AI Act Art. 14(4)(e)):
-- the gateway refuses their calls while their row is here, and a resume
-- deletes the row. The history of stops and resumes, with who and why, is
-- in the tenant's ledger log (`oversight` events); event_id names the event
-- that recorded this stop. Times are Unix microseconds, UTC.

CREATE TABLE oversight_stops (
	tenant      TEXT    NOT NULL REFERENCES tenants (id),
	target_type TEXT    NOT NULL CHECK (target_type IN ('agent', 'route')),
	target      TEXT    NOT NULL CHECK (length(CAST(target AS BLOB)) BETWEEN 1 AND 256),
	stopped_at  INTEGER NOT NULL,
	stopped_by  TEXT    NOT NULL,
	reason      TEXT    NOT NULL,
	event_id    TEXT    NOT NULL CHECK (length(event_id) = 36),
	PRIMARY KEY (tenant, target_type, target)
) STRICT;
