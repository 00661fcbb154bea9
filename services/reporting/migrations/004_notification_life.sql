-- Notify now publishes each notification's whole life (queued, sent, delivered, failed,
-- unconfirmed) and says whether the customer was the recipient.
ALTER TABLE case_notifications
    ADD COLUMN to_customer  boolean NOT NULL DEFAULT false,
    ADD COLUMN dead_lettered boolean NOT NULL DEFAULT false;
