-- Tenants and their API keys. A key's secret is never stored: only its
-- SHA-256 (hash, unique, the lookup of every request) and its first 12
-- characters (prefix, to recognise it by).

CREATE TABLE tenants (
	id         text        PRIMARY KEY CHECK (id ~ '^[a-z0-9][a-z0-9_-]{0,62}$' AND id <> 'system'),
	name       text        NOT NULL,
	created_at timestamptz NOT NULL,
	disabled   boolean     NOT NULL DEFAULT false
);

CREATE TABLE api_keys (
	id         text        PRIMARY KEY CHECK (id ~ '^key_[0-9a-f]{16}$'),
	tenant     text        NOT NULL REFERENCES tenants (id),
	name       text        NOT NULL,
	prefix     text        NOT NULL CHECK (length(prefix) = 12),
	hash       text        NOT NULL UNIQUE CHECK (hash ~ '^[0-9a-f]{64}$'),
	models     jsonb       NOT NULL DEFAULT '[]' CHECK (jsonb_typeof(models) = 'array'),
	created_at timestamptz NOT NULL,
	expires_at timestamptz,
	revoked_at timestamptz
);

CREATE INDEX api_keys_tenant ON api_keys (tenant, created_at);

-- A key's identity never changes, and a revocation is final.
CREATE FUNCTION api_keys_immutable() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
	IF NEW.id IS DISTINCT FROM OLD.id OR NEW.tenant IS DISTINCT FROM OLD.tenant
		OR NEW.hash IS DISTINCT FROM OLD.hash OR NEW.prefix IS DISTINCT FROM OLD.prefix
		OR NEW.created_at IS DISTINCT FROM OLD.created_at
		OR (OLD.revoked_at IS NOT NULL AND NEW.revoked_at IS DISTINCT FROM OLD.revoked_at) THEN
		RAISE EXCEPTION 'api_keys: a key''s identity is immutable and its revocation final'
			USING ERRCODE = 'integrity_constraint_violation';
	END IF;
	RETURN NEW;
END $$;

CREATE TRIGGER api_keys_immutable BEFORE UPDATE ON api_keys
	FOR EACH ROW EXECUTE FUNCTION api_keys_immutable();
