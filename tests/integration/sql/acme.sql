-- The dedicated database of tenant acme. Loaded by pg_fixture.sh into the database `acme`.
-- It has the same policy as the shared database, so the tenant variable must be set here too.
CREATE TABLE items (tenant_id text NOT NULL, id int NOT NULL, body text);
ALTER TABLE items ENABLE ROW LEVEL SECURITY;
ALTER TABLE items FORCE ROW LEVEL SECURITY;
CREATE POLICY items_tenant ON items
  USING (tenant_id = current_setting('app.tenant_id', true))
  WITH CHECK (tenant_id = current_setting('app.tenant_id', true));
GRANT SELECT, INSERT, UPDATE, DELETE ON items TO app_rls;

INSERT INTO items (tenant_id, id, body)
SELECT 'acme', r, 'acme item ' || r FROM generate_series(1, 3) AS r;

GRANT USAGE ON SCHEMA public TO app_rls;

-- For the isolation suite (tests/isolation): the same COPY table and hidden-change function as
-- the shared database, so adversarial clients of tenant acme can do what the others do.
CREATE TABLE copytest (a int, b text);
GRANT SELECT, INSERT, UPDATE, DELETE, TRUNCATE ON copytest TO app_rls;
CREATE FUNCTION switch_tenant(new_tenant text) RETURNS text
LANGUAGE sql VOLATILE AS $$
  SELECT set_config(convert_from(decode('6170702e74656e616e745f6964', 'hex'), 'UTF8'), $1, false)
$$;
GRANT EXECUTE ON FUNCTION switch_tenant(text) TO app_rls;
