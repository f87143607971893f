-- Fieldcap record store, PostgreSQL schema version 4: sealed (encrypted) items
-- (`POST /v1/manifests/sealed`): the item key wrapped to the escrow key as the device sent it,
-- and the length of the media's age file (the length of its tus upload); both NULL for an item
-- submitted in plaintext. The SQLite schema's version 6 (see store/sqlite/schema.rs). Frozen once
-- released: never edit it; add 0005_… instead.
ALTER TABLE items ADD COLUMN key_wrap BYTEA;
ALTER TABLE items ADD COLUMN media_age_bytes BIGINT;
