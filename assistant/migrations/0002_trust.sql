-- Trust: sessions owned by the holder of a secret token (stored as SHA-256 only), message
-- order from a per-session counter, at most one open escalation per session enforced by the
-- database, and queue order from a database counter instead of millisecond timestamps.

-- Sessions made before tokens existed have no hash and can no longer be opened by a client.
ALTER TABLE sessions ADD COLUMN token_hash TEXT;
ALTER TABLE sessions ADD COLUMN next_seq BIGINT NOT NULL DEFAULT 0;
UPDATE sessions SET next_seq = (SELECT COALESCE(MAX(seq), 0) FROM messages WHERE messages.session_id = sessions.id);

-- Counters handed out with UPDATE ... RETURNING (atomic on SQLite and PostgreSQL alike).
CREATE TABLE counters (
    name TEXT PRIMARY KEY,
    value BIGINT NOT NULL
);

ALTER TABLE escalations ADD COLUMN queue_seq BIGINT NOT NULL DEFAULT 0;
UPDATE escalations SET queue_seq = (
    SELECT COUNT(*) FROM escalations e2
    WHERE e2.created_at < escalations.created_at
       OR (e2.created_at = escalations.created_at AND e2.id <= escalations.id)
);
INSERT INTO counters (name, value) SELECT 'escalation_queue', COALESCE(MAX(queue_seq), 0) FROM escalations;

-- Older duplicates (possible before this index) are closed, keeping the earliest open one.
UPDATE escalations SET status = 'abandoned'
WHERE status IN ('waiting', 'assigned') AND EXISTS (
    SELECT 1 FROM escalations e2
    WHERE e2.session_id = escalations.session_id
      AND e2.status IN ('waiting', 'assigned')
      AND e2.queue_seq < escalations.queue_seq
);
CREATE UNIQUE INDEX escalations_one_open ON escalations (session_id) WHERE status IN ('waiting', 'assigned');
CREATE INDEX escalations_queue ON escalations (status, queue_seq);
CREATE INDEX sessions_updated ON sessions (updated_at);
