-- 0002: drop the index on the leaf-hash prefix, and the column it indexed.
--
-- The index took every appended entry to a random page of entries_leaf (the
-- leaf hash is uniformly random), and so a write of that page at each
-- commit: measured with `go test ./ledger/sqlite -run '^$' -bench
-- 'AppendBatch/batch=500$' -benchtime 200x -count 3`, 44-48k entries/s with
-- it, 73-76k without. It served one rare query (an inclusion proof by leaf
-- hash rather than by index or event id); LookupLeaf now searches the
-- level-0 tiles (the leaf hashes, 256 to a row, 32 bytes per entry), as the
-- PostgreSQL store does since its own 0002.
DROP INDEX entries_leaf;
ALTER TABLE entries DROP COLUMN lh;
