-- Where the commit order stood at times, for follows across runs that
-- start from a time (issue 16). A mark (at, position) says: every log
-- received from `at` on has a commit position at or after `position`
-- (the position was read first, the time after it). A follow from a time
-- starts at the last mark before it, rather than at the first log.
-- Times are microseconds since the epoch, as in logs.
CREATE TABLE commit_marks (
    at INTEGER NOT NULL,
    position INTEGER NOT NULL
) STRICT;

CREATE INDEX commit_marks_at ON commit_marks (at);

-- The first mark: no log was received after now at an earlier position.
INSERT INTO commit_marks (at, position)
SELECT CAST((julianday('now') - 2440587.5) * 86400000000 AS INTEGER), next FROM commit_order;
