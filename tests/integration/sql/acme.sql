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
