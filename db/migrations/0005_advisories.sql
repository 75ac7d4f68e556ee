-- 0005_advisories: the synced security advisories (CSAF, OSV) in the group's
-- database (advisories/pg-advisory-store.ts), as the SQLite store keeps them
-- in <data-dir>/advisories.db: every collector matches the same advisories,
-- and `placeguard advisories sync` run on any machine goes on from where the
-- last sync of that provider stopped.

-- One row per advisory, keyed by its id (CSAF document.tracking.id, OSV id).
-- Two syncs writing the same advisory at once: the store's upsert inserts
-- with ON CONFLICT (id) DO NOTHING, then locks the row (FOR UPDATE) and
-- replaces it only if its file's hash differs and it was not released later
-- (released_at, the document's own text: compared by the store as times).
CREATE TABLE advisories (
  id           text PRIMARY KEY,
  format       text NOT NULL CHECK (format IN ('csaf', 'osv')),
  title        text NOT NULL,
  cves         jsonb NOT NULL,
  cvss         double precision,          -- highest CVSS v3 base score
  remediation  text,
  revision     text NOT NULL,             -- tracking.version / modified
  released_at  text NOT NULL,             -- current_release_date / modified, as published
  provider     text NOT NULL,
  file         text NOT NULL,
  sha256       text NOT NULL,             -- of the file as read: an unchanged file is not read again
  synced_at    timestamptz NOT NULL
);
CREATE INDEX advisories_by_file ON advisories (provider, file);

-- Each advisory's product lines, in the document's order, replaced with it.
CREATE TABLE advisory_products (
  advisory_id  text NOT NULL REFERENCES advisories (id) ON DELETE CASCADE,
  position     integer NOT NULL,
  vendor       text NOT NULL,
  model        text NOT NULL,
  version      text,
  range        text,
  status       text NOT NULL CHECK (status IN ('affected', 'not-affected', 'fixed')),
  PRIMARY KEY (advisory_id, position)
);

-- Each provider distribution's sync position: the newest changes.csv (or
-- ROLIE) time taken in and the files refused last time. A sync writes it
-- once its files are stored, with
--   INSERT … ON CONFLICT (provider) DO UPDATE … WHERE the stored time is not later
-- so of two syncs at once the one that read the newer list stays, whichever
-- commits last; both positions name every earlier file as stored or to retry.
CREATE TABLE advisory_providers (
  provider       text PRIMARY KEY,
  changed_until  timestamptz,
  retry          jsonb NOT NULL,            -- files refused last time
  synced_at      timestamptz
);

-- Moves with every upsert that changed something, in that upsert's
-- transaction: collectors poll it (one row) and re-read the advisories only
-- when it moved. Updated last in the transaction, so the row is held only
-- for the commit.
CREATE TABLE advisory_revision (
  singleton  boolean PRIMARY KEY DEFAULT true CHECK (singleton),
  revision   bigint NOT NULL
);
INSERT INTO advisory_revision (singleton, revision) VALUES (true, 0);
