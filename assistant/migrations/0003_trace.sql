-- The retrieval trace of an answer (JSON: query, hits with scores, the gate's figures, what was
-- cited, each sentence's verdict), for the counselor console and for tuning. Never shown to
-- citizens; masked like everything else stored.
ALTER TABLE messages ADD COLUMN trace TEXT NOT NULL DEFAULT '{}';
