// ReadUsageLedger (billing/usage_reader.h): reading a ledger that pgtenant holds open (and
// locked), growth, torn records, damaged and missing files; and that reading changes nothing.
#include "billing/usage_reader.h"

#include <fcntl.h>
#include <sys/file.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <atomic>
#include <fstream>
#include <map>
#include <sstream>
#include <thread>

#include "billing/usage_ledger.h"
#include "temp_dir.h"

namespace pgtenant::billing {
namespace {

constexpr int64_t kT0 = 1700000000 - 1700000000 % 60;  // a window start for 60 s windows

std::string Name(const char* prefix, int64_t n) {
  std::string s = prefix;
  return s.append(std::to_string(n));
}

LedgerOptions Options(const TempDir& dir, uint32_t segment0 = 32) {
  LedgerOptions o;
  o.path = dir.File("usage.ledger");
  o.window_seconds = 60;
  o.segment0_records = segment0;
  return o;
}

std::unique_ptr<UsageLedger> OpenOk(const LedgerOptions& o) {
  auto l = UsageLedger::Open(o, nullptr);
  EXPECT_TRUE(l.ok()) << l.status().ToString();
  return l.ok() ? std::move(l).value() : nullptr;
}

LedgerContents ReadOk(const std::string& path) {
  auto r = ReadUsageLedger(path);
  EXPECT_TRUE(r.ok()) << r.status().ToString();
  return r.ok() ? std::move(r).value() : LedgerContents{};
}

std::string FileBytes(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::ostringstream s;
  s << in.rdbuf();
  return s.str();
}

void Overwrite(const std::string& path, off_t offset, std::string_view bytes) {
  int fd = open(path.c_str(), O_WRONLY);
  ASSERT_GE(fd, 0);
  ASSERT_EQ(pwrite(fd, bytes.data(), bytes.size(), offset), static_cast<ssize_t>(bytes.size()));
  close(fd);
}

bool SameRecord(const RecordView& a, const RecordView& b) {
  return a.slot == b.slot && a.tenant == b.tenant && a.meter == b.meter && a.window_start == b.window_start &&
         a.window_seconds == b.window_seconds && a.value == b.value && a.state == b.state &&
         a.attempts == b.attempts && a.state_changed_at == b.state_changed_at;
}

TEST(UsageReaderTest, ReadsALedgerPgtenantHoldsOpenAndLocked) {
  TempDir dir;
  LedgerOptions o = Options(dir);
  auto l = OpenOk(o);
  ASSERT_TRUE(l);
  ASSERT_TRUE(l->Add("acme", Meter::kQueries, 5, kT0));
  ASSERT_TRUE(l->Add("acme", Meter::kServerTime, 1500, kT0 + 1));
  ASSERT_TRUE(l->Add("globex", Meter::kBytesOut, 4096, kT0 + 2));
  ASSERT_EQ(l->CloseWindowsBefore(kT0 + 60), 3u);
  ASSERT_TRUE(l->Add("acme", Meter::kQueries, 7, kT0 + 61));  // the next window: open
  uint64_t delivered_slot = 0;
  for (const RecordView& v : l->Snapshot()) {
    if (v.tenant == "globex") delivered_slot = v.slot;
  }
  l->SetState(delivered_slot, RecordState::kDelivered, kT0 + 70, 2);
  std::string before = FileBytes(o.path);

  LedgerContents c = ReadOk(o.path);
  EXPECT_EQ(c.corrupt, 0u);
  EXPECT_EQ(c.tenant_capacity, 63u);
  std::vector<RecordView> expected = l->Snapshot();
  ASSERT_EQ(c.records.size(), 4u);
  ASSERT_EQ(c.records.size(), expected.size());
  for (size_t i = 0; i < expected.size(); ++i) {
    EXPECT_TRUE(SameRecord(c.records[i], expected[i])) << "slot " << expected[i].slot;
  }
  std::map<std::pair<std::string, Meter>, RecordView> by;
  for (const RecordView& v : c.records) by[{v.tenant, v.meter}] = v;
  const RecordView& globex = by[{"globex", Meter::kBytesOut}];
  EXPECT_EQ(globex.state, RecordState::kDelivered);
  EXPECT_EQ(globex.attempts, 2u);
  EXPECT_EQ(globex.state_changed_at, kT0 + 70);
  EXPECT_EQ(globex.value, 4096u);
  EXPECT_EQ(globex.window_start, kT0);
  EXPECT_EQ(globex.window_seconds, 60u);
  EXPECT_EQ((by[{"acme", Meter::kServerTime}].state), RecordState::kClosed);
  EXPECT_EQ((by[{"acme", Meter::kServerTime}].value), 1500u);

  // The open window keeps counting; a second read sees it.
  ASSERT_TRUE(l->Add("acme", Meter::kQueries, 3, kT0 + 62));
  bool seen = false;
  for (const RecordView& v : ReadOk(o.path).records) {
    if (v.state == RecordState::kOpen) {
      seen = true;
      EXPECT_EQ(v.value, 10u);
      EXPECT_EQ(v.window_start, kT0 + 60);
    }
  }
  EXPECT_TRUE(seen);

  // The reader wrote nothing and took no lock: pgtenant still holds its own.
  EXPECT_EQ(FileBytes(o.path).size(), before.size());
  int fd = open(o.path.c_str(), O_RDONLY);
  ASSERT_GE(fd, 0);
  EXPECT_NE(flock(fd, LOCK_EX | LOCK_NB), 0) << "the owner's flock must still be held";
  close(fd);
  EXPECT_TRUE(l->Add("acme", Meter::kQueries, 1, kT0 + 63));
}

TEST(UsageReaderTest, ReadsTheFileUnchangedWhenPgtenantIsStopped) {
  TempDir dir;
  LedgerOptions o = Options(dir);
  {
    auto l = OpenOk(o);
    ASSERT_TRUE(l);
    ASSERT_TRUE(l->Add("acme", Meter::kTransactions, 9, kT0));
    l->CloseWindowsBefore(kT0 + 60);
    ASSERT_TRUE(l->Sync().ok());
  }
  std::string before = FileBytes(o.path);
  LedgerContents c = ReadOk(o.path);
  ASSERT_EQ(c.records.size(), 1u);
  EXPECT_EQ(c.records[0].tenant, "acme");
  EXPECT_EQ(c.records[0].value, 9u);
  EXPECT_EQ(FileBytes(o.path), before);
}

TEST(UsageReaderTest, FindsRecordsInEverySegmentAfterGrowth) {
  TempDir dir;
  LedgerOptions o = Options(dir, 32);
  auto l = OpenOk(o);
  ASSERT_TRUE(l);
  for (int i = 0; i < 200; ++i) ASSERT_TRUE(l->Add(Name("t", i), Meter::kQueries, uint64_t(i) + 1, kT0));
  LedgerContents c = ReadOk(o.path);
  ASSERT_EQ(c.records.size(), 200u);  // segments of 32, 64, 128 records
  for (size_t i = 0; i < c.records.size(); ++i) {
    EXPECT_EQ(c.records[i].tenant, Name("t", static_cast<int64_t>(i)));
    EXPECT_EQ(c.records[i].value, i + 1);
  }
}

TEST(UsageReaderTest, ReadsConsistentRecordsWhileTheOwnerAddsAndGrows) {
  TempDir dir;
  LedgerOptions o = Options(dir, 32);
  auto l = OpenOk(o);
  ASSERT_TRUE(l);
  std::atomic<bool> done{false};
  std::thread owner([&] {
    for (int i = 0; i < 20000; ++i) {
      l->Add(Name("t", i % 500), Meter::kQueries, 1, kT0 + (i / 5000) * 60);
      if (i % 5000 == 4999) l->CloseWindowsBefore(kT0 + (i / 5000 + 1) * 60);
    }
    done.store(true);
  });
  uint64_t last_total = 0;
  for (int reads = 0; reads < 2000 && !done.load(); ++reads) {
    LedgerContents c = ReadOk(o.path);
    ASSERT_EQ(c.corrupt, 0u);
    uint64_t total = 0;
    for (const RecordView& v : c.records) {
      ASSERT_FALSE(v.tenant.empty());
      ASSERT_EQ(v.tenant[0], 't');
      total += v.value;
    }
    EXPECT_GE(total, last_total) << "counts never go back";
    last_total = total;
  }
  owner.join();
  uint64_t total = 0;
  for (const RecordView& v : ReadOk(o.path).records) total += v.value;
  EXPECT_EQ(total, 20000u);
}

TEST(UsageReaderTest, SkipsAndCountsATornRecordWithoutMarkingIt) {
  TempDir dir;
  LedgerOptions o = Options(dir);
  {
    auto l = OpenOk(o);
    ASSERT_TRUE(l->Add("acme", Meter::kQueries, 5, kT0));
    ASSERT_TRUE(l->Add("globex", Meter::kQueries, 6, kT0));
    l->CloseWindowsBefore(kT0 + 60);
  }
  Overwrite(o.path, 4096 + 48, "X");  // the first record's tenant: "acme" -> "Xcme"
  std::string before = FileBytes(o.path);
  LedgerContents c = ReadOk(o.path);
  EXPECT_EQ(c.corrupt, 1u);
  ASSERT_EQ(c.records.size(), 1u);
  EXPECT_EQ(c.records[0].tenant, "globex");
  EXPECT_EQ(FileBytes(o.path), before) << "the reader never marks a record";
}

TEST(UsageReaderTest, ADamagedHeaderIsAnError) {
  struct Case {
    const char* name;
    off_t offset;
    std::string bytes;
    const char* expect;
  };
  for (const Case& c : {Case{"magic", 0, "NOTALEDG", "bad magic"},
                        Case{"version", 8, std::string("\x07\0\0\0", 4), "format version 7"},
                        Case{"capacity", 20, std::string("\x00\x01\0\0", 4), "header checksum mismatch"}}) {
    TempDir dir;
    LedgerOptions o = Options(dir);
    {
      auto l = OpenOk(o);
      ASSERT_TRUE(l->Add("acme", Meter::kQueries, 5, kT0));
    }
    Overwrite(o.path, c.offset, c.bytes);
    auto r = ReadUsageLedger(o.path);
    ASSERT_FALSE(r.ok()) << c.name;
    EXPECT_NE(r.status().message().find("damaged"), std::string::npos) << r.status().message();
    EXPECT_NE(r.status().message().find(c.expect), std::string::npos) << r.status().message();
  }
  TempDir dir;
  std::string path = dir.File("usage.ledger");
  { std::ofstream(path) << "short"; }
  auto r = ReadUsageLedger(path);
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.status().message().find("shorter than its header"), std::string::npos) << r.status().message();
}

TEST(UsageReaderTest, AMissingFileIsAClearError) {
  TempDir dir;
  auto r = ReadUsageLedger(LedgerPathIn(dir.File("state")));
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.status().message().find("no billing ledger at"), std::string::npos) << r.status().message();
  EXPECT_NE(r.status().message().find(dir.File("state/usage.ledger")), std::string::npos) << r.status().message();
  EXPECT_EQ(LedgerPathIn("/var/lib/pgtenant/"), "/var/lib/pgtenant/usage.ledger");
  EXPECT_EQ(LedgerPathIn("state"), "state/usage.ledger");
}

}  // namespace
}  // namespace pgtenant::billing
