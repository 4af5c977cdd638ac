#include "proxy/admin_console.h"

#include <cctype>
#include <cstdio>
#include <ctime>

#include "protocol/messages.h"

namespace pgtenant::proxy {

namespace {

// ---- Parsing -------------------------------------------------------------------------------

struct Token {
  std::string text;
  bool quoted = false;
};

bool IsSpace(char c) { return std::isspace(static_cast<unsigned char>(c)) != 0; }

bool EqualsNoCase(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  for (size_t i = 0; i < a.size(); ++i) {
    if (std::tolower(static_cast<unsigned char>(a[i])) != std::tolower(static_cast<unsigned char>(b[i]))) {
      return false;
    }
  }
  return true;
}

// What the user typed, made safe to echo in an error: short, printable.
std::string Echo(std::string_view text) {
  constexpr size_t kMaxShown = 64;
  std::string out;
  for (char c : text.substr(0, kMaxShown)) out += std::isprint(static_cast<unsigned char>(c)) ? c : '?';
  if (text.size() > kMaxShown) out += "...";
  return out;
}

// Splits on whitespace; ';' is a token of its own; "quoted identifiers" keep their case and
// spaces, with "" standing for a quote. Returns false on an unterminated quote.
bool Tokenize(std::string_view sql, std::vector<Token>* tokens) {
  size_t i = 0;
  while (i < sql.size()) {
    char c = sql[i];
    if (IsSpace(c)) {
      ++i;
    } else if (c == ';') {
      tokens->push_back({";", false});
      ++i;
    } else if (c == '"') {
      Token t{"", true};
      for (++i;; ++i) {
        if (i >= sql.size()) return false;
        if (sql[i] != '"') {
          t.text += sql[i];
        } else if (i + 1 < sql.size() && sql[i + 1] == '"') {
          t.text += '"';
          ++i;
        } else {
          break;
        }
      }
      ++i;
      tokens->push_back(std::move(t));
    } else {
      size_t start = i;
      while (i < sql.size() && !IsSpace(sql[i]) && sql[i] != ';' && sql[i] != '"') ++i;
      tokens->push_back({std::string(sql.substr(start, i - start)), false});
    }
  }
  return true;
}

struct Keyword {
  std::string_view word;
  AdminCommandKind kind;
};

constexpr Keyword kShowKeywords[] = {
    {"POOLS", AdminCommandKind::kShowPools},     {"CLIENTS", AdminCommandKind::kShowClients},
    {"SERVERS", AdminCommandKind::kShowServers}, {"TENANTS", AdminCommandKind::kShowTenants},
    {"USAGE", AdminCommandKind::kShowUsage},
    {"STATS", AdminCommandKind::kShowStats},     {"CONFIG", AdminCommandKind::kShowConfig},
    {"VERSION", AdminCommandKind::kShowVersion}, {"HELP", AdminCommandKind::kShowHelp},
};

AdminCommand Error(std::string message) {
  return {AdminCommandKind::kUnknown, "", message + "; SHOW HELP lists the commands"};
}

AdminCommand ParseShow(const std::vector<Token>& t) {
  if (t.size() < 2) return Error("SHOW needs a subject, e.g. SHOW POOLS");
  for (const Keyword& k : kShowKeywords) {
    if (!t[1].quoted && EqualsNoCase(t[1].text, k.word)) {
      if (t.size() > 2) return Error("SHOW " + std::string(k.word) + " takes no argument");
      return {k.kind, "", ""};
    }
  }
  return Error("unknown SHOW subject \"" + Echo(t[1].text) + "\"");
}

AdminCommand ParsePoolCommand(const std::vector<Token>& t, AdminCommandKind kind, bool required) {
  std::string name = Echo(t[0].text);
  for (char& c : name) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
  if (t.size() > 2) return Error(name + " takes at most one pool name");
  if (t.size() < 2) {
    if (required) return Error(name + " needs a pool name: " + name + " pool");
    return {kind, "", ""};
  }
  if (t[1].text.empty()) return Error(name + ": empty pool name");
  return {kind, t[1].text, ""};
}

}  // namespace

AdminCommand ParseAdminCommand(std::string_view sql) {
  std::vector<Token> tokens;
  if (!Tokenize(sql, &tokens)) return Error("unterminated quoted identifier");
  // Trailing semicolons end the statement; one anywhere else would start a second one.
  while (!tokens.empty() && !tokens.back().quoted && tokens.back().text == ";") tokens.pop_back();
  if (tokens.empty()) return {AdminCommandKind::kEmpty, "", ""};
  for (const Token& t : tokens) {
    if (!t.quoted && t.text == ";") return Error("one command at a time");
  }
  const Token& verb = tokens[0];
  if (verb.quoted) return Error("unknown admin command \"" + Echo(verb.text) + "\"");
  if (EqualsNoCase(verb.text, "SHOW")) return ParseShow(tokens);
  if (EqualsNoCase(verb.text, "PAUSE")) return ParsePoolCommand(tokens, AdminCommandKind::kPause, false);
  if (EqualsNoCase(verb.text, "RESUME")) return ParsePoolCommand(tokens, AdminCommandKind::kResume, false);
  if (EqualsNoCase(verb.text, "KILL")) return ParsePoolCommand(tokens, AdminCommandKind::kKill, true);
  for (auto [word, kind] : {Keyword{"RELOAD", AdminCommandKind::kReload},
                            Keyword{"SHUTDOWN", AdminCommandKind::kShutdown}}) {
    if (EqualsNoCase(verb.text, word)) {
      if (tokens.size() > 1) return Error(std::string(word) + " takes no argument");
      return {kind, "", ""};
    }
  }
  return Error("unknown admin command \"" + Echo(verb.text) + "\"");
}

std::string_view AdminCommandTag(AdminCommandKind kind) {
  switch (kind) {
    case AdminCommandKind::kReload: return "RELOAD";
    case AdminCommandKind::kPause: return "PAUSE";
    case AdminCommandKind::kResume: return "RESUME";
    case AdminCommandKind::kKill: return "KILL";
    case AdminCommandKind::kShutdown: return "SHUTDOWN";
    case AdminCommandKind::kEmpty:
    case AdminCommandKind::kUnknown: return "";
    default: return "SHOW";
  }
}

// ---- Rendering -----------------------------------------------------------------------------

namespace {

using Cell = std::optional<std::string>;

Cell Num(int64_t v) { return std::to_string(v); }
Cell Num(uint64_t v) { return std::to_string(v); }
Cell Num(int v) { return std::to_string(v); }
Cell TextOrNull(const std::string& s) { return s.empty() ? Cell() : Cell(s); }
Cell Flag(bool b) { return b ? "1" : "0"; }

Cell Time(int64_t unix_seconds) {
  if (unix_seconds <= 0) return std::nullopt;
  time_t t = static_cast<time_t>(unix_seconds);
  struct tm tm {};
  if (gmtime_r(&t, &tm) == nullptr) return std::nullopt;
  char buf[32];
  strftime(buf, sizeof buf, "%Y-%m-%d %H:%M:%S UTC", &tm);
  return std::string(buf);
}

const char* PoolModeName(conf::PoolMode m) {
  return m == conf::PoolMode::kSession ? "session" : "transaction";
}

// One column of a SHOW table: its name and how to get its cell from a row. Captureless lambdas,
// so each table is a constant array (docs/development.md, *Message tables*).
template <typename Row>
struct Column {
  const char* name;
  Cell (*value)(const Row&);
};

template <typename Row, size_t N>
void RenderTable(std::string* out, const Column<Row> (&columns)[N], const std::vector<Row>& rows) {
  std::vector<std::string> names;
  for (const Column<Row>& c : columns) names.emplace_back(c.name);
  protocol::AppendRowDescription(out, names);
  std::vector<Cell> cells(N);
  for (const Row& row : rows) {
    for (size_t i = 0; i < N; ++i) cells[i] = columns[i].value(row);
    protocol::AppendDataRow(out, cells);
  }
  protocol::AppendCommandComplete(out, "SHOW");
}

constexpr Column<AdminPoolRow> kPoolColumns[] = {
    {"database", [](const AdminPoolRow& r) { return Cell(r.database); }},
    {"user", [](const AdminPoolRow& r) { return Cell(r.user); }},
    {"cl_active", [](const AdminPoolRow& r) { return Num(r.cl_active); }},
    {"cl_waiting", [](const AdminPoolRow& r) { return Num(r.cl_waiting); }},
    {"cl_idle", [](const AdminPoolRow& r) { return Num(r.cl_idle); }},
    {"sv_active", [](const AdminPoolRow& r) { return Num(r.sv_active); }},
    {"sv_idle", [](const AdminPoolRow& r) { return Num(r.sv_idle); }},
    {"sv_used", [](const AdminPoolRow& r) { return Num(r.sv_used); }},
    {"sv_login", [](const AdminPoolRow& r) { return Num(r.sv_login); }},
    {"maxwait", [](const AdminPoolRow& r) { return Num(r.max_wait_us / 1000000); }},
    {"maxwait_us", [](const AdminPoolRow& r) { return Num(r.max_wait_us % 1000000); }},
    {"pool_mode", [](const AdminPoolRow& r) { return Cell(PoolModeName(r.pool_mode)); }},
    {"paused", [](const AdminPoolRow& r) { return Flag(r.paused); }},
};

constexpr Column<AdminClientRow> kClientColumns[] = {
    {"type", [](const AdminClientRow&) { return Cell("C"); }},
    {"user", [](const AdminClientRow& r) { return Cell(r.user); }},
    {"database", [](const AdminClientRow& r) { return Cell(r.database); }},
    {"tenant", [](const AdminClientRow& r) { return TextOrNull(r.tenant); }},
    {"pool", [](const AdminClientRow& r) { return TextOrNull(r.pool); }},
    {"state", [](const AdminClientRow& r) { return Cell(r.state); }},
    {"addr", [](const AdminClientRow& r) { return Cell(r.addr); }},
    {"port", [](const AdminClientRow& r) { return Num(r.port); }},
    {"connect_time", [](const AdminClientRow& r) { return Time(r.connect_time); }},
    {"request_time", [](const AdminClientRow& r) { return Time(r.request_time); }},
    {"wait", [](const AdminClientRow& r) { return Num(r.wait_us / 1000000); }},
    {"wait_us", [](const AdminClientRow& r) { return Num(r.wait_us % 1000000); }},
    {"tls", [](const AdminClientRow& r) { return Cell(r.tls); }},
    {"application_name", [](const AdminClientRow& r) { return Cell(r.application_name); }},
    {"pinned", [](const AdminClientRow& r) { return Flag(r.pinned); }},
};

constexpr Column<AdminServerRow> kServerColumns[] = {
    {"type", [](const AdminServerRow&) { return Cell("S"); }},
    {"user", [](const AdminServerRow& r) { return Cell(r.user); }},
    {"database", [](const AdminServerRow& r) { return Cell(r.database); }},
    {"pool", [](const AdminServerRow& r) { return Cell(r.pool); }},
    {"state", [](const AdminServerRow& r) { return Cell(r.state); }},
    {"addr", [](const AdminServerRow& r) { return Cell(r.addr); }},
    {"port", [](const AdminServerRow& r) { return Num(r.port); }},
    {"connect_time", [](const AdminServerRow& r) { return Time(r.connect_time); }},
    {"request_time", [](const AdminServerRow& r) { return Time(r.request_time); }},
    {"remote_pid", [](const AdminServerRow& r) { return r.remote_pid == 0 ? Cell() : Num(r.remote_pid); }},
    {"tenant", [](const AdminServerRow& r) { return TextOrNull(r.tenant); }},
    {"tls", [](const AdminServerRow& r) { return Cell(r.tls); }},
};

constexpr Column<AdminTenantRow> kTenantColumns[] = {
    {"tenant", [](const AdminTenantRow& r) { return Cell(r.tenant); }},
    {"pool", [](const AdminTenantRow& r) { return Cell(r.pool); }},
    {"clients", [](const AdminTenantRow& r) { return Num(r.clients); }},
    {"cl_waiting", [](const AdminTenantRow& r) { return Num(r.cl_waiting); }},
    {"sv_active", [](const AdminTenantRow& r) { return Num(r.sv_active); }},
    {"sv_limit", [](const AdminTenantRow& r) { return Num(r.sv_limit); }},
    {"transactions", [](const AdminTenantRow& r) { return Num(r.transactions); }},
    {"queries", [](const AdminTenantRow& r) { return Num(r.queries); }},
    {"server_seconds", [](const AdminTenantRow& r) {
       char buf[64];
       std::snprintf(buf, sizeof buf, "%.3f", r.server_seconds);
       return Cell(buf);
     }},
    {"bytes_in", [](const AdminTenantRow& r) { return Num(r.bytes_in); }},
    {"bytes_out", [](const AdminTenantRow& r) { return Num(r.bytes_out); }},
    {"errors", [](const AdminTenantRow& r) { return Num(r.errors); }},
};

constexpr Column<AdminUsageRow> kUsageColumns[] = {
    {"tenant", [](const AdminUsageRow& r) { return Cell(r.tenant); }},
    {"meter", [](const AdminUsageRow& r) { return Cell(r.meter); }},
    {"event_name", [](const AdminUsageRow& r) { return TextOrNull(r.event_name); }},
    {"customer", [](const AdminUsageRow& r) { return TextOrNull(r.customer); }},
    {"counted", [](const AdminUsageRow& r) { return Num(r.counted); }},
    {"sent", [](const AdminUsageRow& r) { return Num(r.sent); }},
    {"pending", [](const AdminUsageRow& r) { return Num(r.pending); }},
    {"failed", [](const AdminUsageRow& r) { return Num(r.failed); }},
    {"unbilled", [](const AdminUsageRow& r) { return Num(r.unbilled); }},
    {"open", [](const AdminUsageRow& r) { return Num(r.open); }},
};

// SHOW STATS repeats the same eight counters as total_* and avg_*; PgBouncer names two of the
// averages differently (avg_recv, not avg_received).
struct StatsField {
  const char* total;
  const char* avg;
  uint64_t AdminStats::*member;
};
constexpr StatsField kStatsFields[] = {
    {"total_server_assignment_count", "avg_server_assignment_count", &AdminStats::server_assignment_count},
    {"total_xact_count", "avg_xact_count", &AdminStats::xact_count},
    {"total_query_count", "avg_query_count", &AdminStats::query_count},
    {"total_received", "avg_recv", &AdminStats::received},
    {"total_sent", "avg_sent", &AdminStats::sent},
    {"total_xact_time", "avg_xact_time", &AdminStats::xact_time_us},
    {"total_query_time", "avg_query_time", &AdminStats::query_time_us},
    {"total_wait_time", "avg_wait_time", &AdminStats::wait_time_us},
};

}  // namespace

void AppendResultSet(std::string* out, const std::vector<std::string>& columns,
                     const std::vector<std::vector<std::optional<std::string>>>& rows,
                     std::string_view tag) {
  protocol::AppendRowDescription(out, columns);
  for (const auto& row : rows) protocol::AppendDataRow(out, row);
  protocol::AppendCommandComplete(out, tag);
}

void RenderPools(std::string* out, const std::vector<AdminPoolRow>& rows) {
  RenderTable(out, kPoolColumns, rows);
}
void RenderClients(std::string* out, const std::vector<AdminClientRow>& rows) {
  RenderTable(out, kClientColumns, rows);
}
void RenderServers(std::string* out, const std::vector<AdminServerRow>& rows) {
  RenderTable(out, kServerColumns, rows);
}
void RenderTenants(std::string* out, const std::vector<AdminTenantRow>& rows) {
  RenderTable(out, kTenantColumns, rows);
}
void RenderUsage(std::string* out, const std::vector<AdminUsageRow>& rows) {
  RenderTable(out, kUsageColumns, rows);
}

void RenderStats(std::string* out, const std::vector<AdminStatsRow>& rows) {
  std::vector<std::string> columns = {"database"};
  for (const StatsField& f : kStatsFields) columns.emplace_back(f.total);
  for (const StatsField& f : kStatsFields) columns.emplace_back(f.avg);
  std::vector<std::vector<Cell>> cells;
  for (const AdminStatsRow& row : rows) {
    std::vector<Cell> c = {row.database};
    for (const StatsField& f : kStatsFields) c.push_back(Num(row.total.*f.member));
    for (const StatsField& f : kStatsFields) c.push_back(Num(row.avg.*f.member));
    cells.push_back(std::move(c));
  }
  AppendResultSet(out, columns, cells, "SHOW");
}

AdminStats StatsAverages(const AdminStats& before, const AdminStats& after, double seconds) {
  auto delta = [&](uint64_t AdminStats::*m) {
    return after.*m >= before.*m ? after.*m - before.*m : 0;
  };
  auto per = [](uint64_t amount, double over) -> uint64_t {
    return over > 0 ? static_cast<uint64_t>(static_cast<double>(amount) / over) : 0;
  };
  if (seconds <= 0) return {};
  AdminStats avg;
  // Counts and bytes: per second.
  for (auto m : {&AdminStats::server_assignment_count, &AdminStats::xact_count,
                 &AdminStats::query_count, &AdminStats::received, &AdminStats::sent}) {
    avg.*m = per(delta(m), seconds);
  }
  // Times: per event of their kind.
  auto per_event = [&](uint64_t AdminStats::*time, uint64_t AdminStats::*events) {
    return per(delta(time), static_cast<double>(delta(events)));
  };
  avg.xact_time_us = per_event(&AdminStats::xact_time_us, &AdminStats::xact_count);
  avg.query_time_us = per_event(&AdminStats::query_time_us, &AdminStats::query_count);
  avg.wait_time_us = per_event(&AdminStats::wait_time_us, &AdminStats::server_assignment_count);
  return avg;
}

void RenderVersion(std::string* out, std::string_view version) {
  AppendResultSet(out, {"version"}, {{"pgtenant " + std::string(version)}}, "SHOW");
}

void RenderHelp(std::string* out) {
  static const std::pair<const char*, const char*> kHelp[] = {
      {"SHOW POOLS", "client and server connections per pool"},
      {"SHOW CLIENTS", "every client connection"},
      {"SHOW SERVERS", "every server connection"},
      {"SHOW TENANTS", "traffic per tenant"},
      {"SHOW USAGE", "billed usage per tenant and meter (billing:)"},
      {"SHOW STATS", "totals and averages per pool"},
      {"SHOW CONFIG", "the running configuration (secrets masked)"},
      {"SHOW VERSION", "the pgtenant version"},
      {"RELOAD", "reload the configuration file"},
      {"PAUSE [pool]", "hand out no server connections (all pools without a name)"},
      {"RESUME [pool]", "undo PAUSE"},
      {"KILL pool", "close the pool's server connections and disconnect its clients"},
      {"SHUTDOWN", "shut down gracefully"},
  };
  std::vector<std::vector<Cell>> rows;
  for (const auto& [command, description] : kHelp) rows.push_back({command, description});
  AppendResultSet(out, {"command", "description"}, rows, "SHOW");
}

}  // namespace pgtenant::proxy
