// tests/apps patterns sent with node-postgres (contract in ../apps_common.py): node-postgres'
// own RLS idiom, and the exact statement sequences of Prisma, PostgREST and Supabase, which this
// program sends over the same protocol those frameworks use. node-postgres sends a query without
// values as a simple Query, and one with values or a name with Parse/Bind/Describe/Execute/Sync
// (named: Parse only once per connection); it leaves parameter types unspecified (0), as
// PostgREST's hasql `unknownEncoder` does.
//
// node-postgres comes from tests/drivers/node/node_modules (run_apps.sh sets NODE_PATH).
'use strict'

const pg = require('pg')

const CHECK = "SELECT current_setting('app.tenant_id', true) AS setting, current_database() AS db, " +
  "coalesce(string_agg(tenant_id, ',' ORDER BY id), '') AS tenants FROM items WHERE id >= $1"

function parseArgs (argv) {
  const a = { host: '127.0.0.1', 'db-shared': 'app', 'db-acme': 'acme', only: '' }
  for (let i = 0; i + 1 < argv.length; i += 2) a[argv[i].replace(/^--/, '')] = argv[i + 1]
  for (const key of ['port', 'user', 'password']) {
    if (!(key in a)) throw new Error('missing --' + key)
  }
  return a
}

const args = parseArgs(process.argv.slice(2))

function cases () {
  const out = [['t007'], ['acme'], ['t012', 't013']]
  if (args['db-shared'] === args['db-acme']) out.push(['t012', 'acme'])
  return out
}

const databaseOf = (tenant) => (tenant === 'acme' ? 'acme' : 'app')

class Failure extends Error {}

function expect (tenant, row) {
  if (!row) throw new Failure(`tenant ${tenant}: the check returned no row`)
  const wrong = []
  if (row.setting !== tenant) wrong.push(`current_setting(app.tenant_id) = ${JSON.stringify(row.setting)}`)
  if (row.db !== databaseOf(tenant)) wrong.push(`current_database() = '${row.db}', want '${databaseOf(tenant)}'`)
  const want = [tenant, tenant, tenant].join(',')
  if (row.tenants !== want) wrong.push(`rows of '${row.tenants}', want 3 of ${tenant}`)
  if (wrong.length) throw new Failure(`tenant ${tenant}: ${wrong.join('; ')}`)
}

// run(steps, client, label, query): the query is a string (simple Query) or {text, values, name}.
async function run (steps, client, label, query) {
  steps.at = label
  return client.query(query)
}

async function check (steps, client, tenant, name) {
  const q = { text: CHECK, values: [0] }
  if (name) q.name = name
  const res = await run(steps, client, 'check', q)
  expect(tenant, res.rows[0])
}

// node-postgres' own RLS idiom: BEGIN / set_config($1, true) (unnamed, value bound) / query / COMMIT.
async function nodePg (client, tenant, steps) {
  await run(steps, client, 'BEGIN', 'BEGIN')
  await run(steps, client, 'set_config($1, true)',
    { text: "SELECT set_config('app.tenant_id', $1, true)", values: [tenant] })
  await check(steps, client, tenant)
  await run(steps, client, 'COMMIT', 'COMMIT')
}

// node-postgres, tenant per session: set_config($1, false) with the value bound, then a query.
async function nodePgSession (client, tenant, steps) {
  await run(steps, client, 'set_config($1, false)',
    { text: "SELECT set_config('app.tenant_id', $1, false)", values: [tenant] })
  await check(steps, client, tenant)
}

// Prisma's RLS client extension: prisma.$transaction([$executeRaw`SELECT set_config(..., ${id},
// TRUE)`, query]). The query engine sends BEGIN and COMMIT as simple Queries and every statement
// as a named prepared statement (s0, s1, ...) with its values bound.
async function prisma (client, tenant, steps) {
  await run(steps, client, 'BEGIN', 'BEGIN')
  await run(steps, client, "s0: SELECT set_config('app.tenant_id', $1, TRUE)",
    { name: 's0', text: "SELECT set_config('app.tenant_id', $1, TRUE)", values: [tenant] })
  await check(steps, client, tenant, 's1')
  await run(steps, client, 'COMMIT', 'COMMIT')
}

// PostgREST (src/PostgREST/Query/PreQuery.hs txVarQuery): per request BEGIN with the access mode,
// one SELECT of set_config(..., true) targets with the values bound (search_path, role, JWT
// claims, method, path, then the app settings), the main query, COMMIT. `dynamic`: the tenant
// setting comes as a bound name, as PostgREST sends role settings and db-config app settings
// (setConfigWithDynamicName).
function postgrest (dynamic) {
  return async (client, tenant, steps) => {
    await run(steps, client, 'BEGIN ISOLATION LEVEL READ COMMITTED READ ONLY',
      'BEGIN ISOLATION LEVEL READ COMMITTED READ ONLY')
    const values = ['"public"', 'app_rls', JSON.stringify({ role: 'app_rls', tenant }), 'GET', '/items']
    let tenantTarget
    if (dynamic) {
      tenantTarget = 'set_config($6, $7, true)'
      values.push('app.tenant_id', tenant)
    } else {
      tenantTarget = "set_config('app.tenant_id', $6, true)"
      values.push(tenant)
    }
    const text = "select set_config('search_path', $1, true), set_config('role', $2, true), " +
      "set_config('request.jwt.claims', $3, true), set_config('request.method', $4, true), " +
      "set_config('request.path', $5, true), " + tenantTarget
    await run(steps, client, 'select set_config(...) x6', { text, values })
    await check(steps, client, tenant)
    await run(steps, client, 'COMMIT', 'COMMIT')
  }
}

// Supabase (RLS through its pooler): begin; select set_config(..., $1, true); set local role
// "authenticated"; query; commit. The fixture has no role authenticated and this suite creates
// none: the role is app_rls, the one the program logged in as (directly) or pgtenant's pool's.
async function supabase (client, tenant, steps) {
  await run(steps, client, 'begin', 'begin')
  await run(steps, client, 'select set_config($1, true)',
    { text: "select set_config('app.tenant_id', $1, true)", values: [tenant] })
  await run(steps, client, 'set local role app_rls', 'set local role app_rls')
  await check(steps, client, tenant)
  await run(steps, client, 'commit', 'commit')
}

const PATTERNS = [
  ['node-pg.transaction.set_config_local', nodePg],
  ['node-pg.session_set_config', nodePgSession],
  ['prisma.rls_extension', prisma],
  ['postgrest.tx_settings', postgrest(false)],
  ['postgrest.tx_settings.dynamic_name', postgrest(true)],
  ['supabase.set_config_set_local_role', supabase]
]

async function main () {
  const only = args.only ? new Set(args.only.split(',')) : null
  let passed = 0
  let failed = 0
  for (const [name, fn] of PATTERNS) {
    if (only && !only.has(name)) continue
    for (const kase of cases()) {
      const steps = { at: 'connect' }
      let problem = null
      const client = new pg.Client({
        host: args.host,
        port: Number(args.port),
        user: args.user,
        password: args.password,
        database: kase[0] === 'acme' ? args['db-acme'] : args['db-shared'],
        connectionTimeoutMillis: 10000
      })
      client.on('error', () => {}) // reported by the query that fails
      try {
        await client.connect()
        for (const tenant of kase) {
          steps.at = 'tenant ' + tenant
          await fn(client, tenant, steps)
        }
      } catch (e) {
        problem = e instanceof Failure ? e.message
          : `at ${steps.at}: ` + (e.code ? `${e.code} ${e.message}` : `${e.name}: ${e.message}`)
      }
      try { await client.end() } catch (e) {}
      const label = `${name} [${kase.join(',')}]`
      if (problem === null) {
        passed++
        console.log(`${label}: ok`)
      } else {
        failed++
        console.log(`${label}: FAIL: ${problem.replace(/\s+/g, ' ')}`)
      }
    }
  }
  console.log(`RESULT passed=${passed} failed=${failed}`)
  process.exitCode = failed === 0 ? 0 : 1
}

main().catch((e) => { console.log('FAIL: ' + e.stack); process.exitCode = 2 })
