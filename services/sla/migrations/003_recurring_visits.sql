-- Return visits that repeat (a delivered project: monthly, then quarterly): each visit is
-- a clock; the series' start and the visit's number give the next one's due time.
ALTER TABLE clocks
    ADD COLUMN occurrence   integer NOT NULL DEFAULT 0,
    ADD COLUMN series_start timestamptz;
ALTER TABLE clocks DROP CONSTRAINT clocks_one_per_round;
ALTER TABLE clocks ADD CONSTRAINT clocks_one_per_round_and_visit
    UNIQUE (complaint_no, name, round, occurrence);
