-- A notification that carries a secret (a one-time sign-in link) keeps it sealed by the app
-- (AES-256-GCM, tenant-bound); the body holds a `{link}` placeholder filled in at send time.
alter table notifications
    add column secret_nonce bytea,
    add column secret_ciphertext bytea;
