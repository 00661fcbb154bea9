-- Rollups (docs/reporting.md, "Rollups"): the all-time reports read counts kept per
-- combination of the dimensions they filter and group on, not every case. Triggers keep
-- them in the transaction that changes the rows they count, as deltas: a case that changes
-- status, department or assignee leaves its old group and joins its new one, with its
-- clocks, escalations, feedback and return visits. A group that falls to nothing is
-- deleted, so a rollup is exactly the GROUP BY of refresh_rollups() below, whatever the
-- order and batching of the events. Only cases intake has recorded (received_at) count.
-- Writers take the advisory lock ROLLUP_LOCK (projections.py) first: a case's change and
-- its clocks' changes then read each other's latest rows.

-- The day of a case is its received day in this time zone, the service's REPORT_TIMEZONE;
-- the service recounts the days when its setting differs (refresh_rollups).
CREATE TABLE rollup_zone (
    only_row boolean PRIMARY KEY DEFAULT true CHECK (only_row),
    zone     text NOT NULL
);
INSERT INTO rollup_zone (zone) VALUES ('Asia/Shanghai');

-- Dimensions may be NULL (an unassigned case has no department): NULLS NOT DISTINCT makes
-- a NULL one group, as GROUP BY does.
CREATE TABLE case_counts (
    branch_id  text NOT NULL,
    pack       text,
    department text,
    category   text,
    channel    text,
    status     text NOT NULL,
    cases      integer NOT NULL,
    decided    integer NOT NULL,
    reopened   integer NOT NULL,
    not_upheld integer NOT NULL,
    UNIQUE NULLS NOT DISTINCT (branch_id, pack, department, category, channel, status)
);

-- Cases per received day: per branch (the days of all cases, a branch's, a pack's), and
-- per department (a department's), each led by the column its filters name.
CREATE TABLE branch_days (
    branch_id    text NOT NULL,
    pack         text,
    received_day date NOT NULL,
    cases        integer NOT NULL,
    UNIQUE NULLS NOT DISTINCT (branch_id, pack, received_day)
);

CREATE TABLE department_days (
    department   text,
    branch_id    text NOT NULL,
    pack         text,
    received_day date NOT NULL,
    cases        integer NOT NULL,
    UNIQUE NULLS NOT DISTINCT (department, branch_id, pack, received_day)
);

-- Response times: how many durations fall in each bucket (duration_bucket) and the sum of
-- their seconds; the percentiles read the exact values of one bucket from an index.
CREATE TABLE first_contact_times (
    branch_id  text NOT NULL,
    pack       text,
    department text,
    bucket     integer NOT NULL,
    cases      integer NOT NULL,
    seconds    numeric NOT NULL,
    UNIQUE NULLS NOT DISTINCT (branch_id, pack, department, bucket)
);

CREATE TABLE close_times (
    branch_id  text NOT NULL,
    pack       text,
    department text,
    category   text NOT NULL,
    bucket     integer NOT NULL,
    cases      integer NOT NULL,
    seconds    numeric NOT NULL,
    UNIQUE NULLS NOT DISTINCT (branch_id, pack, department, category, bucket)
);

CREATE TABLE clock_counts (
    branch_id  text NOT NULL,
    pack       text,
    department text,
    name       text NOT NULL,
    state      text NOT NULL,
    clocks     integer NOT NULL,
    UNIQUE NULLS NOT DISTINCT (branch_id, pack, department, name, state)
);

CREATE TABLE escalation_counts (
    branch_id   text NOT NULL,
    pack        text,
    department  text,
    level       text NOT NULL,
    escalations integer NOT NULL,
    UNIQUE NULLS NOT DISTINCT (branch_id, pack, department, level)
);

-- points: quality + attitude + speed, from which the report derives the score.
CREATE TABLE feedback_scores (
    branch_id   text NOT NULL,
    pack        text,
    department  text,
    assignee_id text,
    points      integer NOT NULL,
    feedback    integer NOT NULL,
    UNIQUE NULLS NOT DISTINCT (branch_id, pack, department, assignee_id, points)
);

CREATE TABLE return_visit_counts (
    branch_id  text NOT NULL,
    pack       text,
    department text,
    due        integer NOT NULL,
    done       integer NOT NULL,
    UNIQUE NULLS NOT DISTINCT (branch_id, pack, department)
);

-- A duration's bucket: whole seconds below 32, then 16 buckets per doubling (each under
-- 1/16 of its values wide), so a bucket of a million durations holds a few thousand;
-- negative durations share bucket -1. services/reporting/rollups.py inverts it.
CREATE FUNCTION duration_bucket(duration interval) RETURNS integer
LANGUAGE sql IMMUTABLE STRICT AS $$
    SELECT CASE WHEN s < 0 THEN -1
                WHEN s < 32 THEN s::integer
                ELSE ((b - 4) * 16 + (s >> (b - 4)))::integer END
    FROM (SELECT s, 64 - position('1' IN s::bit(64)::text) AS b
          FROM (SELECT floor(extract(epoch FROM duration))::bigint AS s) seconds) bits
$$;

-- The rollup rows a case itself makes, one function per rollup (sign -1: takes them
-- away). The trigger calls only those whose inputs changed.
CREATE FUNCTION count_case_status(c cases, sign integer) RETURNS void LANGUAGE plpgsql AS $$
DECLARE
    emptied tid;
BEGIN
    INSERT INTO case_counts AS t VALUES (c.branch_id, c.pack, c.department, c.category,
        c.channel, c.status, sign, sign * (c.decided_at IS NOT NULL)::integer,
        sign * (c.reopened > 0)::integer, sign * c.not_upheld::integer)
    ON CONFLICT (branch_id, pack, department, category, channel, status) DO UPDATE SET
        cases = t.cases + EXCLUDED.cases, decided = t.decided + EXCLUDED.decided,
        reopened = t.reopened + EXCLUDED.reopened, not_upheld = t.not_upheld + EXCLUDED.not_upheld
    RETURNING CASE WHEN t.cases = 0 THEN t.ctid END INTO emptied;
    DELETE FROM case_counts WHERE ctid = emptied;
END
$$;

CREATE FUNCTION count_case_day(c cases, sign integer) RETURNS void LANGUAGE plpgsql AS $$
DECLARE
    emptied tid;
    day date := (SELECT (c.received_at AT TIME ZONE zone)::date FROM rollup_zone);
BEGIN
    INSERT INTO branch_days AS t VALUES (c.branch_id, c.pack, day, sign)
    ON CONFLICT (branch_id, pack, received_day) DO UPDATE SET cases = t.cases + EXCLUDED.cases
    RETURNING CASE WHEN t.cases = 0 THEN t.ctid END INTO emptied;
    DELETE FROM branch_days WHERE ctid = emptied;

    INSERT INTO department_days AS t VALUES (c.department, c.branch_id, c.pack, day, sign)
    ON CONFLICT (department, branch_id, pack, received_day) DO UPDATE SET
        cases = t.cases + EXCLUDED.cases
    RETURNING CASE WHEN t.cases = 0 THEN t.ctid END INTO emptied;
    DELETE FROM department_days WHERE ctid = emptied;
END
$$;

CREATE FUNCTION count_first_contact(c cases, sign integer) RETURNS void LANGUAGE plpgsql AS $$
DECLARE
    emptied tid;
BEGIN
    IF c.first_contact_at >= c.assigned_at THEN
        INSERT INTO first_contact_times AS t VALUES (c.branch_id, c.pack, c.department,
            duration_bucket(c.first_contact_at - c.assigned_at), sign,
            sign * extract(epoch FROM c.first_contact_at - c.assigned_at))
        ON CONFLICT (branch_id, pack, department, bucket) DO UPDATE SET
            cases = t.cases + EXCLUDED.cases, seconds = t.seconds + EXCLUDED.seconds
        RETURNING CASE WHEN t.cases = 0 THEN t.ctid END INTO emptied;
        DELETE FROM first_contact_times WHERE ctid = emptied;
    END IF;
END
$$;

CREATE FUNCTION count_close(c cases, sign integer) RETURNS void LANGUAGE plpgsql AS $$
DECLARE
    emptied tid;
BEGIN
    IF c.closed_at IS NOT NULL THEN
        INSERT INTO close_times AS t VALUES (c.branch_id, c.pack, c.department,
            coalesce(c.category, 'unknown'), duration_bucket(c.closed_at - c.received_at), sign,
            sign * extract(epoch FROM c.closed_at - c.received_at))
        ON CONFLICT (branch_id, pack, department, category, bucket) DO UPDATE SET
            cases = t.cases + EXCLUDED.cases, seconds = t.seconds + EXCLUDED.seconds
        RETURNING CASE WHEN t.cases = 0 THEN t.ctid END INTO emptied;
        DELETE FROM close_times WHERE ctid = emptied;
    END IF;
END
$$;

-- The rollup rows of what hangs off a case: clocks, escalations, feedback, return visits.
CREATE FUNCTION count_clocks(c cases, clock_name text, clock_state text, n integer)
RETURNS void LANGUAGE plpgsql AS $$
DECLARE
    emptied tid;
BEGIN
    INSERT INTO clock_counts AS t VALUES (c.branch_id, c.pack, c.department, clock_name,
        clock_state, n)
    ON CONFLICT (branch_id, pack, department, name, state) DO UPDATE SET
        clocks = t.clocks + EXCLUDED.clocks
    RETURNING CASE WHEN t.clocks = 0 THEN t.ctid END INTO emptied;
    DELETE FROM clock_counts WHERE ctid = emptied;
END
$$;

CREATE FUNCTION count_escalations(c cases, escalation_level text, n integer)
RETURNS void LANGUAGE plpgsql AS $$
DECLARE
    emptied tid;
BEGIN
    INSERT INTO escalation_counts AS t VALUES (c.branch_id, c.pack, c.department,
        escalation_level, n)
    ON CONFLICT (branch_id, pack, department, level) DO UPDATE SET
        escalations = t.escalations + EXCLUDED.escalations
    RETURNING CASE WHEN t.escalations = 0 THEN t.ctid END INTO emptied;
    DELETE FROM escalation_counts WHERE ctid = emptied;
END
$$;

CREATE FUNCTION count_feedback(c cases, feedback_points integer, n integer)
RETURNS void LANGUAGE plpgsql AS $$
DECLARE
    emptied tid;
BEGIN
    INSERT INTO feedback_scores AS t VALUES (c.branch_id, c.pack, c.department,
        c.assignee_id, feedback_points, n)
    ON CONFLICT (branch_id, pack, department, assignee_id, points) DO UPDATE SET
        feedback = t.feedback + EXCLUDED.feedback
    RETURNING CASE WHEN t.feedback = 0 THEN t.ctid END INTO emptied;
    DELETE FROM feedback_scores WHERE ctid = emptied;
END
$$;

CREATE FUNCTION count_return_visits(c cases, visits_due integer, visits_done integer)
RETURNS void LANGUAGE plpgsql AS $$
DECLARE
    emptied tid;
BEGIN
    INSERT INTO return_visit_counts AS t VALUES (c.branch_id, c.pack, c.department,
        visits_due, visits_done)
    ON CONFLICT (branch_id, pack, department) DO UPDATE SET
        due = t.due + EXCLUDED.due, done = t.done + EXCLUDED.done
    RETURNING CASE WHEN t.due = 0 AND t.done = 0 THEN t.ctid END INTO emptied;
    DELETE FROM return_visit_counts WHERE ctid = emptied;
END
$$;

-- Everything hanging off case c, counted under c's dimensions (sign -1: taken away).
CREATE FUNCTION count_case_rows(c cases, sign integer) RETURNS void LANGUAGE plpgsql AS $$
DECLARE
    r record;
BEGIN
    FOR r IN SELECT name, state, count(*)::integer AS n FROM case_clocks
             WHERE complaint_no = c.complaint_no AND NOT return_visit GROUP BY name, state
    LOOP
        PERFORM count_clocks(c, r.name, r.state, sign * r.n);
    END LOOP;
    FOR r IN SELECT coalesce(level::text, 'staff') AS level, count(*)::integer AS n
             FROM case_escalations WHERE complaint_no = c.complaint_no GROUP BY 1
    LOOP
        PERFORM count_escalations(c, r.level, sign * r.n);
    END LOOP;
    FOR r IN SELECT quality + attitude + speed AS points, count(*)::integer AS n
             FROM case_feedback WHERE complaint_no = c.complaint_no GROUP BY 1
    LOOP
        PERFORM count_feedback(c, r.points, sign * r.n);
    END LOOP;
    SELECT (SELECT count(*) FROM case_return_visits_due WHERE complaint_no = c.complaint_no)
               ::integer AS due,
           (SELECT count(*) FROM case_return_visits WHERE complaint_no = c.complaint_no)
               ::integer AS done
    INTO r;
    IF r.due > 0 OR r.done > 0 THEN
        PERFORM count_return_visits(c, sign * r.due, sign * r.done);
    END IF;
END
$$;

-- A case's change: each rollup whose inputs changed loses the old row's contribution and
-- gains the new one's. On INSERT, OLD is NULL: every rollup gains the new row's.
CREATE FUNCTION cases_rollups() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    was boolean := OLD.received_at IS NOT NULL;
    counted boolean := NEW.received_at IS NOT NULL;
BEGIN
    IF (was, OLD.branch_id, OLD.pack, OLD.department, OLD.category, OLD.channel, OLD.status,
        OLD.decided_at IS NULL, OLD.reopened > 0, OLD.not_upheld)
       IS DISTINCT FROM (counted, NEW.branch_id, NEW.pack, NEW.department, NEW.category,
                         NEW.channel, NEW.status, NEW.decided_at IS NULL, NEW.reopened > 0,
                         NEW.not_upheld) THEN
        IF was THEN PERFORM count_case_status(OLD, -1); END IF;
        IF counted THEN PERFORM count_case_status(NEW, 1); END IF;
    END IF;
    IF (OLD.received_at, OLD.branch_id, OLD.pack, OLD.department)
       IS DISTINCT FROM (NEW.received_at, NEW.branch_id, NEW.pack, NEW.department) THEN
        IF was THEN PERFORM count_case_day(OLD, -1); END IF;
        IF counted THEN PERFORM count_case_day(NEW, 1); END IF;
    END IF;
    IF (was, OLD.branch_id, OLD.pack, OLD.department, OLD.first_contact_at, OLD.assigned_at)
       IS DISTINCT FROM (counted, NEW.branch_id, NEW.pack, NEW.department,
                         NEW.first_contact_at, NEW.assigned_at) THEN
        IF was THEN PERFORM count_first_contact(OLD, -1); END IF;
        IF counted THEN PERFORM count_first_contact(NEW, 1); END IF;
    END IF;
    IF (OLD.received_at, OLD.branch_id, OLD.pack, OLD.department, OLD.category, OLD.closed_at)
       IS DISTINCT FROM (NEW.received_at, NEW.branch_id, NEW.pack, NEW.department,
                         NEW.category, NEW.closed_at) THEN
        IF was THEN PERFORM count_close(OLD, -1); END IF;
        IF counted THEN PERFORM count_close(NEW, 1); END IF;
    END IF;
    -- What hangs off the case moves only when the dimensions it is counted under change.
    IF (was, OLD.branch_id, OLD.pack, OLD.department, OLD.assignee_id)
       IS DISTINCT FROM (counted, NEW.branch_id, NEW.pack, NEW.department, NEW.assignee_id) THEN
        IF was THEN PERFORM count_case_rows(OLD, -1); END IF;
        IF counted THEN PERFORM count_case_rows(NEW, 1); END IF;
    END IF;
    RETURN NULL;
END
$$;
CREATE TRIGGER cases_rollups_insert AFTER INSERT ON cases
    FOR EACH ROW WHEN (NEW.received_at IS NOT NULL) EXECUTE FUNCTION cases_rollups();
-- Only the columns a rollup reads: most updates (a sequence, a timestamp) skip it.
CREATE TRIGGER cases_rollups_update AFTER UPDATE ON cases
    FOR EACH ROW WHEN ((OLD.received_at, OLD.branch_id, OLD.pack, OLD.department,
                        OLD.assignee_id, OLD.category, OLD.channel, OLD.status,
                        OLD.decided_at IS NULL, OLD.reopened > 0, OLD.not_upheld,
                        OLD.first_contact_at, OLD.assigned_at, OLD.closed_at)
                       IS DISTINCT FROM
                       (NEW.received_at, NEW.branch_id, NEW.pack, NEW.department,
                        NEW.assignee_id, NEW.category, NEW.channel, NEW.status,
                        NEW.decided_at IS NULL, NEW.reopened > 0, NEW.not_upheld,
                        NEW.first_contact_at, NEW.assigned_at, NEW.closed_at))
    EXECUTE FUNCTION cases_rollups();

-- A row hanging off a case counts once its case is recorded (cases_rollups counts the
-- rows that came first).
CREATE FUNCTION case_row_rollups() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    c cases;
BEGIN
    SELECT * INTO c FROM cases WHERE complaint_no = NEW.complaint_no AND received_at IS NOT NULL;
    IF NOT FOUND THEN
        RETURN NULL;
    END IF;
    CASE TG_TABLE_NAME
    WHEN 'case_clocks' THEN
        IF TG_OP = 'UPDATE' THEN
            PERFORM count_clocks(c, OLD.name, OLD.state, -1);
        END IF;
        PERFORM count_clocks(c, NEW.name, NEW.state, 1);
    WHEN 'case_escalations' THEN
        PERFORM count_escalations(c, coalesce(NEW.level::text, 'staff'), 1);
    WHEN 'case_feedback' THEN
        PERFORM count_feedback(c, NEW.quality + NEW.attitude + NEW.speed, 1);
    WHEN 'case_return_visits_due' THEN
        PERFORM count_return_visits(c, 1, 0);
    WHEN 'case_return_visits' THEN
        PERFORM count_return_visits(c, 0, 1);
    END CASE;
    RETURN NULL;
END
$$;
CREATE TRIGGER case_clocks_rollups_insert AFTER INSERT ON case_clocks
    FOR EACH ROW WHEN (NOT NEW.return_visit) EXECUTE FUNCTION case_row_rollups();
CREATE TRIGGER case_clocks_rollups_update AFTER UPDATE ON case_clocks
    FOR EACH ROW WHEN (NOT NEW.return_visit AND OLD.state IS DISTINCT FROM NEW.state)
    EXECUTE FUNCTION case_row_rollups();
CREATE TRIGGER case_escalations_rollups AFTER INSERT ON case_escalations
    FOR EACH ROW EXECUTE FUNCTION case_row_rollups();
CREATE TRIGGER case_feedback_rollups AFTER INSERT ON case_feedback
    FOR EACH ROW EXECUTE FUNCTION case_row_rollups();
CREATE TRIGGER case_return_visits_due_rollups AFTER INSERT ON case_return_visits_due
    FOR EACH ROW EXECUTE FUNCTION case_row_rollups();
CREATE TRIGGER case_return_visits_rollups AFTER INSERT ON case_return_visits
    FOR EACH ROW EXECUTE FUNCTION case_row_rollups();

-- Every rollup counted afresh from the projections, its days in ``zone``: the back-fill
-- below, a rebuild after its bulk load (its triggers off), a change of REPORT_TIMEZONE.
CREATE FUNCTION refresh_rollups(day_zone text) RETURNS void LANGUAGE plpgsql AS $$
BEGIN
    UPDATE rollup_zone SET zone = day_zone;
    DELETE FROM case_counts;
    INSERT INTO case_counts
    SELECT branch_id, pack, department, category, channel, status, count(*),
           count(decided_at), count(*) FILTER (WHERE reopened > 0),
           count(*) FILTER (WHERE not_upheld)
    FROM cases WHERE received_at IS NOT NULL GROUP BY 1, 2, 3, 4, 5, 6;

    DELETE FROM branch_days;
    INSERT INTO branch_days
    SELECT branch_id, pack, (received_at AT TIME ZONE day_zone)::date, count(*)
    FROM cases WHERE received_at IS NOT NULL GROUP BY 1, 2, 3;

    DELETE FROM department_days;
    INSERT INTO department_days
    SELECT department, branch_id, pack, (received_at AT TIME ZONE day_zone)::date, count(*)
    FROM cases WHERE received_at IS NOT NULL GROUP BY 1, 2, 3, 4;

    DELETE FROM first_contact_times;
    INSERT INTO first_contact_times
    SELECT branch_id, pack, department, duration_bucket(first_contact_at - assigned_at),
           count(*), sum(extract(epoch FROM first_contact_at - assigned_at))
    FROM cases WHERE received_at IS NOT NULL AND first_contact_at >= assigned_at
    GROUP BY 1, 2, 3, 4;

    DELETE FROM close_times;
    INSERT INTO close_times
    SELECT branch_id, pack, department, coalesce(category, 'unknown'),
           duration_bucket(closed_at - received_at), count(*),
           sum(extract(epoch FROM closed_at - received_at))
    FROM cases WHERE received_at IS NOT NULL AND closed_at IS NOT NULL GROUP BY 1, 2, 3, 4, 5;

    DELETE FROM clock_counts;
    INSERT INTO clock_counts
    SELECT c.branch_id, c.pack, c.department, k.name, k.state, count(*)
    FROM case_clocks k JOIN cases c USING (complaint_no)
    WHERE c.received_at IS NOT NULL AND NOT k.return_visit GROUP BY 1, 2, 3, 4, 5;

    DELETE FROM escalation_counts;
    INSERT INTO escalation_counts
    SELECT c.branch_id, c.pack, c.department, coalesce(e.level::text, 'staff'), count(*)
    FROM case_escalations e JOIN cases c USING (complaint_no)
    WHERE c.received_at IS NOT NULL GROUP BY 1, 2, 3, 4;

    DELETE FROM feedback_scores;
    INSERT INTO feedback_scores
    SELECT c.branch_id, c.pack, c.department, c.assignee_id,
           f.quality + f.attitude + f.speed, count(*)
    FROM case_feedback f JOIN cases c USING (complaint_no)
    WHERE c.received_at IS NOT NULL GROUP BY 1, 2, 3, 4, 5;

    DELETE FROM return_visit_counts;
    INSERT INTO return_visit_counts
    SELECT branch_id, pack, department, sum(due), sum(done)
    FROM (SELECT c.branch_id, c.pack, c.department, 1 AS due, 0 AS done
          FROM case_return_visits_due d JOIN cases c USING (complaint_no)
          WHERE c.received_at IS NOT NULL
          UNION ALL
          SELECT c.branch_id, c.pack, c.department, 0, 1
          FROM case_return_visits v JOIN cases c USING (complaint_no)
          WHERE c.received_at IS NOT NULL) visits
    GROUP BY 1, 2, 3;
END
$$;

SELECT refresh_rollups('Asia/Shanghai');

-- What the rollups cannot hold, because it depends on the time of the request, is read
-- from the few rows it concerns: the running clocks (overdue now), and the open cases
-- (the backlog by age: cases_open).
CREATE INDEX case_clocks_running ON case_clocks (due_at) INCLUDE (complaint_no, name)
    WHERE state IN ('running', 'paused') AND NOT return_visit;

-- A percentile's exact value: the durations of its bucket in order, from the index alone.
CREATE INDEX cases_first_contact_time ON cases ((first_contact_at - assigned_at))
    INCLUDE (first_contact_at, assigned_at, branch_id, pack, department, received_at)
    WHERE received_at IS NOT NULL AND first_contact_at >= assigned_at;
CREATE INDEX cases_close_time ON cases (coalesce(category, 'unknown'), (closed_at - received_at))
    INCLUDE (closed_at, received_at, category, branch_id, pack, department)
    WHERE received_at IS NOT NULL AND closed_at IS NOT NULL;
