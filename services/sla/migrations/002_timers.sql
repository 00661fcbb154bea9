-- What sla needs to know about a complaint to start clocks on later events.
CREATE TABLE cases (
    complaint_no   text PRIMARY KEY,
    branch_id      text NOT NULL,
    pack           text NOT NULL,
    category       text NOT NULL,
    customer_type  text NOT NULL,
    severity       text NOT NULL,
    region         text NOT NULL,
    correlation_id text NOT NULL
);

ALTER TABLE clocks
    ADD COLUMN round          integer NOT NULL DEFAULT 1,
    ADD COLUMN working        boolean NOT NULL DEFAULT false,
    ADD COLUMN calendar       text,
    ADD COLUMN stops_on       text[] NOT NULL DEFAULT '{}',
    ADD COLUMN return_visit   boolean NOT NULL DEFAULT false,
    ADD COLUMN paused_at      timestamptz,
    ADD COLUMN paused_seconds integer NOT NULL DEFAULT 0,
    ADD COLUMN stopped_at     timestamptz;
ALTER TABLE clocks DROP CONSTRAINT clocks_complaint_no_name_key;
ALTER TABLE clocks ADD CONSTRAINT clocks_one_per_round UNIQUE (complaint_no, name, round);

-- Durable timers: every warning, breach, escalation and return visit to come. Instances
-- take due rows with FOR UPDATE SKIP LOCKED, so each timer fires in exactly one of them.
CREATE TABLE timers (
    timer_id   uuid PRIMARY KEY,
    clock_id   uuid REFERENCES clocks (clock_id),
    complaint_no text NOT NULL,
    kind       text NOT NULL CHECK (kind IN ('warning', 'breach', 'escalation', 'return_visit')),
    fraction   double precision,
    level      integer,
    due_at     timestamptz NOT NULL,
    fired_at   timestamptz,
    cancelled  boolean NOT NULL DEFAULT false
);
CREATE INDEX timers_pending ON timers (due_at) WHERE fired_at IS NULL AND NOT cancelled;
CREATE INDEX timers_of_clock ON timers (clock_id);
