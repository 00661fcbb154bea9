CREATE TABLE clocks (
    clock_id       uuid PRIMARY KEY,
    complaint_no   text NOT NULL,
    branch_id      text NOT NULL,
    name           text NOT NULL,
    rule           text NOT NULL,
    state          text NOT NULL CHECK (state IN ('running', 'paused', 'met', 'breached')),
    started_at     timestamptz NOT NULL,
    due_at         timestamptz NOT NULL,
    target_seconds integer NOT NULL,
    pack           text NOT NULL,
    pack_version   text NOT NULL,
    UNIQUE (complaint_no, name)
);
CREATE INDEX clocks_running_due ON clocks (due_at) WHERE state = 'running';
