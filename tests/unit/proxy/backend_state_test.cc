// BackendState (proxy/backend_state.h) without a socket or a server: its preludes run on a
// small model of a PostgreSQL backend session (FakeBackend: prepared statements, settings, the
// tenant variable, implicit and explicit transactions), and the server's answers are fed back
// as ServerSession feeds them. The property under test is the one of docs/architecture.md
// ("What a server connection holds"): whatever clients did to the session before, the next
// prelude runs on the server without an error and leaves it holding exactly what the next
// client wants.
#include "proxy/backend_state.h"

#include <gtest/gtest.h>

#include <map>
#include <optional>
#include <random>
#include <set>
#include <string>
#include <vector>

#include "protocol/frame_decoder.h"
#include "protocol/messages.h"

namespace pgtenant::proxy {
namespace {

constexpr const char* kVariable = "app.tenant_id";

std::span<const uint8_t> Bytes(std::string_view s) {
  return std::span<const uint8_t>(reinterpret_cast<const uint8_t*>(s.data()), s.size());
}

// The payload of a CommandComplete with `tag`, or of a ReadyForQuery with `status`.
std::string Tag(std::string_view tag) { return std::string(tag) + '\0'; }
std::string Status(char status) { return std::string(1, status); }

// One frontend message of a prelude, decoded.
struct Message {
  char type = 0;
  std::string name;  // Parse, Bind (statement), Close
  std::string text;  // Query text, Parse query
  std::optional<std::string> param;  // Bind's first parameter
};

std::vector<Message> Decode(const std::string& bytes) {
  std::vector<Message> out;
  std::span<const uint8_t> rest = Bytes(bytes);
  while (!rest.empty()) {
    protocol::Frame f;
    EXPECT_EQ(protocol::DecodeTyped(rest, 1 << 20, &f), protocol::DecodeStatus::kFrame);
    if (f.total_size == 0) break;
    Message m;
    m.type = f.type;
    if (f.type == 'Q') {
      m.text.assign(reinterpret_cast<const char*>(f.payload.data()), f.payload.size() - 1);
    } else if (f.type == 'P') {
      protocol::ParseMessage p;
      EXPECT_TRUE(protocol::ParseParseMessage(f.payload, &p));
      m.name = p.statement;
      m.text = p.query;
    } else if (f.type == 'B') {
      protocol::BindMessage b;
      EXPECT_TRUE(protocol::ParseBindMessage(f.payload, &b));
      m.name = b.statement;
      if (!b.params.empty() && b.params[0]) m.param = std::string(*b.params[0]);
    } else if (f.type == 'C') {
      protocol::TargetMessage t;
      EXPECT_TRUE(protocol::ParseTargetMessage(f.payload, &t));
      EXPECT_EQ(t.kind, 'S');
      m.name = t.name;
    }
    out.push_back(std::move(m));
    rest = rest.subspan(f.total_size);
  }
  return out;
}

// The types of the messages, e.g. "QCPBE".
std::string Types(const std::vector<Message>& messages) {
  std::string out;
  for (const Message& m : messages) out += m.type;
  return out;
}

// The quoted literals of `sql`, in order ('a''b' -> a'b).
std::vector<std::string> Literals(std::string_view sql) {
  std::vector<std::string> out;
  for (size_t i = 0; i < sql.size(); ++i) {
    if (sql[i] != '\'') continue;
    std::string lit;
    for (++i; i < sql.size(); ++i) {
      if (sql[i] == '\'' && i + 1 < sql.size() && sql[i + 1] == '\'') {
        lit += '\'';
        ++i;
      } else if (sql[i] == '\'') {
        break;
      } else {
        lit += sql[i];
      }
    }
    out.push_back(lit);
  }
  return out;
}

// What a PostgreSQL backend session holds, for the statements pgtenant's preludes use and the
// things clients do to a session. Settings are transactional, prepared statements are not.
class FakeBackend {
 public:
  std::set<std::string> prepared;
  std::map<std::string, std::string> settings;  // name -> value, set at session level
  std::optional<std::string> tenant;

  // Runs a prelude; returns the SQLSTATE of the first error ("" for none). The tenant set by
  // Bind/Execute stays in an implicit transaction the client's statement ends (EndClientTxn).
  std::string RunPrelude(const std::string& bytes) {
    for (const Message& m : Decode(bytes)) {
      switch (m.type) {
        case 'Q':
          RunQuery(m.text);
          break;
        case 'C':
          prepared.erase(m.name);
          break;
        case 'P':
          if (prepared.count(m.name)) return "42P05";
          prepared.insert(m.name);
          statement_text_[m.name] = m.text;
          break;
        case 'B':
          if (!prepared.count(m.name)) return "26000";
          bound_ = m;
          break;
        case 'E': {
          open_txn_before_ = tenant;
          in_implicit_txn_ = true;
          const std::string& text = statement_text_[bound_.name];
          if (text.find("set_config") != std::string::npos) {
            tenant = bound_.param;
          } else {
            tenant.reset();  // RESET of the variable
          }
          break;
        }
        default:
          ADD_FAILURE() << "unexpected message " << m.type;
      }
    }
    return "";
  }

  // The client's first statement ends the implicit transaction pgtenant's Bind/Execute opened:
  // committed, or (an error) rolled back with the tenant set in it.
  void EndClientTxn(bool committed) {
    if (in_implicit_txn_ && !committed) tenant = open_txn_before_;
    in_implicit_txn_ = false;
  }

  // The client's ROLLBACK of the block a prelude's BEGIN opened: what was set in it goes.
  void RollBackBlock() {
    ASSERT_TRUE(block_before_) << "no block open";
    tenant = block_before_->tenant;
    settings = block_before_->settings;
    block_before_.reset();
    in_implicit_txn_ = false;
  }
  void CommitBlock() {
    ASSERT_TRUE(block_before_) << "no block open";
    block_before_.reset();
    in_implicit_txn_ = false;
  }

 private:
  void RunQuery(std::string_view sql) {
    size_t start = 0;
    while (start < sql.size()) {
      size_t semi = sql.find(';', start);
      std::string_view stmt = sql.substr(start, semi == std::string_view::npos ? std::string_view::npos : semi - start);
      start = semi == std::string_view::npos ? sql.size() : semi + 1;
      if (stmt.empty()) continue;
      std::vector<std::string> lits = Literals(stmt);
      if (stmt == "BEGIN") {
        block_before_ = Snapshot{tenant, settings};
      } else if (stmt == "RESET ALL") {
        settings.clear();
        tenant.reset();
      } else if (stmt.rfind("SELECT pg_catalog.set_config(", 0) == 0) {
        ASSERT_EQ(lits.size(), 2u) << stmt;
        if (lits[0] == kVariable) {
          tenant = lits[1];
        } else {
          settings[lits[0]] = lits[1];
        }
      } else if (stmt.rfind("RESET \"", 0) == 0) {
        settings.erase(std::string(stmt.substr(7, stmt.size() - 8)));
      } else if (stmt.rfind("SET app.tenant_id = ", 0) == 0) {
        ASSERT_EQ(lits.size(), 1u) << stmt;
        tenant = lits[0];
      } else if (stmt == "RESET app.tenant_id") {
        tenant.reset();
      } else {
        ADD_FAILURE() << "unexpected prelude statement: " << stmt;
      }
    }
  }

  struct Snapshot {
    std::optional<std::string> tenant;
    std::map<std::string, std::string> settings;
  };
  std::optional<Snapshot> block_before_;  // an explicit block is open; what it started from
  std::map<std::string, std::string> statement_text_;
  Message bound_;
  bool in_implicit_txn_ = false;
  std::optional<std::string> open_txn_before_;
};

SessionSettings Want(std::optional<std::string> tenant,
                     std::initializer_list<std::pair<const char*, const char*>> settings = {}) {
  SessionSettings s;
  s.tenant = std::move(tenant);
  for (const auto& [name, value] : settings) s.Set(name, value);
  return s;
}

std::map<std::string, std::string> AsMap(const SessionSettings& s) {
  return std::map<std::string, std::string>(s.settings().begin(), s.settings().end());
}

// One server connection: the model under test, the fake session, and the answers between.
class Connection {
 public:
  BackendState state;
  FakeBackend server;

  // Gives the connection to client `id` (naming count `namings`) wanting `want`: writes the
  // prelude, runs it, feeds the answers to pgtenant's own messages. Returns the messages.
  // `block_start`: the client's deferred BEGIN, sent behind the settings.
  std::vector<Message> Assign(uint64_t id, uint32_t namings, const SessionSettings& want,
                              bool tenant_as_query = false, std::string_view block_start = {}) {
    std::string bytes, types;
    state.WritePrelude(want, id, namings, tenant_as_query, kVariable, &bytes, &types, block_start);
    std::vector<Message> messages = Decode(bytes);
    EXPECT_EQ(Types(messages), types) << "the tracker must be told every message, in order";
    std::string error = server.RunPrelude(bytes);
    EXPECT_EQ(error, "") << "pgtenant's own statements failed: " << Types(messages);
    bool in_block = false;
    for (const Message& m : messages) {
      if (m.type == 'Q') {
        in_block = in_block || m.text == block_start;
        Own('C', Tag(m.text == block_start ? "BEGIN" : "SET"));
        Own('Z', Status(in_block ? 'T' : 'I'));
      }
    }
    return messages;
  }

  // An answer to one of pgtenant's own messages.
  void Own(char type, const std::string& payload) {
    state.OnServerMessage(type, Bytes(payload), /*client_answer=*/false, false);
  }
  // An answer to one of the client's messages.
  BackendState::Event Client(char type, const std::string& payload, bool parses_in_flight = false) {
    return state.OnServerMessage(type, Bytes(payload), /*client_answer=*/true, parses_in_flight);
  }
  // The client's statement ran and completed with `tag`; its implicit transaction committed.
  BackendState::Event ClientRan(std::string_view tag) {
    server.EndClientTxn(true);
    BackendState::Event e = Client('C', Tag(tag));
    Client('Z', Status('I'));
    return e;
  }
  // The client's statement failed with an error, outside a block.
  void ClientFailed() {
    server.EndClientTxn(false);
    Client('E', "");
    Client('Z', Status('I'));
  }

  // The server holds exactly what `want` asks for.
  void ExpectHolds(const SessionSettings& want, const std::string& after) {
    EXPECT_EQ(server.tenant, want.tenant) << "the tenant variable, after " << after;
    EXPECT_EQ(server.settings, AsMap(want)) << "the settings, after " << after;
  }
};

const std::string& SetName() { return BackendState::OwnStatementName(BackendState::kSetTenant); }
const std::string& ResetName() { return BackendState::OwnStatementName(BackendState::kResetTenant); }

// ---- pgtenant's own statement names

TEST(BackendStateTest, OwnStatementNamesCannotBeGuessed) {
  EXPECT_NE(SetName(), "pgtenant_set_tenant");
  EXPECT_NE(SetName(), ResetName());
  ASSERT_EQ(SetName().size(), std::string("pgtenant_").size() + 16 + std::string("_set").size());
  EXPECT_EQ(SetName().rfind("pgtenant_", 0), 0u);
  EXPECT_EQ(SetName().substr(SetName().size() - 4), "_set");
  EXPECT_EQ(ResetName().substr(0, 25), SetName().substr(0, 25)) << "one random part per process";
  EXPECT_EQ(SetName().find_first_not_of("abcdefghijklmnopqrstuvwxyz0123456789_"), std::string::npos)
      << "a plain identifier: no quoting needed in DEALLOCATE";
}

// ---- preludes on a fresh connection and the same client again

TEST(BackendStateTest, FirstPreludePreparesBehindACloseAndBindsTheTenant) {
  Connection c;
  std::vector<Message> m = c.Assign(1, 0, Want("t1"));
  ASSERT_EQ(Types(m), "CPBE");
  EXPECT_EQ(m[0].name, SetName());
  EXPECT_EQ(m[1].name, SetName());
  EXPECT_EQ(m[1].text, "SELECT pg_catalog.set_config('app.tenant_id', $1, false)");
  EXPECT_EQ(m[2].name, SetName());
  EXPECT_EQ(m[2].param, std::optional<std::string>("t1"));
  c.ClientRan("SELECT 1");
  c.ExpectHolds(Want("t1"), "the first prelude");
  EXPECT_TRUE(c.state.own_statement_ready(BackendState::kSetTenant));
  EXPECT_FALSE(c.state.own_statement_ready(BackendState::kResetTenant));
}

TEST(BackendStateTest, SameClientSameNamingsNeedsNothing) {
  Connection c;
  c.Assign(1, 0, Want("t1"));
  c.ClientRan("SELECT 1");
  EXPECT_FALSE(c.state.NeedsPrelude(Want("t1"), 0));
  EXPECT_TRUE(c.state.NeedsPrelude(Want("t1"), 1)) << "the client named a tenant since";
  EXPECT_TRUE(c.state.NeedsPrelude(Want("t2"), 0));
  EXPECT_TRUE(c.state.NeedsPrelude(Want("t1", {{"search_path", "x"}}), 0));
  EXPECT_EQ(Types(c.Assign(1, 0, Want("t1"))), "");
}

TEST(BackendStateTest, AnotherClientOfTheSameTenantSetsItAgainWithoutParsing) {
  Connection c;
  c.Assign(1, 0, Want("t1"));
  c.ClientRan("SELECT 1");
  // Client 1 may have changed the variable in a function; client 2 must not inherit that.
  EXPECT_EQ(Types(c.Assign(2, 0, Want("t1"))), "BE");
  c.ClientRan("SELECT 1");
  c.ExpectHolds(Want("t1"), "another client");
}

TEST(BackendStateTest, NoTenantUsesTheResetStatement) {
  Connection c;
  c.Assign(1, 0, Want("t1"));
  c.ClientRan("SELECT 1");
  std::vector<Message> m = c.Assign(2, 0, Want(std::nullopt));
  ASSERT_EQ(Types(m), "CPBE");
  EXPECT_EQ(m[1].name, ResetName());
  EXPECT_EQ(m[1].text, "RESET app.tenant_id");
  c.ClientRan("SELECT 1");
  c.ExpectHolds(Want(std::nullopt), "a client without a tenant");
  EXPECT_TRUE(c.state.own_statement_ready(BackendState::kResetTenant));
}

TEST(BackendStateTest, TenantAsQueryWhenTheFirstStatementRefusesAPipeline) {
  Connection c;
  std::vector<Message> m = c.Assign(1, 0, Want("t'1"), /*tenant_as_query=*/true);
  ASSERT_EQ(Types(m), "Q");
  EXPECT_EQ(m[0].text, "SET app.tenant_id = 't''1'");
  c.ExpectHolds(Want("t'1"), "the tenant as a Query");
  EXPECT_FALSE(c.state.own_statement_ready(BackendState::kSetTenant));
  c.ClientRan("VACUUM");
  EXPECT_FALSE(c.state.NeedsPrelude(Want("t'1"), 0));
}

TEST(BackendStateTest, SettingsGoInAQueryOfTheirOwnAheadOfTheTenant) {
  Connection c;
  SessionSettings want = Want("t1", {{"application_name", "web"}, {"search_path", "app, public"}});
  std::vector<Message> m = c.Assign(1, 0, want);
  ASSERT_EQ(Types(m), "QCPBE");
  EXPECT_EQ(m[0].text,
            "SELECT pg_catalog.set_config('application_name', 'web', false);"
            "SELECT pg_catalog.set_config('search_path', 'app, public', false);");
  c.ClientRan("SELECT 1");
  c.ExpectHolds(want, "settings");
  // The next client without settings gets them reset, one by one.
  m = c.Assign(2, 0, Want("t2"));
  ASSERT_EQ(Types(m), "QBE");
  EXPECT_EQ(m[0].text, "RESET \"application_name\";RESET \"search_path\";");
  c.ClientRan("SELECT 1");
  c.ExpectHolds(Want("t2"), "settings of the client before");
}

// ---- what the server's answers to a client's statements mean

TEST(BackendStateTest, DiscardAllThatRanForgetsEverythingAndResetsBeforeTheNextClient) {
  Connection c;
  c.Assign(1, 0, Want("t1", {{"search_path", "x"}}));
  c.ClientRan("SELECT 1");
  c.state.AddStatement(7, 1);
  // The client's DISCARD ALL ran (whatever its SQL looked like).
  c.server.prepared.clear();
  c.server.settings.clear();
  c.server.tenant.reset();
  EXPECT_EQ(c.ClientRan("DISCARD ALL"), BackendState::Event::kClientDiscardedAll);
  EXPECT_FALSE(c.state.own_statement_ready(BackendState::kSetTenant));
  EXPECT_FALSE(c.state.UseStatement(7, 2));
  EXPECT_FALSE(c.state.statements_unsure()) << "nothing was parsed behind it";
  EXPECT_TRUE(c.state.settings_unknown());
  EXPECT_TRUE(c.state.NeedsPrelude(Want("t1", {{"search_path", "x"}}), 0));
  std::vector<Message> m = c.Assign(2, 0, Want("t2"));
  ASSERT_EQ(Types(m), "QCPBE");
  EXPECT_EQ(m[0].text, "RESET ALL;");
  c.ClientRan("SELECT 1");
  c.ExpectHolds(Want("t2"), "DISCARD ALL");
  EXPECT_FALSE(c.state.settings_unknown());
}

TEST(BackendStateTest, DiscardAllThatFailedChangedNothing) {
  Connection c;
  c.Assign(1, 0, Want("t1"));
  c.ClientRan("SELECT 1");
  c.state.AddStatement(7, 1);
  // BEGIN; DISCARD ALL (25001); ROLLBACK: the server answers BEGIN, an error, ROLLBACK.
  c.Client('C', Tag("BEGIN"));
  c.Client('Z', Status('T'));
  c.Client('E', "");
  c.Client('Z', Status('E'));
  c.Client('C', Tag("ROLLBACK"));
  c.Client('Z', Status('I'));
  EXPECT_TRUE(c.state.own_statement_ready(BackendState::kSetTenant));
  EXPECT_TRUE(c.state.UseStatement(7, 2)) << "the mapped statement is still there";
  EXPECT_FALSE(c.state.settings_unknown());
  EXPECT_EQ(Types(c.Assign(2, 0, Want("t2"))), "BE") << "no Parse: the statement exists";
  c.ClientRan("SELECT 1");
  c.ExpectHolds(Want("t2"), "a failed DISCARD ALL");
}

TEST(BackendStateTest, DeallocateAllDropsStatementsButNotSettings) {
  Connection c;
  SessionSettings want = Want("t1", {{"application_name", "web"}});
  c.Assign(1, 0, want);
  c.ClientRan("SELECT 1");
  c.state.AddStatement(7, 1);
  c.server.prepared.clear();
  EXPECT_EQ(c.ClientRan("DEALLOCATE ALL"), BackendState::Event::kNone);
  EXPECT_FALSE(c.state.UseStatement(7, 2));
  EXPECT_FALSE(c.state.settings_unknown());
  EXPECT_FALSE(c.state.NeedsPrelude(want, 0)) << "the same client keeps its tenant and settings";
  std::vector<Message> m = c.Assign(2, 0, want);
  EXPECT_EQ(Types(m), "CPBE");
  c.ClientRan("SELECT 1");
  c.ExpectHolds(want, "DEALLOCATE ALL");
}

TEST(BackendStateTest, DeallocateAllIsNotUndoneByARollback) {
  Connection c;
  c.Assign(1, 0, Want("t1"));
  c.ClientRan("SELECT 1");
  c.Client('C', Tag("BEGIN"));
  c.Client('Z', Status('T'));
  c.server.prepared.clear();
  c.Client('C', Tag("DEALLOCATE ALL"));
  c.Client('Z', Status('T'));
  c.Client('C', Tag("ROLLBACK"));
  c.Client('Z', Status('I'));
  EXPECT_FALSE(c.state.own_statement_ready(BackendState::kSetTenant));
  EXPECT_EQ(Types(c.Assign(2, 0, Want("t2"))), "CPBE");
  c.ClientRan("SELECT 1");
  c.ExpectHolds(Want("t2"), "DEALLOCATE ALL rolled back");
}

TEST(BackendStateTest, DeallocateOfOneNameMakesEveryLaterParseCloseFirst) {
  Connection c;
  c.Assign(1, 0, Want("t1"));
  c.ClientRan("SELECT 1");
  c.state.AddStatement(7, 1);
  c.state.AddStatement(8, 1);
  // The client found pgtenant's statement name and deallocated it.
  c.server.prepared.erase(SetName());
  c.ClientRan("DEALLOCATE");
  EXPECT_TRUE(c.state.statements_unsure()) << "which statement went is not in the answer";
  EXPECT_FALSE(c.state.UseStatement(7, 2)) << "forgotten: prepared again (behind a Close) when used";
  EXPECT_EQ(Types(c.Assign(2, 0, Want("t2"))), "CPBE");
  c.ClientRan("SELECT 1");
  c.ExpectHolds(Want("t2"), "DEALLOCATE of pgtenant's statement");
}

TEST(BackendStateTest, DropBehindUnansweredParsesLeavesStatementsUnsure) {
  Connection c;
  c.Assign(1, 0, Want("t1"));
  c.ClientRan("SELECT 1");
  // Query "DEALLOCATE ALL" and, pipelined behind it, a Parse of a mapped statement: when the
  // DEALLOCATE ALL's answer comes, the Parse behind it is still unanswered.
  c.state.AddStatement(9, 2);
  c.Client('C', Tag("DEALLOCATE ALL"), /*parses_in_flight=*/true);
  EXPECT_FALSE(c.state.UseStatement(9, 2)) << "forgotten although it exists";
  EXPECT_TRUE(c.state.statements_unsure()) << "so its next Parse needs a Close first";
}

TEST(BackendStateTest, ResetThatRolledBackMakesTheNextPreludeResetEverything) {
  Connection c;
  SessionSettings sender = Want("t5", {{"search_path", "sender_path,public"}});
  c.Assign(1, 0, sender);
  c.ClientRan("SELECT 1");
  // BEGIN; RESET ALL; ROLLBACK: the server still holds the sender's search_path.
  c.Client('C', Tag("BEGIN"));
  c.Client('Z', Status('T'));
  c.Client('C', Tag("RESET"));
  c.Client('Z', Status('T'));
  c.Client('C', Tag("ROLLBACK"));
  c.Client('Z', Status('I'));
  EXPECT_TRUE(c.state.settings_unknown());
  EXPECT_TRUE(c.state.own_statement_ready(BackendState::kSetTenant)) << "RESET keeps statements";
  std::vector<Message> m = c.Assign(2, 0, Want("t1"));
  ASSERT_EQ(Types(m), "QBE");
  EXPECT_EQ(m[0].text, "RESET ALL;");
  c.ClientRan("SELECT 1");
  c.ExpectHolds(Want("t1"), "a rolled-back RESET ALL");
}

TEST(BackendStateTest, ResetThatCommittedAlsoResetsEverythingForTheSameClient) {
  Connection c;
  SessionSettings sender = Want("t5", {{"search_path", "p"}});
  c.Assign(1, 0, sender);
  c.ClientRan("SELECT 1");
  c.server.settings.clear();
  c.server.tenant.reset();
  c.ClientRan("RESET");
  EXPECT_TRUE(c.state.NeedsPrelude(sender, 0));
  std::vector<Message> m = c.Assign(1, 0, sender);
  ASSERT_EQ(Types(m), "QBE");
  EXPECT_EQ(m[0].text, "RESET ALL;SELECT pg_catalog.set_config('search_path', 'p', false);");
  c.ClientRan("SELECT 1");
  c.ExpectHolds(sender, "a committed RESET ALL");
}

TEST(BackendStateTest, OtherTagsChangeNothing) {
  Connection c;
  c.Assign(1, 0, Want("t1"));
  c.ClientRan("SELECT 1");
  for (const char* tag : {"SET", "DISCARD PLANS", "DISCARD TEMP", "DISCARD SEQUENCES", "SELECT 3", "COMMIT",
                          "DEALLOCATE ALLx", "RESETS"}) {
    c.ClientRan(tag);
    EXPECT_TRUE(c.state.own_statement_ready(BackendState::kSetTenant)) << tag;
    EXPECT_FALSE(c.state.settings_unknown()) << tag;
    EXPECT_FALSE(c.state.NeedsPrelude(Want("t1"), 0)) << tag;
  }
}

TEST(BackendStateTest, PgtenantsOwnAnswersNeverCountAsTheClients) {
  Connection c;
  c.Assign(1, 0, Want("t1"));
  c.ClientRan("SELECT 1");
  c.Own('C', Tag("RESET"));          // pgtenant's pgtenant_..._reset
  c.Own('C', Tag("DEALLOCATE ALL"));  // (never sent by pgtenant; must be ignored anyway)
  EXPECT_TRUE(c.state.own_statement_ready(BackendState::kSetTenant));
  EXPECT_FALSE(c.state.settings_unknown());
}

TEST(BackendStateTest, ClientCloseOfAnOwnStatementPreparesItAgain) {
  Connection c;
  c.Assign(1, 0, Want("t1"));
  c.ClientRan("SELECT 1");
  c.state.OnClientCloseStatement("something_else");
  EXPECT_TRUE(c.state.own_statement_ready(BackendState::kSetTenant));
  c.state.OnClientCloseStatement(SetName());
  c.server.prepared.erase(SetName());
  EXPECT_FALSE(c.state.own_statement_ready(BackendState::kSetTenant));
  EXPECT_EQ(Types(c.Assign(2, 0, Want("t2"))), "CPBE");
  c.ClientRan("SELECT 1");
  c.ExpectHolds(Want("t2"), "a Close of pgtenant's statement");
}

// ---- the tenant variable

TEST(BackendStateTest, HiddenChangeIsNeverTrusted) {
  Connection c;
  c.Assign(1, 0, Want("t1"));
  c.ClientRan("SELECT 1");
  c.state.MarkTenantUnknown();
  c.server.tenant = "evil";
  EXPECT_TRUE(c.state.NeedsPrelude(Want("t1"), 0));
  EXPECT_EQ(Types(c.Assign(1, 0, Want("t1"))), "BE");
  c.ClientRan("SELECT 1");
  c.ExpectHolds(Want("t1"), "a hidden change");
}

TEST(BackendStateTest, RolledBackFirstTransactionTakesTheTenantWithIt) {
  Connection c;
  c.Assign(1, 0, Want("t1"));
  c.ClientRan("SELECT 1");
  c.Assign(2, 0, Want("t2"));
  c.ClientFailed();  // the client's first statement failed: pgtenant's SET went with it
  EXPECT_EQ(c.server.tenant, std::optional<std::string>("t1"));
  EXPECT_EQ(c.state.settings().tenant, std::optional<std::string>("t1"));
  EXPECT_TRUE(c.state.NeedsPrelude(Want("t2"), 0));
  EXPECT_EQ(Types(c.Assign(2, 0, Want("t2"))), "BE");
  c.ClientRan("SELECT 1");
  c.ExpectHolds(Want("t2"), "a rolled-back first transaction");
}

TEST(BackendStateTest, ExplicitRollbackOfTheFirstTransactionCounts) {
  Connection c;
  c.Assign(1, 0, Want("t1"));
  // BEGIN (after the prelude's Bind/Execute), then ROLLBACK: the block took the SET along.
  c.Client('C', Tag("BEGIN"));
  c.Client('Z', Status('T'));
  c.Client('C', Tag("ROLLBACK"));
  c.Client('Z', Status('I'));
  EXPECT_TRUE(c.state.NeedsPrelude(Want("t1"), 0));
}

// The client's BEGIN was deferred until its first statement, one that refuses a pipeline
// (DISCARD ALL): the tenant went as a Query inside the block, and the block's ROLLBACK (after
// the refusal, 25001) took it along. Found by the isolation suite: the client then read the
// variable another client had left.
TEST(BackendStateTest, TenantSetAsAQueryInsideADeferredBlockGoesWithItsRollback) {
  Connection c;
  c.Assign(1, 0, Want("t1"));
  c.ClientRan("SELECT 1");
  EXPECT_EQ(Types(c.Assign(2, 0, Want("t2"), /*tenant_as_query=*/true, "BEGIN")), "QQ");
  EXPECT_EQ(c.server.tenant, std::optional<std::string>("t2"));
  c.Client('E', "");  // DISCARD ALL cannot run inside a transaction block
  c.Client('Z', Status('E'));
  c.server.RollBackBlock();
  c.Client('C', Tag("ROLLBACK"));
  c.Client('Z', Status('I'));
  EXPECT_EQ(c.server.tenant, std::optional<std::string>("t1"));
  EXPECT_TRUE(c.state.NeedsPrelude(Want("t2"), 0)) << "the variable holds t1 again";
  c.Assign(2, 0, Want("t2"));
  c.ClientRan("SELECT 1");
  c.ExpectHolds(Want("t2"), "the block's rollback");
}

TEST(BackendStateTest, TenantSetInsideADeferredBlockThatCommitsIsKept) {
  Connection c;
  c.Assign(1, 0, Want("t1"));
  c.ClientRan("SELECT 1");
  c.Assign(2, 0, Want("t2"), /*tenant_as_query=*/true, "BEGIN");
  c.Client('C', Tag("SELECT 1"));
  c.Client('Z', Status('T'));
  c.Client('C', Tag("COMMIT"));
  c.Client('Z', Status('I'));
  EXPECT_FALSE(c.state.NeedsPrelude(Want("t2"), 0));
}

TEST(BackendStateTest, PgtenantsOwnReadyForQueryDoesNotEndTheClientsTransaction) {
  Connection c;
  c.Assign(1, 0, Want("t1", {{"application_name", "a"}}));
  // The settings Query's own ReadyForQuery came (in Assign); an error of the client's now.
  c.ClientFailed();
  EXPECT_TRUE(c.state.NeedsPrelude(Want("t1", {{"application_name", "a"}}), 0));
}

// ---- reported and followed settings, pgtenant's own reset

TEST(BackendStateTest, SettingsChangedByTheServerAreKnown) {
  Connection c;
  c.Assign(1, 0, Want("t1"));
  c.ClientRan("SELECT 1");
  c.state.OnSettingChanged("application_name", std::string("x"));
  EXPECT_TRUE(c.state.NeedsPrelude(Want("t1"), 0));
  EXPECT_FALSE(c.state.NeedsPrelude(Want("t1", {{"application_name", "x"}}), 0));
  c.state.OnSettingChanged("application_name", std::nullopt);
  EXPECT_FALSE(c.state.NeedsPrelude(Want("t1"), 0));
}

TEST(BackendStateTest, OwnDiscardAllLeavesAKnownEmptySession) {
  Connection c;
  c.Assign(1, 0, Want("t1", {{"search_path", "x"}}));
  c.ClientRan("DEALLOCATE");
  c.state.AddStatement(3, 1);
  c.state.OnOwnDiscardAll();
  c.server.prepared.clear();
  c.server.settings.clear();
  c.server.tenant.reset();
  EXPECT_FALSE(c.state.statements_unsure());
  EXPECT_FALSE(c.state.settings_unknown());
  EXPECT_EQ(c.state.statement_count(), 0u);
  std::vector<Message> m = c.Assign(2, 0, Want(std::nullopt));
  EXPECT_EQ(Types(m), "CPBE") << "the variable is reset for a new client all the same";
  c.ClientRan("SELECT 1");
  c.ExpectHolds(Want(std::nullopt), "pgtenant's DISCARD ALL");
}

// ---- mapped statements

TEST(BackendStateTest, MappedStatementsAreEvictedLeastRecentlyUsedFirst) {
  BackendState s;
  s.AddStatement(1, 1);
  s.AddStatement(2, 2);
  s.AddStatement(3, 3);
  EXPECT_TRUE(s.UseStatement(1, 4));
  EXPECT_EQ(s.EvictLeastRecentlyUsed(4), std::optional<uint64_t>(2));
  EXPECT_EQ(s.EvictLeastRecentlyUsed(4), std::optional<uint64_t>(3));
  EXPECT_EQ(s.EvictLeastRecentlyUsed(4), std::nullopt) << "statement 1 is used by this batch";
  EXPECT_EQ(s.statement_count(), 1u);
  s.ForgetStatement(1);
  EXPECT_FALSE(s.UseStatement(1, 5));
  EXPECT_EQ(s.EvictLeastRecentlyUsed(5), std::nullopt);
}

// ---- every sequence, at random: the property itself

// What a client may do to the session on the server, and how the server answers it.
enum class Act {
  kSelect, kDiscardAll, kDiscardAllFails, kDeallocateAll, kDeallocateAllFails, kDeallocateOwn,
  kDeallocateOther, kResetAllCommitted, kResetAllRolledBack, kHiddenChange, kCloseOwn, kFirstStatementFails,
  kFollowSearchPath, kCount
};

TEST(BackendStateTest, RandomSequencesNeverFailAPreludeNorLeaveAnotherClientsState) {
  struct Client {
    uint64_t id;
    SessionSettings want;
    uint32_t namings = 0;
  };
  std::vector<Client> clients = {
      {1, Want("t1", {{"search_path", "s1,public"}})},
      {2, Want("t2")},
      {3, Want(std::nullopt, {{"application_name", "three"}})},
      {4, Want("t1", {{"application_name", "four"}, {"datestyle", "ISO, DMY"}})},
  };
  std::mt19937 rng(20261204);
  for (int run = 0; run < 50; ++run) {
    Connection c;
    for (int step = 0; step < 60; ++step) {
      Client& client = clients[rng() % clients.size()];
      const bool as_query = rng() % 8 == 0;
      SCOPED_TRACE("run " + std::to_string(run) + " step " + std::to_string(step) + " client " +
                   std::to_string(client.id));
      // Each transaction of a client gets a prelude, empty when the connection holds what the
      // client wants and may be trusted to (ServerSession::SendPrelude).
      if (rng() % 6 == 0) {
        // A deferred BEGIN goes behind the settings; the block commits or rolls back.
        c.Assign(client.id, client.namings, client.want, as_query, "BEGIN");
        c.ExpectHolds(client.want, "a prelude with a block");
        if (rng() % 2 == 0) {
          c.Client('E', "");
          c.Client('Z', Status('E'));
          c.server.RollBackBlock();
          c.Client('C', Tag("ROLLBACK"));
        } else {
          c.Client('C', Tag("SELECT 1"));
          c.Client('Z', Status('T'));
          c.server.CommitBlock();
          c.Client('C', Tag("COMMIT"));
        }
        c.Client('Z', Status('I'));
        if (HasFailure()) return;
        continue;
      }
      c.Assign(client.id, client.namings, client.want, as_query);
      c.ExpectHolds(client.want, "a prelude");
      if (HasFailure()) return;
      auto act = static_cast<Act>(rng() % static_cast<unsigned>(Act::kCount));
      switch (act) {
        case Act::kSelect:
          c.ClientRan("SELECT 1");
          break;
        case Act::kDiscardAll:
          c.server.EndClientTxn(true);
          c.server.prepared.clear();
          c.server.settings.clear();
          c.server.tenant.reset();
          c.Client('C', Tag("DISCARD ALL"), rng() % 2 == 0);
          c.Client('Z', Status('I'));
          ++client.namings;  // the client's session is back to its startup tenant (ClientSession)
          break;
        case Act::kDiscardAllFails:
        case Act::kDeallocateAllFails:
          c.ClientFailed();
          break;
        case Act::kDeallocateAll:
          c.server.EndClientTxn(true);
          c.server.prepared.clear();
          c.Client('C', Tag("DEALLOCATE ALL"), rng() % 2 == 0);
          c.Client('Z', Status('I'));
          break;
        case Act::kDeallocateOwn:
          c.server.EndClientTxn(true);
          c.server.prepared.erase(rng() % 2 ? SetName() : ResetName());
          c.ClientRan("DEALLOCATE");
          break;
        case Act::kDeallocateOther:
          c.ClientRan("DEALLOCATE");
          break;
        case Act::kResetAllCommitted:
          c.server.EndClientTxn(true);
          c.server.settings.clear();
          c.server.tenant.reset();
          c.ClientRan("RESET");
          ++client.namings;
          break;
        case Act::kResetAllRolledBack:
          c.server.EndClientTxn(true);
          c.Client('C', Tag("BEGIN"));
          c.Client('Z', Status('T'));
          c.Client('C', Tag("RESET"));
          c.Client('Z', Status('T'));
          c.Client('C', Tag("ROLLBACK"));
          c.Client('Z', Status('I'));
          ++client.namings;
          break;
        case Act::kHiddenChange:
          c.server.EndClientTxn(true);
          c.state.MarkTenantUnknown();
          c.server.tenant = "evil";
          c.ClientRan("SELECT 1");
          break;
        case Act::kCloseOwn:
          c.server.EndClientTxn(true);
          c.state.OnClientCloseStatement(SetName());
          c.server.prepared.erase(SetName());
          c.ClientRan("SELECT 1");
          break;
        case Act::kFirstStatementFails:
          c.ClientFailed();
          break;
        case Act::kFollowSearchPath:
          // A followed SET search_path, settled by ClientSession: client and server agree.
          c.server.EndClientTxn(true);
          c.server.settings["search_path"] = "followed";
          client.want.Set("search_path", "followed");
          c.state.OnSettingChanged("search_path", std::string("followed"));
          c.ClientRan("SET");
          break;
        case Act::kCount:
          break;
      }
      if (HasFailure()) return;
    }
  }
}

}  // namespace
}  // namespace pgtenant::proxy
