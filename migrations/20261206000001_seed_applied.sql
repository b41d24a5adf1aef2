-- The seed (SEED_FILE) last applied, by digest. A replica that starts with the seed
-- already applied changes nothing, so a scale-out or a restart cannot revert edits made
-- through the API since; a changed seed applies once, by whichever replica starts first.
CREATE TABLE seed_applied (
    singleton   BOOLEAN PRIMARY KEY DEFAULT true CHECK (singleton),
    digest      TEXT NOT NULL,
    applied_at  TIMESTAMPTZ NOT NULL DEFAULT now()
);
