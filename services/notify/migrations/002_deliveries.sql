-- Notify keeps what it needs to address later messages: the customer's contacts and who
-- has the case. Events that arrive before their complaint's ComplaintReceived (they
-- come on other topics) wait in parked_events until it does.
CREATE TABLE cases (
    complaint_no text PRIMARY KEY,
    facts        jsonb NOT NULL,
    updated_at   timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE parked_events (
    event_id     uuid PRIMARY KEY,
    complaint_no text NOT NULL,
    occurred_at  timestamptz NOT NULL,
    body         jsonb NOT NULL
);
CREATE INDEX parked_events_complaint ON parked_events (complaint_no, occurred_at);

-- A notification is rendered and queued in the transaction that consumes its event; the
-- delivery worker takes due rows with SKIP LOCKED, so instances share the sending.
--   queued → sending → (email: handing_over →) sent → delivered
--   sending/handing_over whose lease ran out (a crash, an unknown outcome) → reconciled
--   failed (refused), dead (attempts ran out; requeue by hand), unconfirmed (a person checks)
ALTER TABLE notifications DROP CONSTRAINT notifications_status_check;
ALTER TABLE notifications
    ADD CONSTRAINT notifications_status_check CHECK (status IN (
        'queued', 'sending', 'handing_over', 'sent', 'delivered', 'failed', 'dead', 'unconfirmed'
    )),
    ADD COLUMN source_event_id     uuid,
    ADD COLUMN branch_id           text,
    ADD COLUMN correlation_id      text,
    ADD COLUMN rule                text,
    ADD COLUMN address             text,
    ADD COLUMN to_customer         boolean NOT NULL DEFAULT false,
    ADD COLUMN subject             text,
    ADD COLUMN body_text           text,
    ADD COLUMN body_html           text,
    ADD COLUMN sms_text            text,
    ADD COLUMN params              jsonb,
    ADD COLUMN segments            integer,
    ADD COLUMN not_before          timestamptz NOT NULL DEFAULT now(),
    ADD COLUMN lease_until         timestamptz,
    ADD COLUMN first_attempt_at    timestamptz,
    ADD COLUMN provider            text,
    ADD COLUMN provider_message_id text,
    ADD COLUMN delivered_at        timestamptz,
    ADD COLUMN next_status_check   timestamptz,
    ADD COLUMN status_checks       integer NOT NULL DEFAULT 0,
    ADD COLUMN updated_at          timestamptz NOT NULL DEFAULT now();

CREATE INDEX notifications_due ON notifications (not_before) WHERE status = 'queued';
CREATE INDEX notifications_leased ON notifications (lease_until)
    WHERE status IN ('sending', 'handing_over');
CREATE INDEX notifications_status_check_due ON notifications (next_status_check)
    WHERE status = 'sent' AND next_status_check IS NOT NULL;
