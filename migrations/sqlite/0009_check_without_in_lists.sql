-- The CHECKs on type, level and stream become chains of equalities. SQLite
-- evaluates `x IN ('a', 'b', ...)` by filling an ephemeral table with the
-- list, and a CHECK refills it for every row inserted: three such lists cost
-- about 3 µs a log, a quarter of an insert (docs/benchmarks.md). The chains
-- accept exactly the same values.
--
-- SQLite cannot alter a CHECK in place. Its documentation (ALTER TABLE,
-- "Making Other Kinds Of Table Schema Changes") allows editing the stored
-- CREATE TABLE text under writable_schema for changes that every stored
-- row already satisfies, as here: no row is rewritten, so the migration is
-- instant on any size of file. RESET reloads this connection's schema; the
-- table created and dropped after it moves the schema cookie on, so every
-- other connection reloads it too. All in the migrations' one transaction.
PRAGMA writable_schema = ON;
UPDATE sqlite_schema SET sql = replace(replace(replace(sql,
        'type IN (''system'', ''job'', ''task'')',
        'type = ''system'' OR type = ''job'' OR type = ''task'''),
        'level IN (''trace'', ''debug'', ''info'', ''warn'', ''error'', ''fatal'')',
        'level = ''trace'' OR level = ''debug'' OR level = ''info'' OR level = ''warn'' OR level = ''error'' OR level = ''fatal'''),
        'stream IN (''stdout'', ''stderr'', ''system'')',
        'stream = ''stdout'' OR stream = ''stderr'' OR stream = ''system''')
    WHERE type = 'table' AND name = 'logs';
PRAGMA writable_schema = RESET;
CREATE TABLE logwell_schema_changed (changed INTEGER);
DROP TABLE logwell_schema_changed;
