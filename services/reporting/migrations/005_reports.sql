-- What the reports need beyond the case file, each row from one event, idempotent by its
-- event id (the inbox skips a redelivered event; ON CONFLICT guards a replay).

ALTER TABLE cases
    ADD COLUMN closed_at        timestamptz,
    ADD COLUMN decided_at       timestamptz,
    ADD COLUMN first_contact_at timestamptz,
    ADD COLUMN not_upheld       boolean NOT NULL DEFAULT false,
    ADD COLUMN reopened         integer NOT NULL DEFAULT 0;
CREATE INDEX cases_status ON cases (status);

-- Every status a case has had: the summary as it stood at a past moment reads this.
CREATE TABLE case_status_history (
    event_id     uuid PRIMARY KEY,
    complaint_no text NOT NULL,
    sequence     integer NOT NULL,
    status       text NOT NULL,
    event_type   text NOT NULL,
    occurred_at  timestamptz NOT NULL
);
CREATE INDEX case_status_history_at ON case_status_history (complaint_no, occurred_at, sequence);

CREATE TABLE case_feedback (
    event_id     uuid PRIMARY KEY,
    complaint_no text NOT NULL,
    round        integer NOT NULL,
    quality      integer NOT NULL,
    attitude     integer NOT NULL,
    speed        integer NOT NULL,
    satisfied    boolean NOT NULL,
    comment      text,
    occurred_at  timestamptz NOT NULL
);
CREATE INDEX case_feedback_complaint ON case_feedback (complaint_no);

CREATE TABLE case_return_visits (
    event_id     uuid PRIMARY KEY,
    complaint_no text NOT NULL,
    method       text NOT NULL,
    outcome      text NOT NULL,
    satisfied    boolean NOT NULL,
    occurred_at  timestamptz NOT NULL
);
CREATE INDEX case_return_visits_complaint ON case_return_visits (complaint_no);

-- Return visits that fell due (sla's ReturnVisitDue): completion = done ÷ due.
CREATE TABLE case_return_visits_due (
    event_id     uuid PRIMARY KEY,
    complaint_no text NOT NULL,
    clock_id     uuid NOT NULL,
    due_at       timestamptz NOT NULL
);

CREATE TABLE case_compensation (
    event_id               uuid PRIMARY KEY,
    complaint_no           text NOT NULL,
    compensation           numeric(14, 2) NOT NULL,
    loss                   numeric(14, 2) NOT NULL,
    currency               text NOT NULL,
    responsible_department text NOT NULL,
    share                  numeric(5, 4) NOT NULL,
    occurred_at            timestamptz NOT NULL
);
CREATE INDEX case_compensation_complaint ON case_compensation (complaint_no);

-- Escalations, from the ladder (sla's EscalationRaised) and by staff (ComplaintEscalated).
CREATE TABLE case_escalations (
    event_id     uuid PRIMARY KEY,
    complaint_no text NOT NULL,
    level        integer,
    reason       text NOT NULL,
    source       text NOT NULL,
    occurred_at  timestamptz NOT NULL
);
CREATE INDEX case_escalations_complaint ON case_escalations (complaint_no);

-- Branches' daily service volumes: the complaint rate's denominator. The latest stands.
CREATE TABLE service_volumes (
    branch_id   text NOT NULL,
    day         date NOT NULL,
    services    integer NOT NULL,
    occurred_at timestamptz NOT NULL,
    PRIMARY KEY (branch_id, day)
);
