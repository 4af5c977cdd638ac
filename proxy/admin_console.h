// The admin console (docs/reference.md section 5), PgBouncer-style: parsing of the admin commands
// and rendering of their result sets. Pure: no sockets, no loop, no live objects. The session that
// serves the virtual admin database fills the row structs from the pools and sessions, calls a
// Render*() function and sends the bytes followed by its own ReadyForQuery.
//
// Column names follow PgBouncer's SHOW output where the meaning is the same; pgtenant's own
// columns (tenant, pool, pinned, ...) are added where PgBouncer has none. Every column is sent as
// text (oid 25), as PgBouncer does for most; SQL NULL where a value is unknown.
//
// Thread-safety: functions only read their arguments; safe from any thread.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "conf/config.h"

namespace pgtenant::proxy {

// ---- Commands ------------------------------------------------------------------------------

enum class AdminCommandKind {
  kEmpty,  // only whitespace and ';': answer EmptyQueryResponse
  kShowPools,
  kShowClients,
  kShowServers,
  kShowTenants,
  kShowUsage,
  kShowStats,
  kShowConfig,
  kShowVersion,
  kShowHelp,
  kReload,
  kPause,     // argument: pool, empty = every pool
  kResume,    // argument: pool, empty = every pool
  kKill,      // argument: pool (required)
  kShutdown,
  kUnknown,   // error says why
};

struct AdminCommand {
  AdminCommandKind kind = AdminCommandKind::kUnknown;
  // The pool named by PAUSE/RESUME/KILL: an identifier as written, or a "double-quoted" one with
  // "" for a quote. Not case-folded: pool names are YAML keys, which are case-sensitive.
  std::string argument;
  // For kUnknown: a message for a 42601 ErrorResponse naming what was not understood.
  std::string error;
};

// Keywords are case-insensitive; leading/trailing whitespace and trailing ';' are ignored.
// Anything else (extra words, a second statement, a missing KILL argument) is kUnknown.
AdminCommand ParseAdminCommand(std::string_view sql);

// The CommandComplete tag PgBouncer sends for a command that acts (RELOAD, PAUSE, RESUME, KILL,
// SHUTDOWN); "SHOW" for the SHOW commands; empty for kEmpty and kUnknown.
std::string_view AdminCommandTag(AdminCommandKind kind);

// ---- Rows ----------------------------------------------------------------------------------
// Times are Unix seconds (0 = unknown, rendered as NULL) and rendered as "YYYY-MM-DD HH:MM:SS UTC".
// Durations are whole microseconds and rendered as PgBouncer does: seconds and remaining us.

struct AdminPoolRow {
  std::string database;  // the pool's name (PgBouncer's pools are per database)
  std::string user;      // the server-side user of the pool
  int64_t cl_active = 0;   // clients linked to a server
  int64_t cl_waiting = 0;  // clients queued for a server
  int64_t cl_idle = 0;     // logged-in clients without a server (pgtenant's; PgBouncer folds these
                           // into cl_active)
  int64_t sv_active = 0;
  int64_t sv_idle = 0;
  int64_t sv_used = 0;   // released, being reset before reuse
  int64_t sv_login = 0;  // connecting or authenticating
  int64_t max_wait_us = 0;  // the oldest waiting client's wait; rendered as maxwait + maxwait_us
  conf::PoolMode pool_mode = conf::PoolMode::kTransaction;
  bool paused = false;
};

struct AdminClientRow {
  std::string user;
  std::string database;  // as the client asked for it
  std::string tenant;    // empty = none yet (NULL)
  std::string pool;      // the pool its tenant maps to; empty = none (NULL)
  std::string state;     // active | waiting | idle | login
  std::string addr;
  int port = 0;
  int64_t connect_time = 0;
  int64_t request_time = 0;  // last time it sent a request
  int64_t wait_us = 0;       // how long it has been waiting (when waiting), as wait + wait_us
  std::string tls;           // protocol/cipher, empty = plain
  std::string application_name;
  bool pinned = false;       // held its server connection by session state
};

struct AdminServerRow {
  std::string user;
  std::string database;  // the backend database
  std::string pool;
  std::string state;  // active | idle | used | login
  std::string addr;
  int port = 0;
  int64_t connect_time = 0;
  int64_t request_time = 0;  // last time it was handed to a client
  int32_t remote_pid = 0;    // the backend's pid (BackendKeyData); 0 = not known yet (NULL)
  std::string tenant;        // the tenant set on the connection now; empty = none (NULL)
  std::string tls;
};

struct AdminTenantRow {
  std::string tenant;
  std::string pool;
  int64_t clients = 0;
  int64_t cl_waiting = 0;  // its clients waiting for a server of the pool now
  int64_t sv_active = 0;   // the pool's server connections its clients hold now
  int64_t sv_limit = 0;    // its cap on them (0: none; docs/architecture.md, "Fair waiting")
  uint64_t transactions = 0;
  uint64_t queries = 0;
  double server_seconds = 0;  // server connection time used; rendered with 3 decimals
  uint64_t bytes_in = 0;      // client -> pgtenant
  uint64_t bytes_out = 0;     // pgtenant -> client
  uint64_t errors = 0;
};

// Billed usage of one (tenant, meter) over the windows the ledger keeps (docs/billing.md), in the
// unit Stripe is sent (server time in ms): everything counted, what Stripe acknowledged, what is
// closed and waiting to be sent, what was refused or expired (dead-lettered), what has no
// customer or event name, and the open window's count so far.
struct AdminUsageRow {
  std::string tenant;
  std::string meter;
  std::string event_name;  // empty: the meter is not billed (NULL)
  std::string customer;    // empty: the tenant has no Stripe customer (NULL)
  uint64_t counted = 0;
  uint64_t sent = 0;
  uint64_t pending = 0;
  uint64_t failed = 0;
  uint64_t unbilled = 0;
  uint64_t open = 0;
};

// Counters of one pool, as PgBouncer keeps them. Used twice in a stats row: once as totals since
// start and once as the averages of the last period (StatsAverages()).
struct AdminStats {
  uint64_t server_assignment_count = 0;  // times a client was given a server connection
  uint64_t xact_count = 0;
  uint64_t query_count = 0;
  uint64_t received = 0;  // bytes from clients
  uint64_t sent = 0;      // bytes to clients
  uint64_t xact_time_us = 0;
  uint64_t query_time_us = 0;
  uint64_t wait_time_us = 0;
};

struct AdminStatsRow {
  std::string database;  // the pool's name
  AdminStats total;
  AdminStats avg;
};

// PgBouncer's averages between two snapshots taken `seconds` apart: counts and bytes per second,
// xact/query time per transaction/query, wait time per server assignment. A counter that went
// backwards (pool recreated) or seconds <= 0 gives 0.
AdminStats StatsAverages(const AdminStats& before, const AdminStats& after, double seconds);

// ---- Rendering -----------------------------------------------------------------------------
// Each appends RowDescription, one DataRow per row (in the order given) and CommandComplete
// "SHOW". The caller appends ReadyForQuery.

void RenderPools(std::string* out, const std::vector<AdminPoolRow>& rows);
void RenderClients(std::string* out, const std::vector<AdminClientRow>& rows);
void RenderServers(std::string* out, const std::vector<AdminServerRow>& rows);
void RenderTenants(std::string* out, const std::vector<AdminTenantRow>& rows);
void RenderUsage(std::string* out, const std::vector<AdminUsageRow>& rows);
void RenderStats(std::string* out, const std::vector<AdminStatsRow>& rows);
// key, value, default, changeable: one row per setting as a flattened YAML path
// (pools.shared.size). Secrets are never rendered: a password shows as "********" with its kind,
// password_env shows the variable's name. changeable is "no" for what needs a restart.
void RenderConfig(std::string* out, const conf::Config& config);
void RenderVersion(std::string* out, std::string_view version);  // "pgtenant <version>"
void RenderHelp(std::string* out);  // command, description

// Any result set: text columns, rows of nullable values, then CommandComplete(tag).
void AppendResultSet(std::string* out, const std::vector<std::string>& columns,
                     const std::vector<std::vector<std::optional<std::string>>>& rows,
                     std::string_view tag);

}  // namespace pgtenant::proxy
