-- The audit trail of customer-record reads (seed 004 篇三 第四章): reporting's own case
-- file reads and refusals, written in the request's transaction, and intake's, projected
-- from the record-reads topic (by event id, so a redelivery adds nothing). Rows are only
-- ever added. Auditors list them newest first (GET /v1/audit/record-reads), filtered by
-- complaint, reader or branch: each filter has an index in that order (read backwards).
CREATE TABLE record_reads (
    event_id       uuid PRIMARY KEY,
    read_at        timestamptz NOT NULL,
    service        text NOT NULL,
    reader         text NOT NULL,
    reader_roles   text[] NOT NULL,
    reason         text NOT NULL,
    outcome        text NOT NULL CHECK (outcome IN ('read', 'refused')),
    contacts_shown boolean NOT NULL,
    complaint_no   text NOT NULL,
    branch_id      text NOT NULL
);
CREATE INDEX record_reads_newest ON record_reads (read_at, event_id);
CREATE INDEX record_reads_complaint ON record_reads (complaint_no, read_at, event_id);
CREATE INDEX record_reads_reader ON record_reads (reader, read_at, event_id);
CREATE INDEX record_reads_branch ON record_reads (branch_id, read_at, event_id);
