-- Stable views for BI tools (Grafana, Metabase): read these, not the tables, which may
-- change. Documented in docs/reporting.md. A read-only role may read the views and nothing
-- else; give it to a login role with `GRANT complaints_bi TO <login>`.

CREATE VIEW bi_cases AS
SELECT complaint_no, branch_id, pack, category, channel, severity, region, customer_type,
       status, round, department, assignee_id, assignee_name, first_contact_staff AS owner,
       received_at, assigned_at, first_contact_at, decided_at, closed_at, not_upheld,
       reopened AS times_reopened
FROM cases WHERE received_at IS NOT NULL;

CREATE VIEW bi_clocks AS
SELECT k.clock_id, k.complaint_no, c.branch_id, c.pack, c.department, k.name AS clock,
       k.rule, k.state, k.round, k.calendar, k.return_visit, k.started_at, k.due_at,
       k.stopped_at, k.target_seconds, k.paused_seconds
FROM case_clocks k JOIN cases c USING (complaint_no);

CREATE VIEW bi_feedback AS
SELECT f.complaint_no, c.branch_id, c.pack, c.department, c.assignee_id, f.round,
       f.quality, f.attitude, f.speed, (f.quality + f.attitude + f.speed) / 3.0 AS score,
       f.satisfied, f.occurred_at
FROM case_feedback f JOIN cases c USING (complaint_no);

CREATE VIEW bi_compensation AS
SELECT m.complaint_no, c.branch_id, c.pack, m.responsible_department, m.share,
       m.compensation, m.loss, m.currency, m.occurred_at
FROM case_compensation m JOIN cases c USING (complaint_no);

CREATE VIEW bi_escalations AS
SELECT e.complaint_no, c.branch_id, c.pack, c.department, e.level, e.reason, e.source,
       e.occurred_at
FROM case_escalations e JOIN cases c USING (complaint_no);

CREATE VIEW bi_notifications AS
SELECT n.complaint_no, c.branch_id, n.channel, n.template, n.status, n.to_customer,
       n.dead_lettered, n.occurred_at
FROM case_notifications n JOIN cases c USING (complaint_no);

CREATE VIEW bi_service_volumes AS
SELECT branch_id, day, services FROM service_volumes;

DO $$
BEGIN
    IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'complaints_bi') THEN
        CREATE ROLE complaints_bi NOLOGIN;
    END IF;
EXCEPTION WHEN insufficient_privilege THEN
    RAISE NOTICE 'cannot create role complaints_bi; a database administrator must';
END
$$;

DO $$
BEGIN
    IF EXISTS (SELECT FROM pg_roles WHERE rolname = 'complaints_bi') THEN
        EXECUTE format('GRANT USAGE ON SCHEMA %I TO complaints_bi', current_schema());
        GRANT SELECT ON bi_cases, bi_clocks, bi_feedback, bi_compensation, bi_escalations,
            bi_notifications, bi_service_volumes TO complaints_bi;
    END IF;
END
$$;
