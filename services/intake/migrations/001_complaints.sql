-- One row per year: the last ordinal handed out. The row lock serialises numbering
-- across every intake instance, and a rolled-back submission returns its ordinal,
-- so numbers have no gaps that could look like a hidden complaint.
CREATE TABLE complaint_counters (
    year         integer PRIMARY KEY,
    last_ordinal integer NOT NULL
);

CREATE TABLE complaints (
    complaint_no        text PRIMARY KEY,
    year                integer NOT NULL,
    ordinal             integer NOT NULL,
    branch_id           text NOT NULL,
    pack                text NOT NULL,
    pack_version        text NOT NULL,
    channel             text NOT NULL,
    customer            jsonb NOT NULL,
    description         text NOT NULL,
    customer_request    text,
    category            text NOT NULL,
    severity            text NOT NULL,
    region              text NOT NULL,
    first_contact_staff text,
    status              text NOT NULL,
    received_at         timestamptz NOT NULL,
    correlation_id      text NOT NULL,
    UNIQUE (year, ordinal)
);
CREATE INDEX complaints_branch_received ON complaints (branch_id, received_at);
