-- Projections built only from events. Each row is written idempotently, so replaying a
-- topic from the beginning rebuilds the same state. Events of one complaint arrive in
-- order per topic but not across topics, so every write tolerates any arrival order.
CREATE TABLE cases (
    complaint_no        text PRIMARY KEY,
    branch_id           text NOT NULL,
    pack                text,
    category            text,
    channel             text,
    severity            text,
    region              text,
    customer_type       text,
    first_contact_staff text,
    received_at         timestamptz,
    status              text NOT NULL,
    status_rank         integer NOT NULL,
    department          text,
    assignee_id         text,
    assignee_name       text,
    assigned_at         timestamptz,
    updated_at          timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX cases_branch ON cases (branch_id);
CREATE INDEX cases_received ON cases (received_at);

CREATE TABLE case_clocks (
    clock_id       uuid PRIMARY KEY,
    complaint_no   text NOT NULL,
    name           text NOT NULL,
    rule           text NOT NULL,
    state          text NOT NULL,
    started_at     timestamptz NOT NULL,
    due_at         timestamptz NOT NULL,
    target_seconds integer NOT NULL
);
CREATE INDEX case_clocks_complaint ON case_clocks (complaint_no);

CREATE TABLE case_notifications (
    notification_id  uuid PRIMARY KEY,
    complaint_no     text NOT NULL,
    channel          text NOT NULL,
    recipient_masked text NOT NULL,
    template         text NOT NULL,
    status           text NOT NULL,
    occurred_at      timestamptz NOT NULL,
    reason           text
);
CREATE INDEX case_notifications_complaint ON case_notifications (complaint_no);

CREATE TABLE case_timeline (
    event_id     uuid PRIMARY KEY,
    complaint_no text NOT NULL,
    event_type   text NOT NULL,
    producer     text NOT NULL,
    occurred_at  timestamptz NOT NULL,
    details      jsonb NOT NULL
);
CREATE INDEX case_timeline_complaint ON case_timeline (complaint_no, occurred_at);
