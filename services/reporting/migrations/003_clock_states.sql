-- A clock's whole life reaches the case file: pauses, resumptions, stop, breach.
ALTER TABLE case_clocks
    ADD COLUMN round          integer NOT NULL DEFAULT 1,
    ADD COLUMN calendar       text NOT NULL DEFAULT 'elapsed',
    ADD COLUMN return_visit   boolean NOT NULL DEFAULT false,
    ADD COLUMN paused_at      timestamptz,
    ADD COLUMN paused_seconds integer NOT NULL DEFAULT 0,
    ADD COLUMN stopped_at     timestamptz;
