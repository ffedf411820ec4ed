-- Every message, keyed by its conversation and id (`<ms>-<seq>`, unique in a conversation).
-- `tsv` is the searchable text, computed with the text search configuration the row was
-- written with (CHAT_SEARCH_LANGUAGE): a search uses the same configuration.
CREATE TABLE messages (
    conversation text NOT NULL,
    ms bigint NOT NULL,
    seq bigint NOT NULL,
    sender text NOT NULL,
    body text NOT NULL,
    ts bigint NOT NULL,
    client_id text,
    language regconfig NOT NULL,
    tsv tsvector GENERATED ALWAYS AS (to_tsvector(language, body)) STORED,
    PRIMARY KEY (conversation, ms, seq)
);

CREATE INDEX messages_tsv ON messages USING GIN (tsv);
