CREATE TABLE assignments (
    complaint_no text PRIMARY KEY,
    branch_id    text NOT NULL,
    department   text NOT NULL,
    assignee_id  text,
    rule         text NOT NULL,
    pack         text NOT NULL,
    pack_version text NOT NULL,
    assigned_at  timestamptz NOT NULL DEFAULT now()
);
