-- The commit order of all logs, for follows across job runs (issue 16).
--
-- Within a run, seq is commit order; across runs a rowid or a time is not
-- (VACUUM may renumber rowids; times come from clocks). SQLite has one
-- writer at a time, so a counter taken in the writing transaction numbers
-- every log in commit order. Logs stored before keep NULL: before every
-- position.
ALTER TABLE logs ADD COLUMN commit_position INTEGER;

CREATE UNIQUE INDEX logs_commit_order ON logs (commit_position) WHERE commit_position IS NOT NULL;

-- The next commit position.
CREATE TABLE commit_order (
    next INTEGER NOT NULL
) STRICT;
INSERT INTO commit_order (next) VALUES (1);

-- Names this database in follow cursors, so that a cursor from another
-- database is refused rather than misread.
CREATE TABLE database_identity (
    id TEXT PRIMARY KEY NOT NULL
) STRICT;
INSERT INTO database_identity (id) VALUES (lower(hex(randomblob(16))));
