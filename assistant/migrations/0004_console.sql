-- The counselor workspace: accounts, console sessions, an append-only audit log, the
-- escalation's handling (assignee, outcome, tags, AI summary, notes), and the events a
-- citizen's widget receives (numbered per session so a stream resumes with Last-Event-ID).

-- Passwords as argon2id PHC strings; `role`: counselor | supervisor | admin.
CREATE TABLE counselors (
    id TEXT PRIMARY KEY,
    username TEXT NOT NULL UNIQUE,
    display_name TEXT NOT NULL,
    role TEXT NOT NULL,
    password_hash TEXT NOT NULL,
    disabled INTEGER NOT NULL DEFAULT 0,
    failed_logins INTEGER NOT NULL DEFAULT 0,
    locked_until BIGINT NOT NULL DEFAULT 0,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL
);

-- A signed-in browser: the cookie's SHA-256, its CSRF token, and the times expiry reads.
CREATE TABLE console_sessions (
    token_hash TEXT PRIMARY KEY,
    counselor_id TEXT NOT NULL REFERENCES counselors(id),
    csrf_token TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    last_seen BIGINT NOT NULL
);
CREATE INDEX console_sessions_counselor ON console_sessions (counselor_id);

-- Never updated or deleted by the service (no API writes anything but inserts here);
-- `seq` from the `audit` counter gives a total order.
CREATE TABLE audit_log (
    seq BIGINT PRIMARY KEY,
    at BIGINT NOT NULL,
    counselor_id TEXT,
    username TEXT NOT NULL,
    action TEXT NOT NULL,
    target TEXT NOT NULL DEFAULT '',
    detail TEXT NOT NULL DEFAULT '',
    client_ip TEXT NOT NULL DEFAULT ''
);
CREATE INDEX audit_log_at ON audit_log (at);
INSERT INTO counters (name, value) VALUES ('audit', 0);

-- `status` gains resolved | returned (handed back to the assistant); `outcome` when resolved:
-- answered | referred | callback | citizen_left.
ALTER TABLE escalations ADD COLUMN assigned_at BIGINT;
ALTER TABLE escalations ADD COLUMN outcome TEXT;
ALTER TABLE escalations ADD COLUMN tags TEXT NOT NULL DEFAULT '[]';
ALTER TABLE escalations ADD COLUMN ai_summary TEXT NOT NULL DEFAULT '';

CREATE TABLE escalation_notes (
    id TEXT PRIMARY KEY,
    escalation_id TEXT NOT NULL REFERENCES escalations(id),
    session_id TEXT NOT NULL REFERENCES sessions(id),
    counselor_id TEXT NOT NULL,
    text TEXT NOT NULL,
    created_at BIGINT NOT NULL
);
CREATE INDEX escalation_notes_escalation ON escalation_notes (escalation_id, created_at);

ALTER TABLE sessions ADD COLUMN next_event BIGINT NOT NULL DEFAULT 0;
CREATE TABLE session_events (
    session_id TEXT NOT NULL REFERENCES sessions(id),
    seq BIGINT NOT NULL,
    name TEXT NOT NULL,
    data TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    PRIMARY KEY (session_id, seq)
);

-- Daily aggregates for the supervisor dashboard: counts only, no personal data, kept when
-- retention deletes conversations. `metric`/`key`: conversations, intent/<intent>,
-- handoff/<reason>, feedback/up|down, unanswered/<normalised masked question>,
-- wait/<bucket upper bound, s>, outcome/<outcome>, queue_samples, queue_sum, queue_peak.
CREATE TABLE daily_stats (
    day TEXT NOT NULL,
    metric TEXT NOT NULL,
    key TEXT NOT NULL,
    value BIGINT NOT NULL,
    PRIMARY KEY (day, metric, key)
);

-- A message and callback number left outside service hours (or with nobody online). The
-- number is encrypted (ChaCha20-Poly1305, key in <home>/callback.key or console.callback_key)
-- and shown only to the assigned counselor on request, each reveal audited.
CREATE TABLE callbacks (
    id TEXT PRIMARY KEY,
    session_id TEXT NOT NULL REFERENCES sessions(id),
    escalation_id TEXT NOT NULL REFERENCES escalations(id),
    phone_sealed TEXT NOT NULL,
    message TEXT NOT NULL,
    created_at BIGINT NOT NULL
);
CREATE INDEX callbacks_escalation ON callbacks (escalation_id);

-- Crisis escalations nobody could take at once (outside service hours or nobody online): shown
-- to every console until acknowledged.
CREATE TABLE alerts (
    id TEXT PRIMARY KEY,
    escalation_id TEXT NOT NULL,
    kind TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    acknowledged_by TEXT,
    acknowledged_at BIGINT
);
