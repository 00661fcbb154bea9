-- A notification is recorded before it is sent; its key (source event, recipient,
-- template) is unique, so a replayed event can never send it again.
CREATE TABLE notifications (
    notification_id  uuid PRIMARY KEY,
    notification_key text NOT NULL UNIQUE,
    complaint_no     text NOT NULL,
    channel          text NOT NULL,
    recipient_masked text NOT NULL,
    template         text NOT NULL,
    language         text NOT NULL,
    status           text NOT NULL CHECK (status IN ('sending', 'sent', 'failed')),
    attempts         integer NOT NULL DEFAULT 0,
    last_error       text,
    created_at       timestamptz NOT NULL DEFAULT now(),
    sent_at          timestamptz
);
CREATE INDEX notifications_complaint ON notifications (complaint_no);
