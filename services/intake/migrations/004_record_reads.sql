-- Who may read a complaint's customer record (seed 004 篇三 第四章), given at submission;
-- complaints from before it read as department files, the level a submission defaults to.
ALTER TABLE complaints
    ADD COLUMN confidentiality text NOT NULL DEFAULT 'department'
        CHECK (confidentiality IN ('company', 'department', 'personal'));

-- Every read of a customer record at intake, and every refusal, with the reason the reader
-- gave: seed 004 makes viewing a customer file without approval an offence. Rows go out as
-- CustomerRecordRead events through the outbox, in the same transaction.
CREATE TABLE record_reads (
    event_id       uuid PRIMARY KEY,
    complaint_no   text NOT NULL REFERENCES complaints (complaint_no),
    branch_id      text NOT NULL,
    reader         text NOT NULL,
    reader_roles   text[] NOT NULL,
    reason         text NOT NULL,
    outcome        text NOT NULL CHECK (outcome IN ('read', 'refused')),
    contacts_shown boolean NOT NULL,
    correlation_id text NOT NULL,
    read_at        timestamptz NOT NULL
);
CREATE INDEX record_reads_complaint ON record_reads (complaint_no, read_at);
CREATE INDEX record_reads_reader ON record_reads (reader, read_at);

-- An audit trail nobody may edit, like the case history.
CREATE FUNCTION refuse_record_read_change() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'record reads are append-only';
END;
$$;
CREATE TRIGGER record_reads_append_only BEFORE UPDATE OR DELETE ON record_reads
    FOR EACH ROW EXECUTE FUNCTION refuse_record_read_change();
