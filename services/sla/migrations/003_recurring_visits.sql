-- Return visits that repeat (a delivered project: monthly, then quarterly): each visit is
-- a clock; the series' start and the visit's number give the next one's due time.
ALTER TABLE clocks
    ADD COLUMN occurrence   integer NOT NULL DEFAULT 0,
    ADD COLUMN series_start timestamptz;
