-- 0003_fleet_group: each collector of a group reads, every few seconds, the
-- devices the others saved since its previous read (fleet/pg-fleet-store.ts),
-- so every collector's fleet view is the whole group's.
--
-- The transaction that last wrote each device, set by every save (the
-- INSERT's default and the conflict's UPDATE alike). As for alert_changes
-- (0002_alert_feed), a reader keeps a snapshot, not a time: last_seen is a
-- collector's clock, and a save retried after an outage carries times older
-- than the others' reads. The next read takes the rows whose transaction its
-- previous snapshot did not see:
--   WHERE xact_id >= pg_snapshot_xmin($prev) AND NOT pg_visible_in_snapshot(xact_id, $prev)
-- under a snapshot of its own (REPEATABLE READ), which becomes its position:
-- every save once, whatever the commit order and the collectors' clocks.
-- Rows from before this migration keep NULL: a reader's first read is the
-- whole table. Adding the column and its default are two steps, so the table
-- is not rewritten.
ALTER TABLE devices ADD COLUMN xact_id xid8;
ALTER TABLE devices ALTER COLUMN xact_id SET DEFAULT pg_current_xact_id();
CREATE INDEX devices_changes ON devices (xact_id);
