-- Fieldcap record store, PostgreSQL schema version 2: the console's staff accounts, their login
-- sessions (the SHA-256 of the cookie, never the cookie), records requests (`clip_ids` a JSON
-- array of strings, as text) and settings; the SQLite schema's version 4 (see
-- store/sqlite/schema.rs). Frozen once released: never edit it; add 0003_… instead.
CREATE TABLE staff (
    staff_id            TEXT PRIMARY KEY,
    name                TEXT NOT NULL UNIQUE,
    role                TEXT NOT NULL,
    password_hash       TEXT,
    setup_token_sha256  TEXT UNIQUE,
    setup_expires_at_ms BIGINT,
    created_at          TEXT NOT NULL,
    disabled_at         TEXT
);
CREATE TABLE sessions (
    session_sha256 TEXT PRIMARY KEY,
    staff_id       TEXT NOT NULL REFERENCES staff (staff_id),
    csrf_token     TEXT NOT NULL,
    created_at_ms  BIGINT NOT NULL,
    expires_at_ms  BIGINT NOT NULL,
    last_seen_ms   BIGINT NOT NULL
);
CREATE INDEX sessions_staff ON sessions (staff_id);
CREATE INDEX sessions_expires ON sessions (expires_at_ms);
CREATE TABLE records_requests (
    request_id       TEXT PRIMARY KEY,
    requester        TEXT NOT NULL,
    description      TEXT NOT NULL,
    received_at      TEXT NOT NULL,
    created_by       TEXT NOT NULL,
    created_at       TEXT NOT NULL,
    clip_ids         TEXT NOT NULL,
    state            TEXT NOT NULL,
    package_id       TEXT,
    package_sha256   TEXT,
    built_by         TEXT,
    sensitive_reason TEXT,
    approved_by      TEXT,
    approved_at      TEXT
);
CREATE TABLE settings (
    key   TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
