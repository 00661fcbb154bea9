-- Each person's open cases, per pack. Every routing instance reads and updates it in the
-- transaction that assigns, under an advisory lock per pack and department, so several
-- instances agree on the load and never count a case twice.
CREATE TABLE staff_load (
    pack       text NOT NULL,
    staff_id   text NOT NULL,
    open_cases integer NOT NULL DEFAULT 0 CHECK (open_cases >= 0),
    PRIMARY KEY (pack, staff_id)
);

ALTER TABLE assignments
    ADD COLUMN open        boolean NOT NULL DEFAULT true,
    ADD COLUMN also_notify text[] NOT NULL DEFAULT '{}',
    ADD COLUMN candidates  jsonb NOT NULL DEFAULT '[]'::jsonb,
    ADD COLUMN reason      text NOT NULL DEFAULT '';
