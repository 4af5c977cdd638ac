-- The shared database: one RLS table for many tenants, as docs/reference.md describes it.
-- Loaded by pg_fixture.sh as the superuser `postgres` into the database `app`.

-- items belongs to postgres, so app_rls (not owner, not superuser, no BYPASSRLS) is always
-- subject to the policy; FORCE makes it apply to the owner too.
CREATE TABLE items (tenant_id text NOT NULL, id int NOT NULL, body text);
ALTER TABLE items ENABLE ROW LEVEL SECURITY;
ALTER TABLE items FORCE ROW LEVEL SECURITY;
-- current_setting(..., true) gives NULL when the variable was never set, so a session without a
-- tenant sees no rows instead of an error.
CREATE POLICY items_tenant ON items
  USING (tenant_id = current_setting('app.tenant_id', true))
  WITH CHECK (tenant_id = current_setting('app.tenant_id', true));
GRANT SELECT, INSERT, UPDATE, DELETE ON items TO app_rls;

-- 100 tenants t000..t099 with 3 rows each; body names its tenant so a leak is visible.
INSERT INTO items (tenant_id, id, body)
SELECT 't' || lpad(t::text, 3, '0'), r, 'item ' || r || ' of t' || lpad(t::text, 3, '0')
FROM generate_series(0, 99) AS t, generate_series(1, 3) AS r;

-- COPY tests use a plain table without RLS.
CREATE TABLE copytest (a int, b text);
GRANT SELECT, INSERT, UPDATE, DELETE, TRUNCATE ON copytest TO app_rls;

-- Changes the tenant variable without naming it in the SQL text, so a pooler cannot see the
-- change by reading statements; isolation must hold anyway. The hex is 'app.tenant_id'.
CREATE FUNCTION switch_tenant(new_tenant text) RETURNS text
LANGUAGE sql VOLATILE AS $$
  SELECT set_config(convert_from(decode('6170702e74656e616e745f6964', 'hex'), 'UTF8'), $1, false)
$$;
GRANT EXECUTE ON FUNCTION switch_tenant(text) TO app_rls;
GRANT USAGE ON SCHEMA public TO app_rls;
