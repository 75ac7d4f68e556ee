-- 0001_initial: the state a collector group shares (issue 15), designed from
-- what the SQLite stores hold today: detection/sqlite-alert-store.ts,
-- delivery/sqlite-outbox-store.ts, fleet/sqlite-fleet-store.ts. Times are
-- timestamptz (milliseconds from the stores' interfaces fit exactly).
-- Released migrations are never edited (db/migrate.ts checks checksums).

-- Alerts ---------------------------------------------------------------------
-- One row per alert: the whole Alert (shared/alert-contract.ts, comments
-- included, as the SQLite store keeps it) in `body`, beside the columns that
-- lists filter, page and expire on.
CREATE TABLE alerts (
  id          text PRIMARY KEY,
  policy      text NOT NULL,
  device_id   text NOT NULL,
  status      text NOT NULL CHECK (status IN ('open', 'acknowledged', 'resolved')),
  severity    text NOT NULL CHECK (severity IN ('info', 'low', 'medium', 'high', 'critical')),
  site        text,
  detected_at timestamptz NOT NULL,
  resolved_at timestamptz,
  body        jsonb NOT NULL,
  -- The columns and the body never tell two stories.
  CONSTRAINT alerts_body_matches CHECK (
    body ->> 'id' = id AND body ->> 'policy' = policy AND body ->> 'deviceId' = device_id
    AND body ->> 'status' = status AND body ->> 'severity' = severity
  )
);

-- The deduplication key: at most one live (not resolved) alert per (policy,
-- device) across the whole group, enforced here and not by the collectors'
-- care. A second collector raising the same condition at once gets a
-- unique_violation on a plain INSERT; the store's `raise` is one
--   INSERT … ON CONFLICT (policy, device_id) WHERE status <> 'resolved'
--   DO UPDATE … RETURNING
-- so the loser refreshes the winner's alert instead (test/db/schema.test.ts).
CREATE UNIQUE INDEX alerts_one_live ON alerts (policy, device_id) WHERE status <> 'resolved';
-- Newest first, keyset paging on (detected_at, id).
CREATE INDEX alerts_page ON alerts (detected_at DESC, id DESC);
CREATE INDEX alerts_by_device ON alerts (device_id, detected_at DESC, id DESC);
-- Expiry of resolved alerts.
CREATE INDEX alerts_expiry ON alerts (resolved_at) WHERE status = 'resolved';

-- What happened to each alert, in order: opened, each repeat folded in,
-- acknowledged, resolved, a response's progress, a comment. `by` is the
-- operator (the API's token fingerprint) for their actions, null for
-- detection's own. `alert` is the alert after the change. It goes with its
-- alert when a resolved alert expires. `seq` orders one alert's changes
-- (written under the alert's row lock); it is not a feed position across
-- alerts, since transactions commit in another order than they draw seq.
CREATE TABLE alert_changes (
  seq      bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  alert_id text NOT NULL REFERENCES alerts (id) ON DELETE CASCADE,
  change   text NOT NULL CHECK (change IN ('opened', 'updated', 'acknowledged', 'resolved', 'response', 'commented')),
  at       timestamptz NOT NULL DEFAULT now(),
  by       text,
  alert    jsonb NOT NULL
);
CREATE INDEX alert_changes_by_alert ON alert_changes (alert_id, seq);

-- Delivery outbox --------------------------------------------------------------
-- One row per SOC sink: the lock that serializes the head of its queue.
--
-- Why not `SELECT … FROM deliveries … FOR UPDATE SKIP LOCKED` alone: worker A
-- locks the head d1 and sends it; worker B, skipping d1, takes d2 and sends
-- it beside d1, or before it, or while d1 fails and waits out its back-off.
-- The sink sees d2 before d1. Per-sink order needs one sender per sink at a
-- time, so a claim locks the sink's row instead:
--   BEGIN;
--   SELECT name FROM sinks WHERE name = $sink
--     AND (holder IS NULL OR holder = $me OR lease_until < now())
--     FOR UPDATE SKIP LOCKED;                  -- no row: another has the sink
--   SELECT … FROM deliveries WHERE sink = $sink AND state = 'pending'
--     ORDER BY seq LIMIT $max;                 -- the head, if due
--   UPDATE sinks SET holder = $me, lease_until = now() + $lease WHERE name = $sink;
--   COMMIT;
-- and the claimant sends outside any transaction (an HTTP call must not pin
-- a connection and its locks), holding the sink by its lease; it settles the
-- deliveries (delete, retry, dead-letter) and clears holder in one
-- transaction. A claimant that dies loses the sink when its lease lapses
-- (the database's clock, the one every collector shares); its deliveries are
-- sent again by the next, with the same delivery id for the receiver to
-- deduplicate.
CREATE TABLE sinks (
  name        text PRIMARY KEY,
  holder      text,
  lease_until timestamptz,
  CONSTRAINT sinks_lease_whole CHECK ((holder IS NULL) = (lease_until IS NULL))
);

-- One row per delivery of an alert change to a sink; `add` inserts the sink's
-- row first (ON CONFLICT DO NOTHING), so every queue has its lock. The queue
-- order is `seq`, the order deliveries were added, not created_at: the
-- collectors' clocks differ, and one alert's changes are added in the order
-- they happen (under its row lock). A requeued dead letter goes to the tail
-- with `seq = DEFAULT`.
CREATE TABLE deliveries (
  id              text PRIMARY KEY,
  seq             bigint GENERATED ALWAYS AS IDENTITY UNIQUE,
  sink            text NOT NULL REFERENCES sinks (name),
  alert_id        text NOT NULL,
  change          text NOT NULL,
  alert           jsonb NOT NULL,
  created_at      timestamptz NOT NULL,
  attempts        integer NOT NULL DEFAULT 0 CHECK (attempts >= 0),
  next_attempt_at timestamptz NOT NULL,
  last_error      text,
  state           text NOT NULL DEFAULT 'pending' CHECK (state IN ('pending', 'dead'))
);
CREATE INDEX deliveries_queue ON deliveries (sink, seq) WHERE state = 'pending';
CREATE INDEX deliveries_dead ON deliveries (sink, created_at) WHERE state = 'dead';
CREATE INDEX deliveries_by_alert ON deliveries (sink, alert_id, created_at);

-- Per sink and alert, the newest change the sink confirmed: a requeued dead
-- letter older than it is superseded.
CREATE TABLE delivered_marks (
  sink       text NOT NULL,
  alert_id   text NOT NULL,
  created_at timestamptz NOT NULL,
  PRIMARY KEY (sink, alert_id)
);
CREATE INDEX delivered_marks_age ON delivered_marks (created_at);

-- Operator audit trail -------------------------------------------------------
-- Who did what, append-only: an operator acknowledging, resolving or
-- commenting on an alert, lifting a quarantine, requeueing dead letters,
-- reloading policies. UPDATE, DELETE and TRUNCATE are refused by triggers.
-- A hash chain makes tampering by someone who can bypass them (a superuser)
-- evident: each event's hash covers its fields and the previous event's
-- hash, and audit_verify() answers the first seq where the chain breaks.
--
-- The trigger numbers events under the lock of audit_head's one row, so seq
-- is the chain's order and the commit order alike; `at` is the database's
-- clock, read under that lock. Callers insert actor, action, subject, detail.
CREATE TABLE audit_head (
  one  boolean PRIMARY KEY DEFAULT true CHECK (one),
  seq  bigint NOT NULL,
  hash text NOT NULL
);
INSERT INTO audit_head (seq, hash) VALUES (0, repeat('0', 64));

CREATE TABLE audit_events (
  seq       bigint PRIMARY KEY,
  at        timestamptz NOT NULL,
  actor     text NOT NULL,
  action    text NOT NULL,
  subject   text,
  detail    jsonb NOT NULL DEFAULT '{}',
  prev_hash text NOT NULL,
  hash      text NOT NULL UNIQUE
);
CREATE INDEX audit_events_by_subject ON audit_events (subject, seq);

-- sha256 over a JSON array of the fields (jsonb's text form is canonical; the
-- time as integer microseconds, free of DateStyle and TimeZone).
CREATE FUNCTION audit_hash (seq bigint, prev_hash text, at timestamptz, actor text, action text, subject text, detail jsonb)
RETURNS text LANGUAGE sql STABLE AS $$
  SELECT encode(sha256(convert_to(jsonb_build_array(
    seq, prev_hash, floor(extract(epoch FROM at) * 1000000)::bigint, actor, action, subject, detail)::text, 'UTF8')), 'hex')
$$;

CREATE FUNCTION audit_chain () RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  UPDATE audit_head SET seq = seq + 1 RETURNING seq, hash INTO NEW.seq, NEW.prev_hash;
  NEW.at := clock_timestamp();
  NEW.hash := audit_hash(NEW.seq, NEW.prev_hash, NEW.at, NEW.actor, NEW.action, NEW.subject, NEW.detail);
  UPDATE audit_head SET hash = NEW.hash;
  RETURN NEW;
END
$$;
CREATE TRIGGER audit_chain BEFORE INSERT ON audit_events FOR EACH ROW EXECUTE FUNCTION audit_chain();

CREATE FUNCTION audit_append_only () RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  RAISE EXCEPTION 'the audit trail is append-only: % refused', TG_OP USING ERRCODE = 'insufficient_privilege';
END
$$;
CREATE TRIGGER audit_append_only BEFORE UPDATE OR DELETE ON audit_events FOR EACH ROW EXECUTE FUNCTION audit_append_only();
CREATE TRIGGER audit_no_truncate BEFORE TRUNCATE ON audit_events FOR EACH STATEMENT EXECUTE FUNCTION audit_append_only();

-- The first seq at which the chain breaks (an event changed, removed or
-- inserted out of the chain, or the head moved), or null when it is whole.
CREATE FUNCTION audit_verify () RETURNS bigint LANGUAGE plpgsql STABLE AS $$
DECLARE
  event record;
  expected bigint := 1;
  prev text := repeat('0', 64);
  head record;
BEGIN
  FOR event IN SELECT * FROM audit_events ORDER BY seq LOOP
    IF event.seq <> expected OR event.prev_hash <> prev
      OR event.hash <> audit_hash(event.seq, event.prev_hash, event.at, event.actor, event.action, event.subject, event.detail) THEN
      RETURN expected;
    END IF;
    prev := event.hash;
    expected := expected + 1;
  END LOOP;
  SELECT * INTO head FROM audit_head;
  IF head.seq <> expected - 1 OR head.hash <> prev THEN
    RETURN expected;
  END IF;
  RETURN NULL;
END
$$;

-- Device registry and last-seen state ------------------------------------------
-- What a restart must not forget of a device (fleet/fleet-store.ts). Saved by
-- whichever collector reads the device's partition; in a group the store
-- keeps the latest last_seen (GREATEST), not the last saver's.
CREATE TABLE devices (
  id        text PRIMARY KEY,
  kind      text NOT NULL,
  site      text NOT NULL,
  firmware  text,
  last_seen timestamptz,
  messages  bigint NOT NULL DEFAULT 0 CHECK (messages >= 0)
);
CREATE INDEX devices_by_site ON devices (site, id);

-- Fencing of partition leases ------------------------------------------------
-- A collector's lease on a telemetry partition (Redis) comes with a token that
-- grows with each new lease. Every write made for a partition carries it, in
-- the same transaction, first:
--   INSERT INTO partition_fencing (partition, token) VALUES ($p, $token)
--   ON CONFLICT (partition) DO UPDATE SET token = excluded.token
--   WHERE partition_fencing.token <= excluded.token
--   RETURNING token;                     -- no row: the lease is stale, roll back
-- The row lock it takes orders it against the next holder's first write, so a
-- collector that was paused and comes back with an old token writes nothing.
CREATE TABLE partition_fencing (
  partition integer PRIMARY KEY CHECK (partition >= 0),
  token     bigint NOT NULL CHECK (token >= 0)
);
