-- The case's status is intake's: the status of intake's latest event (by its sequence).
ALTER TABLE cases ADD COLUMN intake_sequence integer NOT NULL DEFAULT 0;
ALTER TABLE cases DROP COLUMN status_rank;
ALTER TABLE cases ADD COLUMN round integer NOT NULL DEFAULT 1;
