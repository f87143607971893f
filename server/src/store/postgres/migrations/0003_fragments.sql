-- Fieldcap record store, PostgreSQL schema version 3: live-capture fragments
-- (`fieldcap.fragment/1`): each record and signature as the device sent it, the server's signed
-- acknowledgement, and the piece's place in the recording (the bytes are in the clip's partial
-- upload); the SQLite schema's version 5 (see store/sqlite/schema.rs). Frozen once released:
-- never edit it; add 0004_… instead.
CREATE TABLE fragments (
    clip_id       TEXT NOT NULL,
    idx           BIGINT NOT NULL,
    device_id     TEXT NOT NULL REFERENCES devices (device_id),
    record        BYTEA NOT NULL,
    sig           BYTEA NOT NULL,
    record_sha256 TEXT NOT NULL,
    piece_offset  BIGINT NOT NULL,
    bytes         BIGINT NOT NULL,
    total_bytes   BIGINT NOT NULL,
    captured_at   TEXT NOT NULL,
    mfhd_last     BIGINT,
    ack           BYTEA NOT NULL,
    ack_sig       BYTEA NOT NULL,
    received_at   TEXT NOT NULL,
    PRIMARY KEY (clip_id, idx)
);
