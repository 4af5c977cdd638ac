// The driver-suite workload for node-postgres (tests/drivers; contract in ../workload_common.py).
//
// Every statement is a named query ({name, text, values}): node-postgres prepares it once per
// connection as a named protocol-level statement and afterwards only binds and executes it. The
// tenant comes from the `options` startup parameter (-c app.tenant_id=tXXX); with
// --tenant-after-connect from `SELECT set_config('app.tenant_id', $1, false)` with the tenant bound
// (an unnamed query, as applications send it), the first statement of every connection the client
// opens, reconnects included. Cancel uses the driver's own cancel (Client#cancel(client, query): a
// CancelRequest on a new connection).
// COPY is not tested: node-postgres has no COPY API without the pg-copy-streams package.
'use strict'

const pg = require('pg')

const ROWS_PER_TENANT = 3
const TENANTS = 50
const CANCEL_LIMIT_S = 4.0
const MAX_PROBLEM_LINES = 200
const GRACE_S = 15 // past the deadline before a client counts as hung

const ITEMS = { name: 'items', text: 'SELECT tenant_id, id, body FROM items WHERE id >= $1 ORDER BY id' }
const SETTING = { name: 'setting', text: "SELECT current_setting('app.tenant_id', true) AS v" }

function parseArgs (argv) {
  const a = { host: '127.0.0.1', dbname: 'app', clients: '50', iterations: '20', deadline: '60' }
  for (let i = 0; i < argv.length; i++) {
    const key = argv[i].replace(/^--/, '')
    if (key === 'tenant-after-connect') a[key] = true
    else if (i + 1 < argv.length) a[key] = argv[++i]
    else throw new Error('no value for ' + argv[i])
  }
  for (const key of ['port', 'user', 'password', 'tag']) {
    if (!(key in a)) throw new Error('missing --' + key)
  }
  return a
}

const args = parseArgs(process.argv.slice(2))
const tally = { statements: 0, errors: 0, leaks: 0, lines: 0 }

function problem (kind, c, text) {
  if (kind === 'LEAK') tally.leaks++; else tally.errors++
  if (++tally.lines <= MAX_PROBLEM_LINES) console.log(`${kind} c${c}: ${String(text).replace(/\s+/g, ' ')}`)
}

const tenantOf = (c) => 't' + String(c % TENANTS).padStart(3, '0')

function config (tenant) {
  const cfg = {
    host: args.host,
    port: Number(args.port),
    user: args.user,
    password: args.password,
    database: args.dbname,
    connectionTimeoutMillis: 10000
  }
  if (!args['tenant-after-connect']) cfg.options = `-c app.tenant_id=${tenant}`
  return cfg
}

async function connect (tenant, c) {
  const client = new pg.Client(config(tenant))
  // A connection error outside a query is reported by the query that follows; keep it from
  // becoming an unhandled 'error' event that kills the process.
  client.on('error', (e) => problem('ERROR', c, 'connection error: ' + e.message))
  await client.connect()
  if (args['tenant-after-connect']) {
    try {
      tally.statements++
      const set = await client.query("SELECT set_config('app.tenant_id', $1, false)", [tenant])
      const value = set.rows[0].set_config
      if (value !== tenant) problem('ERROR', c, `set_config(app.tenant_id, ${tenant}) returned ${value}`)
    } catch (e) {
      await client.end().catch(() => {})
      throw e
    }
  }
  return client
}

async function q (client, name, text, values) {
  tally.statements++
  return client.query({ name, text, values })
}

async function readChecks (client, c, tenant) {
  const items = await q(client, ITEMS.name, ITEMS.text, [0])
  if (items.rows.length !== ROWS_PER_TENANT) {
    problem('LEAK', c, `tenant ${tenant} saw ${items.rows.length} rows, want 3`)
  } else {
    const bad = items.rows.find((r) => r.tenant_id !== tenant || !r.body.endsWith('of ' + tenant))
    if (bad) problem('LEAK', c, `tenant ${tenant} saw row of ${bad.tenant_id}: ${bad.body}`)
  }
  const setting = await q(client, SETTING.name, SETTING.text, [])
  if (setting.rows[0].v !== tenant) problem('LEAK', c, `tenant ${tenant}: current_setting = ${setting.rows[0].v}`)
}

async function insertRoundtrip (client, c, tenant, k) {
  const rid = 100000 + c * 1000 + k
  const body = 'driver row of ' + tenant
  await client.query('BEGIN')
  try {
    await q(client, 'ins', 'INSERT INTO items (tenant_id, id, body) VALUES ($1, $2, $3)', [tenant, rid, body])
    const got = await q(client, 'back', 'SELECT tenant_id, body FROM items WHERE id = $1', [rid])
    if (got.rows.length !== 1 || got.rows[0].tenant_id !== tenant || got.rows[0].body !== body) {
      problem('LEAK', c, `inserted row ${rid} read back as ${JSON.stringify(got.rows)}`)
    }
    const del = await q(client, 'del', 'DELETE FROM items WHERE id = $1', [rid])
    if (del.rowCount !== 1) problem('ERROR', c, `DELETE of row ${rid} removed ${del.rowCount} rows`)
    await client.query('COMMIT')
  } catch (e) {
    await client.query('ROLLBACK')
    throw e
  }
}

async function errorInTransaction (client, c) {
  await client.query('BEGIN')
  await q(client, 'one', 'SELECT 1 AS v', [])
  try {
    await q(client, 'div', 'SELECT 1/0 AS v', [])
    problem('ERROR', c, 'SELECT 1/0 did not fail')
  } catch (e) {
    if (e.code !== '22012') throw e
  }
  await client.query('ROLLBACK')
  const two = await q(client, 'two', 'SELECT 2 AS v', [])
  if (two.rows[0].v !== 2) problem('ERROR', c, 'SELECT 2 after ROLLBACK gave a wrong value')
}

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms))

// Sends Client#cancel 0.4 s after the sleep started and then every second until it ends; each
// cancel connection is awaited until the server closes it, so none arrives late.
async function cancelSleep (client, tenant, c) {
  const start = Date.now()
  let done = false
  let sent = 0
  const running = q(client, 'sleep', 'SELECT pg_sleep(5)', []).then(() => 'finished', (e) => e)
  running.then(() => { done = true })
  let delay = 400
  while (!done) {
    await Promise.race([sleep(delay), running])
    if (done) break
    await sendCancel(client, tenant)
    sent++
    delay = 1000
  }
  const outcome = await running
  const elapsed = (Date.now() - start) / 1000
  const canceled = outcome instanceof Error && outcome.code === '57014'
  if (outcome instanceof Error && !canceled) throw outcome
  if (!canceled || elapsed > CANCEL_LIMIT_S) {
    problem('ERROR', c, `pg_sleep(5) not canceled (canceled=${canceled}, ${elapsed.toFixed(1)}s, ${sent} cancels sent)`)
  }
  const three = await q(client, 'three', 'SELECT 3 AS v', [])
  if (three.rows[0].v !== 3) problem('ERROR', c, 'SELECT 3 after cancel gave a wrong value')
}

function sendCancel (client, tenant) {
  return new Promise((resolve) => {
    const canceller = new pg.Client(config(tenant))
    const con = canceller.connection
    con.on('error', () => resolve())
    con.on('end', () => resolve())
    if (client.activeQuery) canceller.cancel(client, client.activeQuery); else resolve()
  })
}

async function runClient (c, deadline) {
  const tenant = tenantOf(c)
  const iterations = Number(args.iterations)
  let client = null
  try {
    client = await connect(tenant, c)
    for (let k = 0; k < iterations; k++) {
      if (Date.now() > deadline) {
        problem('ERROR', c, `deadline passed at round ${k}`)
        return
      }
      let step = 'read'
      try {
        await readChecks(client, c, tenant)
        step = 'insert'
        await insertRoundtrip(client, c, tenant, k)
        step = 'error-in-transaction'
        if (k % 10 === c % 10) await errorInTransaction(client, c)
        step = 'cancel'
        if (k === c % iterations) await cancelSleep(client, tenant, c)
      } catch (e) {
        problem('ERROR', c, `round ${k} ${step}: ${e.code || ''} ${e.message}`)
        try { await client.query('ROLLBACK') } catch (e2) {
          await client.end().catch(() => {})
          client = await connect(tenant, c)
        }
      }
    }
  } catch (e) {
    problem('ERROR', c, `${e.code || ''} ${e.message}`)
  } finally {
    if (client) await client.end().catch((e) => problem('ERROR', c, 'end: ' + e.message))
  }
}

function report (clients) {
  console.log(`RESULT clients=${clients} statements=${tally.statements} errors=${tally.errors} leaks=${tally.leaks}`)
  return tally.errors === 0 && tally.leaks === 0 ? 0 : 1
}

async function main () {
  const clients = Number(args.clients)
  const deadline = Date.now() + Number(args.deadline) * 1000
  let running = clients
  const all = []
  for (let c = 0; c < clients; c++) all.push(runClient(c, deadline).finally(() => running--))
  // A statement the target never answers must not hang the run.
  const hardStop = setTimeout(() => {
    problem('ERROR', '*', `${running} clients still inside a statement ${GRACE_S} s after the deadline`)
    process.exit(report(clients))
  }, deadline + GRACE_S * 1000 - Date.now())
  await Promise.all(all)
  clearTimeout(hardStop)
  process.exitCode = report(clients)
}

main()
