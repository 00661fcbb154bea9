-- Reports at scale (docs/reporting.md, "Reporting at scale"): a report on one branch, one
-- pack, a few weeks or the open cases reads a range of an index holding what it needs,
-- not every case. Measured with bench/reporting_scale.py at 10^4, 10^5 and 10^6 cases.

-- A branch's or a pack's cases with the columns the summary counts by, read from the
-- index alone. The department second lets the weekly report find a scope's departments
-- with one probe each, and a range of days skip from one department to the next.
CREATE INDEX cases_branch_department ON cases (branch_id, department, received_at)
    INCLUDE (status, category, pack, channel, complaint_no);
DROP INDEX cases_branch;  -- the index above leads with its column
CREATE INDEX cases_pack_department ON cases (pack, department, received_at)
    INCLUDE (status, category, branch_id, channel, complaint_no);
CREATE INDEX cases_department_received ON cases (department, received_at);

-- The cases closed in a week or a month (weekly, monthly).
CREATE INDEX cases_closed ON cases (closed_at)
    INCLUDE (status, branch_id, pack, department, category, complaint_no, received_at);

-- The open cases, a few thousand among a million: late cases, the weekly open count.
CREATE INDEX cases_open ON cases (received_at)
    INCLUDE (complaint_no, branch_id, pack, department, category, status, assignee_name)
    WHERE status NOT IN ('closed', 'not_upheld');

-- A case's clocks with their state and due time, without reading the table (SLA, late
-- cases); and the breaches falling due in a week (weekly).
DROP INDEX case_clocks_complaint;
CREATE INDEX case_clocks_complaint ON case_clocks (complaint_no)
    INCLUDE (name, state, due_at, return_visit);
CREATE INDEX case_clocks_breached_due ON case_clocks (due_at) INCLUDE (complaint_no)
    WHERE state = 'breached';

-- A case's status at a past moment (the as-of summary): its history, newest first.
DROP INDEX case_status_history_at;
CREATE INDEX case_status_history_latest ON case_status_history (complaint_no, sequence DESC)
    INCLUDE (occurred_at, status);

-- The return visits due of the cases in scope (satisfaction).
CREATE INDEX case_return_visits_due_complaint ON case_return_visits_due (complaint_no);
