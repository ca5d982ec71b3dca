-- WeChat: users known by openid (mini-program and Official Account apart: the same person has
-- a different openid in each), the mini-program's login tokens (SHA-256 only), the sessions
-- they own, message de-duplication across WeChat's retries, and the outbox every call to
-- WeChat's API goes through.

-- `kind`: miniprogram | mp. `session_id`: the Official Account's current conversation (a
-- chat there has no session ids). `last_inbound`: when the user last wrote (the 48-hour
-- customer-service window).
CREATE TABLE wechat_users (
    id TEXT PRIMARY KEY,
    kind TEXT NOT NULL,
    openid TEXT NOT NULL,
    session_id TEXT,
    created_at BIGINT NOT NULL,
    last_inbound BIGINT NOT NULL,
    UNIQUE (kind, openid)
);

CREATE TABLE wechat_tokens (
    token_hash TEXT PRIMARY KEY,
    user_id TEXT NOT NULL REFERENCES wechat_users(id),
    created_at BIGINT NOT NULL,
    expires_at BIGINT NOT NULL
);
CREATE INDEX wechat_tokens_user ON wechat_tokens (user_id);

-- Mini-program sessions are owned by a WeChat user; their own token hash is random and
-- never handed out.
ALTER TABLE sessions ADD COLUMN wechat_user_id TEXT;
CREATE INDEX sessions_wechat_user ON sessions (wechat_user_id);

-- One row per Official Account message (MsgId, or for events FromUserName + CreateTime +
-- Event): the first delivery answers, retries do not. `reply`: the text answered inline, so a
-- retry (WeChat did not receive the first response) gets the same text and nothing new.
-- `taken`: the message is safe (its question stored, or its reply decided); a row that is
-- not, and old, belongs to a delivery that died (a crash): a retry takes it over.
CREATE TABLE wechat_dedup (
    msg_key TEXT PRIMARY KEY,
    created_at BIGINT NOT NULL,
    reply TEXT,
    taken INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX wechat_dedup_created ON wechat_dedup (created_at);

-- Calls to WeChat waiting to be made: `kind` custom_send | subscribe_send | relay (a
-- counselor's event for a WeChat citizen); `payload` JSON; `status` pending | sent | failed.
-- A worker claims a row by moving `claimed_until` forward (on PostgreSQL with FOR UPDATE SKIP
-- LOCKED), calls, then marks it.
CREATE TABLE wechat_outbox (
    id TEXT PRIMARY KEY,
    kind TEXT NOT NULL,
    payload TEXT NOT NULL,
    session_id TEXT,
    status TEXT NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0,
    next_attempt_at BIGINT NOT NULL,
    claimed_until BIGINT NOT NULL DEFAULT 0,
    last_error TEXT NOT NULL DEFAULT '',
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL
);
CREATE INDEX wechat_outbox_due ON wechat_outbox (status, next_attempt_at);
