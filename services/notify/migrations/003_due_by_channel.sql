-- Due messages are claimed per channel, each up to what its rate limit allows now.
CREATE INDEX notifications_due_by_channel ON notifications (channel, not_before)
    WHERE status = 'queued';
DROP INDEX notifications_due;
