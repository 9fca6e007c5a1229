-- Retention: the oldest logs of each type go first, found through this
-- index (received_at only grows, so new entries append at each type's end).
CREATE INDEX logs_expiry ON logs (type, received_at);

-- Leases: which replica runs a periodic task (retention) now, until when.
-- A replica takes a free or lapsed lease and renews its own; the others
-- wait for it to lapse, so a replica that dies hands the task on. One row
-- per task.
CREATE TABLE leases (
    name text PRIMARY KEY,
    holder uuid NOT NULL,
    expires_at timestamptz NOT NULL
);
