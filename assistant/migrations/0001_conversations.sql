-- One set of migrations for SQLite and PostgreSQL: portable types only (TEXT, BIGINT,
-- INTEGER), ids made by the application, times as Unix milliseconds.
CREATE TABLE sessions (
    id TEXT PRIMARY KEY,
    channel TEXT NOT NULL,
    profile TEXT NOT NULL DEFAULT '{}',
    failures INTEGER NOT NULL DEFAULT 0,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL
);

-- Every message of a conversation, masked. `status`: complete | pending (being answered) |
-- incomplete (the answer was cut off: crash, shutdown or client gone).
CREATE TABLE messages (
    id TEXT PRIMARY KEY,
    session_id TEXT NOT NULL REFERENCES sessions(id),
    seq INTEGER NOT NULL,
    role TEXT NOT NULL,
    text TEXT NOT NULL,
    channel TEXT NOT NULL,
    intent TEXT,
    status TEXT NOT NULL,
    citations TEXT NOT NULL DEFAULT '[]',
    jobs TEXT NOT NULL DEFAULT '[]',
    rewritten TEXT,
    ttft_ms BIGINT,
    latency_ms BIGINT,
    created_at BIGINT NOT NULL,
    UNIQUE (session_id, seq)
);
CREATE INDEX messages_session ON messages (session_id, seq);

CREATE TABLE escalations (
    id TEXT PRIMARY KEY,
    session_id TEXT NOT NULL REFERENCES sessions(id),
    status TEXT NOT NULL,
    reason TEXT NOT NULL,
    intent TEXT NOT NULL,
    summary TEXT NOT NULL DEFAULT '',
    assignee TEXT,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL
);
CREATE INDEX escalations_status ON escalations (status, created_at);

CREATE TABLE feedback (
    id TEXT PRIMARY KEY,
    session_id TEXT NOT NULL REFERENCES sessions(id),
    turn_id TEXT,
    rating INTEGER NOT NULL,
    text TEXT NOT NULL DEFAULT '',
    created_at BIGINT NOT NULL
);
