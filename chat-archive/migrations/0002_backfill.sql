-- Conversations a backfill (`chat-server backfill`) finished: a later run skips them.
CREATE TABLE backfilled (
    conversation text PRIMARY KEY,
    at timestamptz NOT NULL DEFAULT now()
);
