// UsageLedger (billing/usage_ledger.h): exact counts, windows, reopening after a crash, growth,
// compaction and damaged files.
#include "billing/usage_ledger.h"

#include <fcntl.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <map>
#include <thread>

#include "temp_dir.h"

namespace pgtenant::billing {
namespace {

// "t" + std::to_string(n), built with append: GCC 12 at -O3 reports a false -Wrestrict on
// literal + to_string.
std::string Name(const char* prefix, int64_t n) {
  std::string s = prefix;
  return s.append(std::to_string(n));
}

constexpr int64_t kT0 = 1700000000 - 1700000000 % 60;  // a window start for 60 s windows

std::unique_ptr<UsageLedger> OpenOk(const LedgerOptions& o, OpenReport* report = nullptr) {
  auto l = UsageLedger::Open(o, report);
  EXPECT_TRUE(l.ok()) << l.status().ToString();
  return l.ok() ? std::move(l).value() : nullptr;
}

LedgerOptions Options(const TempDir& dir, uint32_t segment0 = 32) {
  LedgerOptions o;
  o.path = dir.File("usage.ledger");
  o.window_seconds = 60;
  o.segment0_records = segment0;
  return o;
}

// (tenant, meter, window start) -> value, over records that are not free.
std::map<std::tuple<std::string, Meter, int64_t>, uint64_t> Sums(const UsageLedger& l) {
  std::map<std::tuple<std::string, Meter, int64_t>, uint64_t> out;
  for (const RecordView& v : l.Snapshot()) out[{v.tenant, v.meter, v.window_start}] += v.value;
  return out;
}

TEST(UsageLedgerTest, CountsExactlyPerTenantMeterAndWindow) {
  TempDir dir;
  OpenReport report;
  auto l = OpenOk(Options(dir), &report);
  ASSERT_TRUE(l);
  EXPECT_TRUE(report.created);
  for (int i = 0; i < 1000; ++i) {
    ASSERT_TRUE(l->Add("acme", Meter::kQueries, 1, kT0 + i % 60));
    ASSERT_TRUE(l->Add("acme", Meter::kBytesIn, 100, kT0 + i % 60));
    ASSERT_TRUE(l->Add("globex", Meter::kQueries, 2, kT0 + 59));
  }
  ASSERT_TRUE(l->Add("acme", Meter::kQueries, 7, kT0 + 60));  // the next window
  auto sums = Sums(*l);
  EXPECT_EQ(sums.size(), 4u);
  EXPECT_EQ((sums[{"acme", Meter::kQueries, kT0}]), 1000u);
  EXPECT_EQ((sums[{"acme", Meter::kBytesIn, kT0}]), 100000u);
  EXPECT_EQ((sums[{"globex", Meter::kQueries, kT0}]), 2000u);
  EXPECT_EQ((sums[{"acme", Meter::kQueries, kT0 + 60}]), 7u);
}

TEST(UsageLedgerTest, ClosingTakesEndedWindowsOnly) {
  TempDir dir;
  auto l = OpenOk(Options(dir));
  ASSERT_TRUE(l->Add("acme", Meter::kQueries, 1, kT0));
  ASSERT_TRUE(l->Add("acme", Meter::kQueries, 1, kT0 + 60));
  uint64_t generation = l->close_generation();
  EXPECT_EQ(l->CloseWindowsBefore(kT0 + 59), 0u) << "the window is not over";
  EXPECT_EQ(l->close_generation(), generation);
  EXPECT_EQ(l->CloseWindowsBefore(kT0 + 60), 1u);
  EXPECT_GT(l->close_generation(), generation);
  std::vector<RecordView> sendable;
  l->ForEachSendable([&](const RecordView& v) { sendable.push_back(v); });
  ASSERT_EQ(sendable.size(), 1u);
  EXPECT_EQ(sendable[0].window_start, kT0);
  EXPECT_EQ(sendable[0].state, RecordState::kClosed);
  EXPECT_TRUE(l->Sync().ok());
}

TEST(UsageLedgerTest, TheClockGoingBackNeverReopensAClosedWindow) {
  TempDir dir;
  auto l = OpenOk(Options(dir));
  ASSERT_TRUE(l->Add("acme", Meter::kQueries, 1, kT0 + 60));
  ASSERT_TRUE(l->Add("acme", Meter::kQueries, 2, kT0)) << "back into an older, never-closed window";
  EXPECT_EQ((Sums(*l)[{"acme", Meter::kQueries, kT0 + 60}]), 3u) << "joins the newest open window";
  EXPECT_EQ(l->CloseWindowsBefore(kT0 + 120), 1u);
  ASSERT_TRUE(l->Add("acme", Meter::kQueries, 5, kT0 + 30));  // the clock went back 90 s
  auto sums = Sums(*l);
  EXPECT_EQ((sums[{"acme", Meter::kQueries, kT0 + 60}]), 3u) << "the closed window is untouched";
  EXPECT_EQ((sums[{"acme", Meter::kQueries, kT0 + 120}]), 5u) << "counted in the first open window";
}

TEST(UsageLedgerTest, RefusesTenantIdsLongerThanItsCapacity) {
  TempDir dir;
  auto l = OpenOk(Options(dir));
  EXPECT_TRUE(l->Add(std::string(63, 'a'), Meter::kQueries, 1, kT0));
  EXPECT_FALSE(l->Add(std::string(64, 'a'), Meter::kQueries, 1, kT0));
  EXPECT_FALSE(l->Add("", Meter::kQueries, 1, kT0));
  EXPECT_EQ(l->rejected(), 2u);
}

TEST(UsageLedgerTest, ReopeningResumesOpenWindowsAndKeepsStates) {
  TempDir dir;
  {
    auto l = OpenOk(Options(dir));
    ASSERT_TRUE(l->Add("acme", Meter::kQueries, 5, kT0));
    ASSERT_TRUE(l->Add("globex", Meter::kQueries, 6, kT0));
    ASSERT_TRUE(l->Add("acme", Meter::kQueries, 7, kT0 + 60));
    l->CloseWindowsBefore(kT0 + 60);
    l->ForEachSendable([&](const RecordView& v) {
      if (v.tenant == "globex") l->SetState(v.slot, RecordState::kDelivered, kT0 + 61, 1);
    });
  }
  OpenReport report;
  auto l = OpenOk(Options(dir), &report);
  EXPECT_FALSE(report.created);
  EXPECT_EQ(report.records, 3u);
  EXPECT_EQ(report.open, 1u);
  EXPECT_EQ(report.pending, 1u);
  EXPECT_EQ(report.corrupt, 0u);
  ASSERT_TRUE(l->Add("acme", Meter::kQueries, 1, kT0 + 61));
  EXPECT_EQ((Sums(*l)[{"acme", Meter::kQueries, kT0 + 60}]), 8u) << "the open window resumed";
  EXPECT_EQ(l->Snapshot().size(), 3u) << "no second record for the resumed window";
  ASSERT_TRUE(l->Add("acme", Meter::kQueries, 1, kT0 + 10)) << "closed_before survived the restart";
  EXPECT_EQ((Sums(*l)[{"acme", Meter::kQueries, kT0}]), 5u);
}

TEST(UsageLedgerTest, ASecondProcessCannotOpenALedgerInUse) {
  TempDir dir;
  auto first = OpenOk(Options(dir));
  auto second = UsageLedger::Open(Options(dir), nullptr);
  ASSERT_FALSE(second.ok());
  EXPECT_NE(second.status().message().find("in use"), std::string::npos) << second.status().message();
}

// A child adds as fast as it can and is SIGKILLed mid-way; after every Add it publishes how many
// returned. The parent reopens the file: every Add that returned is there.
TEST(UsageLedgerTest, SigkillLosesNoAddThatReturned) {
  TempDir dir;
  LedgerOptions o = Options(dir);
  auto* done = static_cast<std::atomic<uint64_t>*>(
      mmap(nullptr, sizeof(std::atomic<uint64_t>), PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0));
  ASSERT_NE(done, MAP_FAILED);
  new (done) std::atomic<uint64_t>(0);
  pid_t child = fork();
  ASSERT_GE(child, 0);
  if (child == 0) {
    auto l = UsageLedger::Open(o, nullptr);
    if (!l.ok()) _exit(2);
    // Many tenants and windows, so that records are created (and the file grows) while killed.
    for (uint64_t i = 0; i < 50'000'000; ++i) {
      std::string tenant = Name("t", static_cast<int64_t>(i % 500));
      if (!(*l)->Add(tenant, Meter::kQueries, 1, kT0 + static_cast<int64_t>(i / 20000))) _exit(3);
      done->store(i + 1, std::memory_order_release);
    }
    _exit(0);
  }
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
  while (done->load() < 300000 && std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  kill(child, SIGKILL);
  int status = 0;
  ASSERT_EQ(waitpid(child, &status, 0), child);
  ASSERT_TRUE(WIFSIGNALED(status)) << "the child was still adding when killed";
  uint64_t returned = done->load();
  ASSERT_GT(returned, 0u);

  OpenReport report;
  auto l = OpenOk(o, &report);
  ASSERT_TRUE(l);
  EXPECT_EQ(report.corrupt, 0u);
  uint64_t total = 0;
  for (const RecordView& v : l->Snapshot()) total += v.value;
  // The Add in progress when the signal came may or may not be in.
  EXPECT_GE(total, returned);
  EXPECT_LE(total, returned + 1);
  munmap(done, sizeof(std::atomic<uint64_t>));
}

TEST(UsageLedgerTest, GrowsAndFindsEveryRecordAfterReopening) {
  TempDir dir;
  LedgerOptions o = Options(dir, 32);
  {
    auto l = OpenOk(o);
    for (int t = 0; t < 1000; ++t) {
      for (int w = 0; w < 3; ++w) ASSERT_TRUE(l->Add(Name("t", t), Meter::kTransactions, t + 1, kT0 + 60 * w));
    }
    EXPECT_EQ(l->Snapshot().size(), 3000u);
  }
  auto l = OpenOk(o);
  auto sums = Sums(*l);
  ASSERT_EQ(sums.size(), 3000u);
  for (int t = 0; t < 1000; t += 97) {
    EXPECT_EQ((sums[{Name("t", t), Meter::kTransactions, kT0 + 120}]), static_cast<uint64_t>(t + 1));
  }
}

TEST(UsageLedgerTest, CompactionFreesFinishedRecordsForReuse) {
  TempDir dir;
  LedgerOptions o = Options(dir, 32);
  auto l = OpenOk(o);
  for (int t = 0; t < 32; ++t) ASSERT_TRUE(l->Add(Name("t", t), Meter::kQueries, 1, kT0));
  l->CloseWindowsBefore(kT0 + 60);
  int n = 0;
  l->ForEachSendable([&](const RecordView& v) {
    // Half delivered long ago, one unbilled, the rest still pending.
    if (n < 16) l->SetState(v.slot, RecordState::kDelivered, kT0 + 100, 1);
    if (n == 16) l->SetState(v.slot, RecordState::kUnbilled, kT0 + 100, 0);
    ++n;
  });
  EXPECT_EQ(l->Compact(kT0 + 150, 100), 0u) << "kept for keep_seconds";
  EXPECT_EQ(l->Compact(kT0 + 200, 100), 17u);
  size_t size_before = std::filesystem::file_size(o.path);
  for (int t = 0; t < 17; ++t) ASSERT_TRUE(l->Add(Name("n", t), Meter::kQueries, 1, kT0 + 60));
  EXPECT_EQ(std::filesystem::file_size(o.path), size_before) << "freed slots were reused";
  int pending = 0;
  l->ForEachSendable([&](const RecordView&) { ++pending; });
  EXPECT_EQ(pending, 15);
  EXPECT_EQ(l->Snapshot().size(), 32u);
}

TEST(UsageLedgerTest, AReaderThreadSeesConsistentRecordsWhileTheOwnerAdds) {
  TempDir dir;
  auto l = OpenOk(Options(dir, 32));
  std::atomic<bool> stop{false};
  std::thread reader([&] {
    while (!stop.load()) {
      for (const RecordView& v : l->Snapshot()) {
        ASSERT_EQ(v.tenant.substr(0, 1), "t");
        ASSERT_NE(v.state, RecordState::kCorrupt);
      }
    }
  });
  for (int i = 0; i < 20000; ++i) ASSERT_TRUE(l->Add(Name("t", i % 700), Meter::kQueries, 1, kT0 + i / 500));
  stop.store(true);
  reader.join();
  uint64_t total = 0;
  for (const RecordView& v : l->Snapshot()) total += v.value;
  EXPECT_EQ(total, 20000u);
}

// ---- damaged files --------------------------------------------------------------------------

void Overwrite(const std::string& path, off_t offset, std::string_view bytes) {
  int fd = open(path.c_str(), O_WRONLY);
  ASSERT_GE(fd, 0);
  ASSERT_EQ(pwrite(fd, bytes.data(), bytes.size(), offset), static_cast<ssize_t>(bytes.size()));
  close(fd);
}

std::string MakeLedger(const TempDir& dir) {
  LedgerOptions o = Options(dir);
  auto l = OpenOk(o);
  EXPECT_TRUE(l->Add("acme", Meter::kQueries, 5, kT0));
  EXPECT_TRUE(l->Add("globex", Meter::kQueries, 6, kT0));
  l->CloseWindowsBefore(kT0 + 60);
  return o.path;
}

TEST(UsageLedgerTest, ATornRecordIsReportedAndNeverSent) {
  TempDir dir;
  std::string path = MakeLedger(dir);
  Overwrite(path, 4096 + 48, "X");  // the first record's tenant: "acme" -> "Xcme"
  OpenReport report;
  auto l = OpenOk(Options(dir), &report);
  ASSERT_TRUE(l);
  EXPECT_EQ(report.corrupt, 1u);
  EXPECT_EQ(report.pending, 1u);
  ASSERT_FALSE(report.warnings.empty());
  EXPECT_NE(report.warnings[0].find("record 0"), std::string::npos) << report.warnings[0];
  std::vector<std::string> sendable;
  l->ForEachSendable([&](const RecordView& v) { sendable.push_back(v.tenant); });
  EXPECT_EQ(sendable, std::vector<std::string>{"globex"});
}

TEST(UsageLedgerTest, ADamagedHeaderIsAnErrorNotACrash) {
  struct Case {
    const char* name;
    off_t offset;
    std::string bytes;
    const char* expect;
  };
  for (const Case& c : {Case{"magic", 0, "NOTALEDG", "bad magic"},
                        Case{"version", 8, std::string("\x07\0\0\0", 4), "format version 7"},
                        Case{"checksum", 16, std::string("\x00\x01\0\0", 4), "checksum"}}) {
    TempDir dir;
    std::string path = MakeLedger(dir);
    Overwrite(path, c.offset, c.bytes);
    auto l = UsageLedger::Open(Options(dir), nullptr);
    ASSERT_FALSE(l.ok()) << c.name;
    EXPECT_NE(l.status().message().find(c.expect), std::string::npos) << l.status().message();
  }
}

TEST(UsageLedgerTest, ATruncatedFileIsAnError) {
  for (off_t size : {off_t{10}, off_t{4096 + 100}}) {
    TempDir dir;
    std::string path = MakeLedger(dir);
    ASSERT_EQ(truncate(path.c_str(), size), 0);
    auto l = UsageLedger::Open(Options(dir), nullptr);
    ASSERT_FALSE(l.ok());
    EXPECT_NE(l.status().message().find("damaged"), std::string::npos) << l.status().message();
  }
}

}  // namespace
}  // namespace pgtenant::billing
