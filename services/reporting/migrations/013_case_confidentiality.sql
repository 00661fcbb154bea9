-- Who may read a case's customer record (seed 004, shared/auth/access.py) turns on its
-- confidentiality, which ComplaintReceived carries. Cases recorded before the field read
-- as department, as their events do. A case whose ComplaintReceived has not arrived yet
-- (routing's event came first) has none, and is read as the strictest level until it does.
-- Added with a default and the default then dropped: the existing rows take 'department'
-- without being rewritten (10^6 cases), new rows take what the projection writes.
ALTER TABLE cases ADD COLUMN confidentiality text DEFAULT 'department';
ALTER TABLE cases ALTER COLUMN confidentiality DROP DEFAULT;
UPDATE cases SET confidentiality = NULL WHERE received_at IS NULL;
