-- 0002: drop the hash index on the leaf-hash expression.
--
-- It cost about 3 µs of server CPU and 30 bytes of storage per entry, on the
-- append path of every event, to serve one rare query (an inclusion proof by
-- leaf hash rather than by index or event id). Measured on the development
-- machine: without it the sequencer commits 45k instead of 38k events/s.
-- LookupLeaf now searches the level-0 tiles (the leaf hashes, 256 to a row):
-- no per-entry cost at all, and a scan that is linear in the log's size
-- (about 0.1 s per million entries) for that rare query.
DROP INDEX IF EXISTS entries_leaf_idx;
