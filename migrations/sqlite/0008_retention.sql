-- Retention's index (type, received_at) costs every write, so it is built
-- at start only when a retention limit is set (optional_index.rs).

-- Leases: which process runs a periodic task (retention) now, until when.
-- A process takes a free or lapsed lease and renews its own; another
-- waits for it to lapse. One row per task.
CREATE TABLE leases (
    name TEXT PRIMARY KEY NOT NULL,
    holder TEXT NOT NULL,
    -- Microseconds since 1970-01-01T00:00:00Z.
    expires_at INTEGER NOT NULL
) STRICT;
