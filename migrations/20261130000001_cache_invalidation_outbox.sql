-- Invalidations that must reach Redis, written in the same statement as the change they
-- describe (so a crash, a SIGTERM or a cancelled request cannot separate them). The writer
-- deletes its row once Redis acknowledged the invalidation; every replica relays rows
-- that stay longer, and reads their product ids from PostgreSQL only until they are gone.
CREATE TABLE cache_invalidations (
    id          BIGSERIAL PRIMARY KEY,
    product_id  INTEGER NOT NULL,
    created_at  TIMESTAMPTZ NOT NULL DEFAULT now()
);
