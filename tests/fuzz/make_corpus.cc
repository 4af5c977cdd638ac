// Writes the generated part of the seed corpora (tests/fuzz/corpus/<target>/gen-*): real
// protocol messages built with protocol/messages.h and real SCRAM exchanges, framed the way each
// fuzz target reads its input. Run by hand after changing a target's input format:
//   build-fuzz/tests/fuzz/make_corpus tests/fuzz/corpus
// Hand-written seeds (SQL, YAML, regression inputs) sit beside these and are not touched.
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "protocol/frame_decoder.h"
#include "protocol/message_writer.h"
#include "protocol/messages.h"
#include "protocol/scram.h"

namespace {

namespace protocol = pgtenant::protocol;
namespace fs = std::filesystem;

void Write(const fs::path& dir, const std::string& name, const std::string& bytes) {
  fs::create_directories(dir);
  std::ofstream(dir / ("gen-" + name), std::ios::binary) << bytes;
}

std::string Byte(int b) { return std::string(1, static_cast<char>(b)); }

// After the untyped length word, as ParseStartupPacket sees it.
std::string StartupPayload(const std::vector<std::pair<std::string, std::string>>& params) {
  std::string m;
  protocol::AppendStartupMessage(&m, params);
  return m.substr(4);
}

void FrameDecoder(const fs::path& dir) {
  std::string startup;
  protocol::AppendStartupMessage(
      &startup, {{"user", "app"}, {"database", "app"}, {"application_name", "psql"}});
  std::string extended;
  protocol::AppendParse(&extended, "s1", "SELECT $1::int", {23});
  std::string bind;
  protocol::MessageWriter w(&bind);
  w.Begin('B').PutCString("").PutCString("s1").PutInt16(1).PutInt16(0).PutInt16(2);
  w.PutInt32(2).PutBytes("42").PutInt32(-1).PutInt16(1).PutInt16(1).Finish();
  extended += bind;
  protocol::MessageWriter(&extended).Begin('D').PutByte('P').PutCString("").Finish();
  protocol::AppendExecuteUnnamed(&extended);
  protocol::MessageWriter(&extended).Begin('C').PutByte('S').PutCString("s1").Finish();
  protocol::AppendSync(&extended);
  std::string simple;
  protocol::AppendQuery(&simple, "SET app.tenant_id = 'acme'; SELECT 1");
  protocol::AppendTerminate(&simple);
  std::string backend;
  protocol::AppendError(&backend, "ERROR", "42P01", "relation \"t\" does not exist", "detail",
                        "hint");
  protocol::AppendReadyForQuery(&backend, 'I');
  std::string cancel, ssl;
  protocol::AppendCancelRequest(&cancel, 1234, 5678);
  protocol::MessageWriter(&ssl).Begin(0).PutInt32(protocol::kSslRequestCode).Finish();

  Write(dir, "startup-then-extended", Byte(4 | 2) + startup + extended);
  Write(dir, "startup-then-simple", Byte(4 | 3) + startup + simple);
  Write(dir, "backend-error", Byte(3) + backend);
  Write(dir, "small-limit", Byte(1) + extended);
  Write(dir, "cancel", Byte(4 | 2) + cancel);
  Write(dir, "ssl-then-startup", Byte(4 | 2) + ssl + startup);
}

void Startup(const fs::path& dir) {
  Write(dir, "plain", Byte(0) + StartupPayload({{"user", "app"}, {"database", "app"}}));
  Write(dir, "parameter", Byte(0) + StartupPayload({{"user", "app"}, {"app.tenant_id", "acme"}}));
  Write(dir, "options",
        Byte(0) + StartupPayload({{"user", "acme_service"},
                                  {"options", "-c app.tenant_id=acme -c search_path=s"}}));
  Write(dir, "user-source", Byte(2) + StartupPayload({{"user", "app::t42"}}));
  Write(dir, "conflict",
        Byte(0) + StartupPayload({{"user", "svc.globex"}, {"APP.TENANT_ID", "acme"}}));
  Write(dir, "options-cluster", Byte(1) + "-ec app.tenant_id=acme --app-tenant-id=acme -B 100");
  Write(dir, "options-escapes", Byte(1) + "-capp.tenant_id=a\\ b\\\\c -c statement_timeout=5s");
}

struct Exchange {
  std::string client_first, server_first, client_final, server_final;
};

Exchange RunScram(const std::string& password) {
  protocol::ScramVerifier verifier = protocol::MakeScramVerifier("pencil", "saltsaltsalt", 16);
  protocol::ScramServerExchange server(verifier, "3rfcNHYJY1ZVvWVs7j");
  protocol::ScramClientExchange client(password, "fyko+d2lbbFgONRv9qkxdawL", "user");
  Exchange e;
  e.client_first = client.ClientFirstMessage();
  e.server_first = *server.HandleClientFirst(e.client_first);
  e.client_final = *client.HandleServerFirst(e.server_first);
  auto server_final = server.HandleClientFinal(e.client_final);
  e.server_final = server_final.ok() ? *server_final : "e=invalid-proof";
  return e;
}

void Scram(const fs::path& dir) {
  const std::string nul(1, '\0');
  const Exchange good = RunScram("pencil");
  Write(dir, "server", Byte(0) + good.client_first + nul + good.client_final);
  Write(dir, "server-extensions",
        Byte(0) + "y,,n=,r=abc,x=1" + nul + "c=eSws,r=abc3rfcNHYJY1ZVvWVs7j,p=AAAA");
  Write(dir, "client", Byte(1) + good.server_first + nul + good.server_final);
  Write(dir, "client-error", Byte(1) + good.server_first + nul + "e=invalid-proof");
  Write(dir, "roundtrip", Byte(2) + "pencil");
  Write(dir, "roundtrip-wrong", Byte(2) + "pencil2");
  Write(dir, "roundtrip-flip", Byte(2) + "pencil" + nul + Byte(2) + Byte(40) + Byte(1));
  Write(dir, "verifier",
        Byte(3) + protocol::ScramVerifierToString(
                      protocol::MakeScramVerifier("pencil", "saltsaltsalt", 16)));
}

// Two bytes per operation; see response_tracker_fuzz.cc.
std::string Op(int op, int arg) { return Byte(op) + Byte(arg); }
std::string SendClient(char t) {
  const std::string_view kFrontend = "QFSPBDECHdcfXp";
  return Op(0, static_cast<int>(kFrontend.find(t)));
}
std::string SendOwn(char t) {
  const std::string_view kFrontend = "QFSPBDECHdcfXp";
  return Op(8 | 16, static_cast<int>(kFrontend.find(t)));
}
std::string Backend(char t) {
  const std::string_view kBackend = "ZE123TnCIsNSAKRDtdcGHWv";
  return Op(3 | 8 | 16, static_cast<int>(kBackend.find(t)));
}

void ResponseTracker(const fs::path& dir) {
  Write(dir, "extended",
        SendClient('P') + SendClient('B') + SendClient('E') + SendClient('S') + Backend('1') +
            Backend('2') + Backend('D') + Backend('C') + Backend('Z'));
  Write(dir, "prelude",
        SendOwn('Q') + SendClient('Q') + Backend('C') + Backend('Z') + Backend('T') + Backend('D') +
            Backend('C') + Backend('Z'));
  Write(dir, "synthetic",
        SendClient('P') + Op(2, 0) + SendClient('B') + SendClient('S') + Backend('1') +
            Backend('2') + Backend('Z') + Op(6, 0));
  Write(dir, "error-skips",
        SendOwn('P') + SendClient('B') + SendClient('E') + SendClient('S') + Backend('E') +
            Backend('Z') + Op(7 | 8, 0));
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 2) {
    std::fprintf(stderr, "usage: make_corpus CORPUS_DIR\n");
    return 2;
  }
  const fs::path root(argv[1]);
  FrameDecoder(root / "frame_decoder_fuzz");
  Startup(root / "startup_fuzz");
  Scram(root / "scram_fuzz");
  ResponseTracker(root / "response_tracker_fuzz");
  return 0;
}
