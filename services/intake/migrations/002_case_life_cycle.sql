-- The whole intake record, the case's place in its life cycle, and its history.
ALTER TABLE complaints
    ADD COLUMN event_time    timestamptz,
    ADD COLUMN event_place   text,
    ADD COLUMN product       jsonb,
    ADD COLUMN attachments   jsonb NOT NULL DEFAULT '[]'::jsonb,
    ADD COLUMN submission_id text,
    ADD COLUMN held_from     text,
    ADD COLUMN round         integer NOT NULL DEFAULT 1,
    ADD COLUMN sequence      integer NOT NULL DEFAULT 1,
    ADD COLUMN department    text,
    ADD COLUMN assignee_id   text,
    ADD COLUMN updated_at    timestamptz NOT NULL DEFAULT now();

-- Append-only: every event of every case, in order. Rows are never updated or deleted
-- (complaint-rules §1, nothing may be hidden); the trigger makes that a guarantee.
CREATE TABLE case_history (
    complaint_no    text NOT NULL REFERENCES complaints (complaint_no),
    sequence        integer NOT NULL,
    event_id        uuid NOT NULL UNIQUE,
    event_type      text NOT NULL,
    status          text NOT NULL,
    previous_status text,
    round           integer NOT NULL,
    actor           text,
    details         jsonb NOT NULL,
    occurred_at     timestamptz NOT NULL,
    PRIMARY KEY (complaint_no, sequence)
);

CREATE FUNCTION refuse_history_change() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'case history is append-only';
END;
$$;
CREATE TRIGGER case_history_append_only BEFORE UPDATE OR DELETE ON case_history
    FOR EACH ROW EXECUTE FUNCTION refuse_history_change();

-- A branch's submission ids (Idempotency-Key over HTTP, submission_id on Kafka) share one
-- space, so a retry over either path finds the complaint the first attempt created.
CREATE TABLE submissions (
    branch_id     text NOT NULL,
    submission_id text NOT NULL,
    fingerprint   text NOT NULL,
    complaint_no  text NOT NULL REFERENCES complaints (complaint_no) DEFERRABLE INITIALLY DEFERRED,
    created_at    timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (branch_id, submission_id)
);
