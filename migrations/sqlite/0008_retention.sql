-- Retention: the oldest logs of each type go first, found through this
-- index (received_at only grows, so new entries append at each type's end).
CREATE INDEX logs_expiry ON logs (type, received_at);

-- Leases: which process runs a periodic task (retention) now, until when.
-- A process takes a free or lapsed lease and renews its own; another
-- waits for it to lapse. One row per task.
CREATE TABLE leases (
    name TEXT PRIMARY KEY NOT NULL,
    holder TEXT NOT NULL,
    -- Microseconds since 1970-01-01T00:00:00Z.
    expires_at INTEGER NOT NULL
) STRICT;
