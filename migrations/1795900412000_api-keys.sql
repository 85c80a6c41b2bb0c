-- Up Migration

-- API keys for the GraphQL API. Only the SHA-256 of a key is stored: keys are 32 random bytes, so a
-- fast hash is enough (a slow password hash guards low-entropy secrets against guessing, which
-- 256 random bits already rule out) and lets a replica verify a key with one index lookup.
-- key_prefix is the key's public part, shown by `api-key list` to tell keys apart.
CREATE TABLE api_keys (
  id                    bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  name                  text NOT NULL CHECK (name ~ '^[A-Za-z0-9._-]{1,64}$'),
  role                  text NOT NULL CHECK (role IN ('read', 'ops')),
  key_hash              bytea NOT NULL UNIQUE CHECK (length(key_hash) = 32),
  key_prefix            text NOT NULL,
  rate_limit_per_second integer CHECK (rate_limit_per_second > 0),
  created_at            timestamptz NOT NULL DEFAULT now(),
  revoked_at            timestamptz,
  last_used_at          timestamptz
);
-- A name identifies one live key; revoked rows stay for the record and free their name.
CREATE UNIQUE INDEX api_keys_live_name_idx ON api_keys (name) WHERE revoked_at IS NULL;

-- Replicas cache keys in memory; every change that matters to them (not last_used_at) tells them
-- which key to forget, so a revocation applies on every replica at once, however it was made.
CREATE FUNCTION api_keys_notify() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  PERFORM pg_notify('api_keys_changed', encode(COALESCE(NEW.key_hash, OLD.key_hash), 'hex'));
  RETURN NULL;
END;
$$;
CREATE TRIGGER api_keys_changed
  AFTER INSERT OR DELETE OR UPDATE OF role, key_hash, rate_limit_per_second, revoked_at
  ON api_keys FOR EACH ROW EXECUTE FUNCTION api_keys_notify();

-- Down Migration

DROP TABLE api_keys;
DROP FUNCTION api_keys_notify();
