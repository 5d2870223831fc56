-- Encryption at rest (store/encryption.py): one data key per subject, wrapped (encrypted)
-- by the master key whose id is master_id. Deleting a row destroys the key: the subject's
-- data still on disk can no longer be decrypted.
CREATE TABLE subject_keys (
    subject TEXT PRIMARY KEY,
    key_id TEXT NOT NULL,
    master_id TEXT NOT NULL,
    wrapped TEXT NOT NULL,
    created_at {float} NOT NULL
);
