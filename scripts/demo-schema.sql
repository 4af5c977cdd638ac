-- The demo's multi-tenant schema, loaded by scripts/demo as the superuser into a fresh cluster.
--   app      shared database: table accounts with row-level security, tenants alpha and beta
--   acme_db  the dedicated database of tenant acme
-- pgtenant connects to both as app_rls, a role that RLS applies to (not superuser, not
-- BYPASSRLS, not the table owner).
\set ON_ERROR_STOP on

CREATE ROLE app_rls LOGIN PASSWORD 'app_rls_pw' NOSUPERUSER NOBYPASSRLS NOCREATEDB NOCREATEROLE;
CREATE DATABASE app;
CREATE DATABASE acme_db;

\connect app
CREATE TABLE accounts (
  tenant_id text    NOT NULL,
  id        int     NOT NULL,
  name      text    NOT NULL,
  balance   numeric NOT NULL DEFAULT 0,
  PRIMARY KEY (tenant_id, id)
);
ALTER TABLE accounts ENABLE ROW LEVEL SECURITY;
ALTER TABLE accounts FORCE ROW LEVEL SECURITY;
-- The variable pgtenant sets on the server connection before each client transaction.
CREATE POLICY tenant_isolation ON accounts
  USING (tenant_id = current_setting('app.tenant_id', true))
  WITH CHECK (tenant_id = current_setting('app.tenant_id', true));
GRANT SELECT, INSERT, UPDATE, DELETE ON accounts TO app_rls;
INSERT INTO accounts (tenant_id, id, name, balance) VALUES
  ('alpha', 1, 'Alpha Corp operating', 1200.00),
  ('alpha', 2, 'Alpha Corp payroll',    850.50),
  ('beta',  1, 'Beta Ltd main',        4300.00),
  ('beta',  2, 'Beta Ltd savings',      990.10),
  ('beta',  3, 'Beta Ltd escrow',        15.00);

\connect acme_db
CREATE TABLE accounts (
  tenant_id text    NOT NULL,
  id        int     NOT NULL,
  name      text    NOT NULL,
  balance   numeric NOT NULL DEFAULT 0,
  PRIMARY KEY (tenant_id, id)
);
ALTER TABLE accounts ENABLE ROW LEVEL SECURITY;
ALTER TABLE accounts FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON accounts
  USING (tenant_id = current_setting('app.tenant_id', true))
  WITH CHECK (tenant_id = current_setting('app.tenant_id', true));
GRANT SELECT, INSERT, UPDATE, DELETE ON accounts TO app_rls;
INSERT INTO accounts (tenant_id, id, name, balance) VALUES
  ('acme', 1, 'ACME dedicated ledger', 100000.00);
