-- 0006_advisory_sboms: what firmwares are built from, for matching their
-- components against OSV advisories (docs/advisories.md#sboms), as the
-- SQLite store keeps them in <data-dir>/advisories.db.

-- Each OSV advisory's affected packages: the key a component is compared
-- by (pkg:<type>/<namespace>/<name>, shared/package-url.ts), its ranges
-- (SEMVER / ECOSYSTEM events) and listed versions; replaced with the
-- advisory, in the record's order.
CREATE TABLE advisory_packages (
  advisory_id  text NOT NULL REFERENCES advisories (id) ON DELETE CASCADE,
  position     integer NOT NULL,
  key          text NOT NULL,
  name         text NOT NULL,
  ranges       jsonb NOT NULL,
  versions     jsonb NOT NULL,
  PRIMARY KEY (advisory_id, position)
);

-- OSV records synced before their packages were kept: forget their hashes,
-- so the next sync reads them again and stores their packages.
UPDATE advisories SET sha256 = '' WHERE format = 'osv';

-- One SBOM per firmware of a product, keyed by vendor, model and firmware
-- as matching compares them (sbomKey in shared/advisory-match.ts).
-- Recording one moves advisory_revision in the same transaction, so every
-- collector rebuilds its match index.
CREATE TABLE advisory_sboms (
  sbom_key      text PRIMARY KEY,
  vendor        text NOT NULL,
  model         text NOT NULL,
  firmware      text NOT NULL,
  format        text NOT NULL CHECK (format IN ('cyclonedx', 'spdx')),
  spec_version  text NOT NULL,
  source        text NOT NULL,            -- the file path or URL it was read from
  sha256        text NOT NULL,            -- of the bytes read
  components    jsonb NOT NULL,           -- [{ name, version, purl }]
  recorded_at   timestamptz NOT NULL
);
