-- The monthly report (客诉案件统计表) lists a month's closed cases with their compensation:
-- each case's row carries its total loss and compensation and its latest responsibility,
-- so the report reads one index range (cases_closed) instead of looking up the
-- compensation of tens of thousands of cases. Kept by count_compensation, which the
-- projections call for the cases of each batch that records compensation.
ALTER TABLE cases
    ADD COLUMN responsible_department text,
    ADD COLUMN share                  numeric,
    ADD COLUMN loss                   numeric,
    ADD COLUMN compensation           numeric,
    ADD COLUMN currency               text;

-- The cases' totals recounted from every compensation recorded for them (all cases when
-- complaint_nos is NULL): the latest responsibility, ties by event id, and the sums.
CREATE FUNCTION count_compensation(complaint_nos text[]) RETURNS void LANGUAGE sql AS $$
    UPDATE cases c SET responsible_department = m.responsible_department, share = m.share,
                       loss = m.loss, compensation = m.compensation, currency = m.currency
    FROM (SELECT DISTINCT ON (complaint_no) complaint_no, responsible_department, share,
                 currency, sum(loss) OVER whole AS loss,
                 sum(compensation) OVER whole AS compensation
          FROM case_compensation
          WHERE complaint_nos IS NULL OR complaint_no = ANY (complaint_nos)
          WINDOW whole AS (PARTITION BY complaint_no)
          ORDER BY complaint_no, occurred_at DESC, event_id DESC) m
    WHERE c.complaint_no = m.complaint_no
$$;
SELECT count_compensation(NULL);

DROP INDEX cases_closed;
CREATE INDEX cases_closed ON cases (closed_at, complaint_no)
    INCLUDE (status, branch_id, pack, department, category, received_at,
             responsible_department, share, loss, compensation, currency);
