-- Tenants and their API keys. A key's secret is never stored: only its
-- SHA-256 (hash, unique, the lookup of every request) and its first 12
-- characters (prefix, to recognise it by). Times are Unix microseconds, UTC.

CREATE TABLE tenants (
	id         TEXT    PRIMARY KEY CHECK (length(id) BETWEEN 1 AND 63 AND id <> 'system'),
	name       TEXT    NOT NULL,
	created_at INTEGER NOT NULL,
	disabled   INTEGER NOT NULL DEFAULT 0 CHECK (disabled IN (0, 1))
) STRICT;

CREATE TABLE api_keys (
	id         TEXT    PRIMARY KEY CHECK (length(id) = 20),
	tenant     TEXT    NOT NULL REFERENCES tenants (id),
	name       TEXT    NOT NULL,
	prefix     TEXT    NOT NULL CHECK (length(prefix) = 12),
	hash       TEXT    NOT NULL UNIQUE CHECK (length(hash) = 64 AND hash NOT GLOB '*[^0-9a-f]*'),
	models     TEXT    NOT NULL DEFAULT '[]' CHECK (json_valid(models) AND json_type(models) = 'array'),
	created_at INTEGER NOT NULL,
	expires_at INTEGER,
	revoked_at INTEGER
) STRICT;

CREATE INDEX api_keys_tenant ON api_keys (tenant, created_at);

-- A key's identity never changes, and a revocation is final.
CREATE TRIGGER api_keys_immutable BEFORE UPDATE ON api_keys
WHEN NEW.id IS NOT OLD.id OR NEW.tenant IS NOT OLD.tenant OR NEW.hash IS NOT OLD.hash
	OR NEW.prefix IS NOT OLD.prefix OR NEW.created_at IS NOT OLD.created_at
	OR (OLD.revoked_at IS NOT NULL AND NEW.revoked_at IS NOT OLD.revoked_at)
BEGIN
	SELECT RAISE(ABORT, 'api_keys: a key''s identity is immutable and its revocation final');
END;
