-- 0004_audit_head_guard: the audit trail's head row is guarded like its
-- entries. 0001 refused UPDATE, DELETE and TRUNCATE of audit_events but left
-- audit_head open: any client could delete the head (audit_verify() then read
-- a truncated chain as whole) or move it. Now only the audit_chain trigger,
-- appending an entry, may move the head (it runs one trigger level down:
-- pg_trigger_depth() > 1); deleting or truncating it is refused. Someone who
-- can disable triggers (a superuser) can still move it, which verify in
-- audit/pg-audit-store.ts reports as a break.
CREATE FUNCTION audit_head_guard () RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  IF TG_OP = 'UPDATE' AND pg_trigger_depth() > 1 THEN
    RETURN NEW;
  END IF;
  RAISE EXCEPTION 'the audit trail''s head moves only when an entry is appended: % refused', TG_OP USING ERRCODE = 'insufficient_privilege';
END
$$;
CREATE TRIGGER audit_head_guard BEFORE UPDATE OR DELETE ON audit_head FOR EACH ROW EXECUTE FUNCTION audit_head_guard();
CREATE TRIGGER audit_head_no_truncate BEFORE TRUNCATE ON audit_head FOR EACH STATEMENT EXECUTE FUNCTION audit_head_guard();
