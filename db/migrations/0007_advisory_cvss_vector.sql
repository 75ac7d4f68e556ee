-- 0006_advisory_cvss_vector: the CVSS vector behind each advisory's score,
-- as the SQLite store keeps it. OSV publishes vectors, not scores: a CVSS v3
-- vector is scored (shared/cvss.ts) and kept here beside its score; a CVSS
-- v4 vector is kept with no score. Rows stored before read null until their
-- files change.
ALTER TABLE advisories ADD COLUMN cvss_vector text;
