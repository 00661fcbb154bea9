-- Late cases (the dashboard's list) are the open cases past a deadline: a clock breached,
-- or running past its due time. Looking up every open case's clocks cost 35 ms at 10^6
-- (12,000 open cases); instead each case's row carries its earliest breached clock, kept
-- by count_breaches, which the projections call for the cases of each batch that changes
-- clocks, and the clocks running past due are read from an index of the running ones.
ALTER TABLE cases
    ADD COLUMN breached_clock  text,
    ADD COLUMN breached_due_at timestamptz;

-- The cases' earliest breached clock (ties by name) recounted from their clocks; all cases
-- when complaint_nos is NULL.
CREATE FUNCTION count_breaches(complaint_nos text[]) RETURNS void LANGUAGE plpgsql AS $$
BEGIN
    IF complaint_nos IS NULL THEN
        UPDATE cases c SET breached_clock = NULL, breached_due_at = NULL
        WHERE breached_due_at IS NOT NULL;
        UPDATE cases c SET breached_clock = b.name, breached_due_at = b.due_at
        FROM (SELECT DISTINCT ON (complaint_no) complaint_no, name, due_at FROM case_clocks
              WHERE state = 'breached' ORDER BY complaint_no, due_at, name) b
        WHERE c.complaint_no = b.complaint_no;
        RETURN;
    END IF;
    UPDATE cases c SET breached_clock = b.name, breached_due_at = b.due_at
    FROM unnest(complaint_nos) AS n(complaint_no)
    LEFT JOIN LATERAL (
        SELECT k.name, k.due_at FROM case_clocks k
        WHERE k.complaint_no = n.complaint_no AND k.state = 'breached'
        ORDER BY k.due_at, k.name LIMIT 1
    ) b ON true
    WHERE c.complaint_no = n.complaint_no
      AND (c.breached_clock, c.breached_due_at) IS DISTINCT FROM (b.name, b.due_at);
END
$$;
SELECT count_breaches(NULL);

CREATE INDEX cases_breached_open ON cases (breached_due_at)
    INCLUDE (complaint_no, branch_id, pack, department, category, status, assignee_name,
             breached_clock, received_at)
    WHERE breached_due_at IS NOT NULL AND status NOT IN ('closed', 'not_upheld');
-- Every running or paused clock (return visits too, unlike case_clocks_running) by due time.
CREATE INDEX case_clocks_live_due ON case_clocks (due_at) INCLUDE (complaint_no, name)
    WHERE state IN ('running', 'paused');
