-- 0005_audit_idempotency: an action reported twice is recorded once. A
-- supplier's command reaches the collectors as a broker event at QoS 1, and
-- a collector restarted before it acknowledged one is given it again; the
-- event carries the command's id, which the collector appends as the
-- entry's idempotency key (audit/pg-audit-store.ts looks it up first).
-- Beside the chain, not in it: audit_hash() does not cover the column, so
-- the entries already written keep their hashes. The unique index settles
-- two collectors appending one key at once: the second INSERT fails, and
-- its statement's rollback takes back the head the audit_chain trigger
-- moved for it — which is why the store does not use ON CONFLICT DO NOTHING
-- (the BEFORE INSERT trigger would have moved the head for a row never written).
ALTER TABLE audit_events ADD COLUMN idempotency_key text;
CREATE UNIQUE INDEX audit_events_by_key ON audit_events (idempotency_key) WHERE idempotency_key IS NOT NULL;
