-- Retention's index (type, received_at) costs every write, so it is built
-- at start only when a retention limit is set (optional_index.rs).

-- Leases: which replica runs a periodic task (retention) now, until when.
-- A replica takes a free or lapsed lease and renews its own; the others
-- wait for it to lapse, so a replica that dies hands the task on. One row
-- per task.
CREATE TABLE leases (
    name text PRIMARY KEY,
    holder uuid NOT NULL,
    expires_at timestamptz NOT NULL
);
