-- Fieldcap record store, PostgreSQL schema version 1: the SQLite schema's versions 1 to 3 in
-- one (see store/sqlite/schema.rs). Frozen once released: never edit it; add 0002_… instead.
-- Bytes as signed (manifests, receipts, certificates, custody bodies, leaves) are BYTEA;
-- sizes, positions and Unix ms are BIGINT; ids and RFC 3339 times are TEXT.
CREATE TABLE meta (
    key   TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
CREATE TABLE tokens (
    token_sha256  TEXT PRIMARY KEY,
    role          TEXT NOT NULL,
    created_at    TEXT NOT NULL,
    expires_at_ms BIGINT NOT NULL,
    used_at       TEXT,
    used_by       TEXT
);
CREATE TABLE devices (
    device_id      TEXT PRIMARY KEY,
    public_key_pem TEXT NOT NULL,
    role           TEXT NOT NULL,
    org            TEXT,
    enrolled_at    TEXT NOT NULL,
    cert           BYTEA NOT NULL,
    cert_sig       BYTEA NOT NULL,
    revoked_at     TEXT
);
CREATE TABLE nonces (
    device_id TEXT NOT NULL,
    nonce     TEXT NOT NULL,
    ts_ms     BIGINT NOT NULL,
    PRIMARY KEY (device_id, nonce)
);
CREATE INDEX nonces_ts ON nonces (ts_ms);
CREATE TABLE items (
    clip_id         TEXT PRIMARY KEY,
    -- Insertion order (SQLite's rowid): `items()` lists in this order.
    row_order       BIGINT GENERATED ALWAYS AS IDENTITY UNIQUE,
    device_id       TEXT NOT NULL REFERENCES devices (device_id),
    seq             BIGINT NOT NULL,
    kind            TEXT NOT NULL,
    manifest        BYTEA NOT NULL,
    manifest_sig    BYTEA NOT NULL,
    manifest_sha256 TEXT NOT NULL,
    media_mime      TEXT,
    media_bytes     BIGINT,
    media_sha256    TEXT,
    media_blake3    TEXT,
    started_at      TEXT NOT NULL,
    ended_at        TEXT NOT NULL,
    commitment      BYTEA NOT NULL,
    commitment_sig  BYTEA NOT NULL,
    committed_at    TEXT NOT NULL,
    state           TEXT NOT NULL,
    blob_sha256     TEXT,
    receipt         BYTEA,
    receipt_sig     BYTEA,
    received_at     TEXT,
    log_index       BIGINT,
    refusals        BIGINT NOT NULL DEFAULT 0,
    last_refusal    TEXT,
    UNIQUE (device_id, seq)
);
CREATE INDEX items_blob ON items (blob_sha256);
CREATE TABLE uploads (
    clip_id       TEXT PRIMARY KEY REFERENCES items (clip_id),
    capability    TEXT NOT NULL UNIQUE,
    length        BIGINT NOT NULL,
    upload_offset BIGINT NOT NULL,
    created_at    TEXT NOT NULL,
    expires_at_ms BIGINT NOT NULL,
    state         TEXT NOT NULL
);
-- The transparency log: leaves numbered from 0 without gaps, appended under an advisory lock.
CREATE TABLE log_leaves (
    idx       BIGINT PRIMARY KEY,
    clip_id   TEXT NOT NULL UNIQUE,
    leaf      BYTEA NOT NULL,
    leaf_hash BYTEA NOT NULL
);
CREATE TABLE checkpoints (
    tree_size BIGINT PRIMARY KEY,
    note      TEXT NOT NULL
);
CREATE TABLE custody (
    seq     BIGINT PRIMARY KEY,
    clip_id TEXT,
    event   TEXT NOT NULL,
    at      TEXT NOT NULL,
    body    BYTEA NOT NULL,
    hash    TEXT NOT NULL,
    sig     BYTEA NOT NULL
);
CREATE INDEX custody_clip ON custody (clip_id);
CREATE TABLE retention_policy (
    category TEXT PRIMARY KEY,
    days     BIGINT NOT NULL,
    set_at   TEXT NOT NULL
);
CREATE TABLE holds (
    id             BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    clip_id        TEXT NOT NULL,
    reason         TEXT NOT NULL,
    held_at        TEXT NOT NULL,
    released_at    TEXT,
    release_reason TEXT
);
CREATE INDEX holds_clip ON holds (clip_id);
CREATE TABLE referrals (
    clip_id    TEXT NOT NULL,
    package_id TEXT NOT NULL,
    recipient  TEXT NOT NULL,
    at         TEXT NOT NULL,
    PRIMARY KEY (clip_id, package_id)
);
CREATE TABLE disposals (
    clip_id     TEXT PRIMARY KEY,
    disposed_at TEXT NOT NULL,
    log_index   BIGINT NOT NULL,
    custody_seq BIGINT NOT NULL
);
CREATE INDEX disposals_pending ON disposals (log_index) WHERE custody_seq = 0;
CREATE TABLE device_custody (
    device_id   TEXT NOT NULL REFERENCES devices (device_id),
    seq         BIGINT NOT NULL,
    clip_id     TEXT,
    event       TEXT NOT NULL,
    at          TEXT NOT NULL,
    body        BYTEA NOT NULL,
    hash        TEXT NOT NULL,
    sig         BYTEA NOT NULL,
    received_at TEXT NOT NULL,
    PRIMARY KEY (device_id, seq)
);
CREATE INDEX device_custody_clip ON device_custody (clip_id);
