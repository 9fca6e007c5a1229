-- Job-run tokens revoked before they expire. Every server reads this table
-- periodically; a row goes once its token would have expired anyway.
CREATE TABLE revoked_tokens (
    id TEXT PRIMARY KEY NOT NULL CHECK (length(id) = 36),
    -- Microseconds since 1970-01-01T00:00:00Z.
    expires_at INTEGER NOT NULL
) STRICT;
