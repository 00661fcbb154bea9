-- Services each branch delivered per day (room nights, visits, tests…): the denominator
-- of its complaint rate. The latest figure a branch posts for a day stands.
CREATE TABLE service_volumes (
    branch_id  text NOT NULL,
    day        date NOT NULL,
    services   integer NOT NULL CHECK (services >= 0),
    updated_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (branch_id, day)
);
