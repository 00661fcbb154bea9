-- What routing needs to speak about a case on its own initiative (re-routing a case away
-- from someone who became unavailable): the correlation of the submission it came from.
ALTER TABLE assignments ADD COLUMN correlation_id text;
