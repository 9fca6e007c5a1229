-- Job-run tokens revoked before they expire. Every server reads this table
-- periodically; a row goes once its token would have expired anyway.
CREATE TABLE revoked_tokens (
    id uuid PRIMARY KEY,
    expires_at timestamptz NOT NULL
);
