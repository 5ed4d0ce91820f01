-- The ledger schema. Entries, checkpoints and tiles are append-only: the
-- triggers below refuse every UPDATE and DELETE that would rewrite history
-- (tiles may only grow, payloads may only be erased), so that a bug in this
-- package or a careless SQL session cannot silently change a log. The BEFORE
-- INSERT triggers close the INSERT OR REPLACE path: REPLACE deletes the
-- conflicting row without firing DELETE triggers (recursive_triggers is off
-- by default). They do not stop an attacker who can write the file or drop
-- a trigger; verify is what detects that.
--
-- AppendBatch writes entries, payloads, tiles and the checkpoint first and
-- moves logs.size last, so "below the log's size" means "already committed".

-- One row per log; its head at the latest checkpoint.
CREATE TABLE logs (
	id            INTEGER PRIMARY KEY,
	name          TEXT    NOT NULL UNIQUE,
	size          INTEGER NOT NULL CHECK (size >= 0), -- 0 only inside the transaction creating the log
	compact_range BLOB    NOT NULL CHECK (length(compact_range) % 32 = 0), -- hashes of [0, size)
	chain         BLOB    NOT NULL CHECK (length(chain) = 32 OR size = 0), -- chain hash of entry size-1
	checkpoint    BLOB    NOT NULL -- signed checkpoint note of size
) STRICT;

-- The entries, as hashed. lh is the first 8 bytes of the RFC 6962 leaf hash
-- (big-endian, as a signed integer), to find an entry by leaf hash; the full
-- hash is recomputed from the entry to confirm a match.
CREATE TABLE entries (
	log_id   INTEGER NOT NULL REFERENCES logs (id),
	idx      INTEGER NOT NULL CHECK (idx >= 0),
	event_id BLOB    NOT NULL CHECK (length(event_id) = 16),
	lh       INTEGER NOT NULL,
	entry    BLOB    NOT NULL CHECK (length(entry) BETWEEN 1 AND 65535),
	chain    BLOB    NOT NULL CHECK (length(chain) = 32),
	PRIMARY KEY (log_id, idx)
) STRICT;
CREATE UNIQUE INDEX entries_event_id ON entries (log_id, event_id);
CREATE INDEX entries_leaf ON entries (log_id, lh);

-- Hash tiles (C2SP tlog-tiles, height 8) at their latest width.
CREATE TABLE tiles (
	log_id INTEGER NOT NULL REFERENCES logs (id),
	level  INTEGER NOT NULL CHECK (level BETWEEN 0 AND 63),
	idx    INTEGER NOT NULL CHECK (idx >= 0),
	hashes BLOB    NOT NULL CHECK (length(hashes) BETWEEN 32 AND 8192 AND length(hashes) % 32 = 0),
	PRIMARY KEY (log_id, level, idx)
) STRICT;

-- Every signed checkpoint, one per batch.
CREATE TABLE checkpoints (
	log_id INTEGER NOT NULL REFERENCES logs (id),
	size   INTEGER NOT NULL CHECK (size > 0),
	note   BLOB    NOT NULL,
	PRIMARY KEY (log_id, size)
) STRICT, WITHOUT ROWID;

-- Payloads beside their entries. Erasure clears salt and data and sets
-- erased_at (unix milliseconds), the marker that the payload existed.
CREATE TABLE payloads (
	log_id    INTEGER NOT NULL,
	idx       INTEGER NOT NULL,
	salt      BLOB,
	data      BLOB,
	erased_at INTEGER,
	PRIMARY KEY (log_id, idx),
	FOREIGN KEY (log_id, idx) REFERENCES entries (log_id, idx),
	CHECK ((erased_at IS NULL AND salt IS NOT NULL AND data IS NOT NULL)
		OR (erased_at IS NOT NULL AND salt IS NULL AND data IS NULL))
) STRICT;

CREATE TRIGGER logs_insert_new BEFORE INSERT ON logs
WHEN EXISTS (SELECT 1 FROM logs WHERE id = NEW.id OR name = NEW.name)
BEGIN SELECT RAISE(ABORT, 'ledger logs are append-only: INSERT over an existing log refused'); END;

CREATE TRIGGER entries_insert_new BEFORE INSERT ON entries
WHEN NEW.idx < (SELECT size FROM logs WHERE id = NEW.log_id)
	OR EXISTS (SELECT 1 FROM entries WHERE log_id = NEW.log_id AND event_id = NEW.event_id)
BEGIN SELECT RAISE(ABORT, 'ledger entries are append-only: INSERT over an existing entry refused'); END;
CREATE TRIGGER entries_no_update BEFORE UPDATE ON entries
BEGIN SELECT RAISE(ABORT, 'ledger entries are append-only: UPDATE refused'); END;
CREATE TRIGGER entries_no_delete BEFORE DELETE ON entries
BEGIN SELECT RAISE(ABORT, 'ledger entries are append-only: DELETE refused'); END;

CREATE TRIGGER checkpoints_insert_new BEFORE INSERT ON checkpoints
WHEN NEW.size <= (SELECT size FROM logs WHERE id = NEW.log_id)
BEGIN SELECT RAISE(ABORT, 'ledger checkpoints are append-only: INSERT at a committed size refused'); END;
CREATE TRIGGER checkpoints_no_update BEFORE UPDATE ON checkpoints
BEGIN SELECT RAISE(ABORT, 'ledger checkpoints are append-only: UPDATE refused'); END;
CREATE TRIGGER checkpoints_no_delete BEFORE DELETE ON checkpoints
BEGIN SELECT RAISE(ABORT, 'ledger checkpoints are append-only: DELETE refused'); END;

CREATE TRIGGER tiles_insert_new BEFORE INSERT ON tiles
WHEN EXISTS (SELECT 1 FROM tiles WHERE log_id = NEW.log_id AND level = NEW.level AND idx = NEW.idx)
BEGIN SELECT RAISE(ABORT, 'ledger tiles only grow: INSERT over an existing tile refused'); END;
CREATE TRIGGER tiles_only_grow BEFORE UPDATE ON tiles
WHEN NOT (NEW.log_id = OLD.log_id AND NEW.level = OLD.level AND NEW.idx = OLD.idx
	AND length(NEW.hashes) >= length(OLD.hashes)
	AND substr(NEW.hashes, 1, length(OLD.hashes)) = OLD.hashes)
BEGIN SELECT RAISE(ABORT, 'ledger tiles only grow: UPDATE that does not extend the tile refused'); END;
CREATE TRIGGER tiles_no_delete BEFORE DELETE ON tiles
BEGIN SELECT RAISE(ABORT, 'ledger tiles only grow: DELETE refused'); END;

CREATE TRIGGER logs_only_grow BEFORE UPDATE ON logs
WHEN NOT (NEW.id = OLD.id AND NEW.name = OLD.name AND NEW.size > OLD.size)
BEGIN SELECT RAISE(ABORT, 'ledger logs only grow: UPDATE refused'); END;
CREATE TRIGGER logs_no_delete BEFORE DELETE ON logs
BEGIN SELECT RAISE(ABORT, 'ledger logs are append-only: DELETE refused'); END;

CREATE TRIGGER payloads_insert_new BEFORE INSERT ON payloads
WHEN NEW.idx < (SELECT size FROM logs WHERE id = NEW.log_id)
BEGIN SELECT RAISE(ABORT, 'ledger payloads are written with their entry: INSERT refused'); END;
CREATE TRIGGER payloads_erase_only BEFORE UPDATE ON payloads
WHEN NOT (NEW.log_id = OLD.log_id AND NEW.idx = OLD.idx
	AND OLD.erased_at IS NULL AND NEW.erased_at IS NOT NULL)
BEGIN SELECT RAISE(ABORT, 'ledger payloads can only be erased: UPDATE refused'); END;
CREATE TRIGGER payloads_no_delete BEFORE DELETE ON payloads
BEGIN SELECT RAISE(ABORT, 'ledger payloads keep an erasure marker: DELETE refused'); END;
