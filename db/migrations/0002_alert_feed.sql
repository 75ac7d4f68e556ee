-- 0002_alert_feed: a feed of alert changes for every collector of the group,
-- so an operator's acknowledge through one collector's API shows in the
-- live stream of all of them (detection/pg-alert-feed.ts reads it).

-- The transaction that wrote each change. `seq` cannot serve as a reader's
-- position: it is drawn when the row is inserted and transactions commit in
-- another order, so a reader that resumes at "seq > the last it saw" skips a
-- change with a lower seq that committed after the one it saw. A reader keeps
-- a snapshot instead (pg_current_snapshot()) and next reads the changes whose
-- transaction that snapshot did not see but its new one does:
--   WHERE xact_id >= pg_snapshot_xmin($prev)
--     AND NOT pg_visible_in_snapshot(xact_id, $prev)
--     AND pg_visible_in_snapshot(xact_id, $next)
-- which takes every committed change once, whatever the commit order.
-- xid8 is 64 bits: it does not wrap around. Rows from before this migration
-- keep NULL (no reader's snapshot predates the feed), so adding the column
-- and its default are two steps and the table is not rewritten.
ALTER TABLE alert_changes ADD COLUMN xact_id xid8;
ALTER TABLE alert_changes ALTER COLUMN xact_id SET DEFAULT pg_current_xact_id();
-- Repeats folded into an alert ('updated') are most of the rows and are never
-- news to a reader (the live stream leaves them out), so the index does too.
CREATE INDEX alert_changes_feed ON alert_changes (xact_id) WHERE change <> 'updated';

-- The wake-up: one notification per change on channel
-- placeguard_alert_changes, sent by PostgreSQL only when the transaction
-- commits (a rolled-back change tells no one), in commit order. The payload
-- is small, well under NOTIFY's 8000 bytes: the change's seq, alert id and
-- kind as JSON, never the alert itself; readers fetch the rows. A
-- notification is a hint and may be lost (a reader disconnected meanwhile);
-- the snapshot above is what makes a reader miss nothing.
-- Repeats send none: a device repeating a finding many times a second would
-- otherwise wake every collector as often, for nothing they show.
CREATE FUNCTION alert_changes_notify () RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  PERFORM pg_notify('placeguard_alert_changes', json_build_object('seq', NEW.seq, 'alertId', NEW.alert_id, 'change', NEW.change)::text);
  RETURN NULL;
END
$$;
CREATE TRIGGER alert_changes_notify AFTER INSERT ON alert_changes
  FOR EACH ROW WHEN (NEW.change <> 'updated') EXECUTE FUNCTION alert_changes_notify();
