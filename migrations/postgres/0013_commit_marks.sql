-- Where the commit order stood at times, for follows across runs that
-- start from a time (issue 16). A mark (at, position) says: every log
-- received from `at` on was written by a transaction whose id is at least
-- `position`: the oldest transaction still running when the mark was
-- taken, read before the time was. A follow from a time starts at the
-- last mark before it, rather than at the first log.
CREATE TABLE commit_marks (
    at timestamptz NOT NULL,
    position bigint NOT NULL
);

CREATE INDEX commit_marks_at ON commit_marks (at);

-- The first mark: no log received after now can be written below it.
INSERT INTO commit_marks (at, position)
SELECT clock_timestamp(), pg_snapshot_xmin(pg_current_snapshot())::text::bigint;
