// UsageLedger: per-(tenant, meter, window) usage counts in a memory-mapped file
// (billing.state_dir), kept until Stripe has acknowledged them (issue 17). docs/billing.md
// describes the format and the guarantees.
//
// Durability. Counts live in MAP_SHARED pages of the file, so the kernel holds every Add() as
// soon as it returns: a SIGKILL (or any crash of pgtenant alone) loses nothing. A machine crash
// (power, kernel) loses what was added since the last Sync(): the sender calls Sync() before it
// sends a newly closed window and every `sync_interval` (billing/sender.h), and the kernel
// writes dirty pages back on its own after about 30 s (vm.dirty_expire_centisecs).
//
// File format (version 1), little-endian, native layout:
//   page 0: FileHeader (magic "PGTUSAGE", version, record size, tenant capacity, segment size,
//           a checksum of those, then the mutable: segments, used slots, closed_before)
//   then segments 0..n-1; segment k holds segment0_records << k records of record_size bytes.
// Each record: state, attempts, value, window start and length, meter, tenant (length +
// bytes) and a checksum of its identity (window, meter, tenant), written before the record is
// published by its state. A record whose checksum fails (a torn write after a machine crash, a
// damaged file) is marked corrupt, reported by Open() and never sent. A damaged header is an
// error from Open(): pgtenant does not guess at billing data.
//
// Threads. Two roles, each a single thread:
//  - the OWNER (the proxy's event loop) calls Add(), CloseWindowsBefore(), Compact(); it alone
//    writes open records, creates records and frees them.
//  - the SENDER (billing/sender.h) calls ForEachSendable(), Read() and SetState() on records
//    that are closed and not yet finished; once closed, a record's identity and value never
//    change, and only its state (an atomic), attempts and state time change.
// Sync(), Snapshot(), stats and the const accessors may be called from any thread. Add() takes
// no lock and makes no syscall; a lock (reuse_mu_) is taken only to create a record in a freed
// slot, by Compact() and by Snapshot(), which reads identities of records Compact() may free.
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "billing/meter.h"
#include "protocol/status.h"

namespace pgtenant::billing {

struct FileHeader;  // billing/usage_ledger_format.h

// A record's state. Stored as a 32-bit atomic in the file; values are part of the format.
enum class RecordState : uint32_t {
  kFree = 0,       // never used, or compacted
  kOpen = 1,       // the owner adds to it
  kClosed = 2,     // window over, immutable, waiting for the sender
  kSending = 3,    // a request may be on its way (after a crash: sent again, same identifier)
  kDelivered = 4,  // Stripe acknowledged it (or already had its identifier)
  kFailed = 5,     // Stripe refused it for good; written to the dead-letter file
  kExpired = 6,    // older than Stripe accepts; written to the dead-letter file
  kUnbilled = 7,   // the tenant has no Stripe customer (or the meter no event name): kept, never sent
  kCorrupt = 8,    // failed its checksum at Open(); never sent
};
std::string_view RecordStateName(RecordState s);

// The longest tenant id a ledger can be created for: routing/tenant_validator.h's
// kMaxTenantIdLength (ids longer than that never match tenancy.id_pattern).
inline constexpr uint32_t kMaxTenantCapacity = 1024;

struct LedgerOptions {
  std::string path;  // the file, e.g. <billing.state_dir>/usage.ledger
  // The longest tenant id to hold: the default tenancy.id_pattern allows 63 bytes. Fixed when the
  // file is created (an existing file keeps its own); Add() refuses longer ids.
  uint32_t tenant_capacity = 63;
  int64_t window_seconds = 3600;  // for new records; every record stores its own length
  uint32_t segment0_records = 1024;  // a power of two >= 32; later segments double
};

struct OpenReport {
  bool created = false;
  uint64_t records = 0;          // slots in use (not free)
  uint64_t open = 0;             // resumed open windows
  uint64_t pending = 0;          // closed or sending: to send
  uint64_t corrupt = 0;          // records that failed their checksum, now kCorrupt
  std::vector<std::string> warnings;  // for the log
};

// A copy of one record, for the sender, SHOW USAGE and exports.
struct RecordView {
  uint64_t slot = 0;
  std::string tenant;
  Meter meter = Meter::kQueries;
  int64_t window_start = 0;
  uint32_t window_seconds = 0;
  uint64_t value = 0;  // in the meter's counting unit (billing/meter.h)
  RecordState state = RecordState::kFree;
  uint32_t attempts = 0;
  int64_t state_changed_at = 0;  // Unix seconds
};

class UsageLedger {
 public:
  // Opens or creates the file. Errors: the directory or file cannot be used, the file is not a
  // ledger, has another version, or its header is damaged (the message says which and where).
  static Result<std::unique_ptr<UsageLedger>> Open(const LedgerOptions& options, OpenReport* report);
  ~UsageLedger();  // unmaps; makes nothing durable by itself (call Sync() first)
  UsageLedger(const UsageLedger&) = delete;
  UsageLedger& operator=(const UsageLedger&) = delete;

  // ---- owner thread ----
  // Adds `amount` to (tenant, meter)'s window holding `now` (Unix seconds). Amounts for a window
  // that is already closed (the clock went back) go to the oldest window still open, so nothing
  // is dropped or counted in a window Stripe already has. False (and counted in rejected())
  // when the tenant id is longer than tenant_capacity or the file cannot grow (disk full).
  bool Add(std::string_view tenant, Meter meter, uint64_t amount, int64_t now);
  // Closes every open window that ended at or before `now`; returns how many. No syscall: the
  // closed records become durable at the sender's next Sync().
  size_t CloseWindowsBefore(int64_t now);
  // Frees finished records (delivered, failed, expired, unbilled) whose state changed more than
  // `keep_seconds` before `now`, for reuse. Returns how many.
  size_t Compact(int64_t now, int64_t keep_seconds);

  // ---- sender thread ----
  // Calls fn for every closed or sending record, in slot order.
  void ForEachSendable(const std::function<void(const RecordView&)>& fn) const;
  // REQUIRES: `slot` is closed or sending (so the owner cannot change it).
  RecordView Read(uint64_t slot) const;
  // REQUIRES: `slot` is closed or sending. Records the new state, its time and the attempts.
  void SetState(uint64_t slot, RecordState state, int64_t now, uint32_t attempts);

  // ---- any thread ----
  Status Sync();  // msync(MS_SYNC) of every mapped page, then fsync
  std::vector<RecordView> Snapshot() const;  // every used record
  // Bumped by CloseWindowsBefore() when it closed something: the sender's cue to rescan.
  uint64_t close_generation() const { return close_generation_.load(std::memory_order_acquire); }
  uint64_t rejected() const { return rejected_.load(std::memory_order_relaxed); }
  uint32_t tenant_capacity() const { return tenant_capacity_; }
  int64_t window_seconds() const { return window_seconds_; }
  const std::string& path() const { return path_; }

  struct Record;  // the on-disk record (usage_ledger.cc)

 private:
  UsageLedger() = default;
  Status Map(uint32_t segments);
  Status MapSegment(uint32_t k);
  Status Grow();
  void Scan(OpenReport* report);
  Record* At(uint64_t slot) const;
  bool AddSlow(std::string_view tenant, Meter meter, uint64_t amount, int64_t start, int64_t now);
  uint64_t Capacity(uint32_t segments) const;
  RecordView View(uint64_t slot, const Record* r) const;

  struct TenantHash {
    using is_transparent = void;
    size_t operator()(std::string_view s) const { return std::hash<std::string_view>{}(s); }
  };
  using Index = std::unordered_map<std::string, uint64_t, TenantHash, std::equal_to<>>;

  std::string path_;
  int fd_ = -1;
  int64_t window_seconds_ = 3600;
  uint32_t tenant_capacity_ = 0;
  uint32_t record_size_ = 0;
  uint32_t segment0_records_ = 0;
  FileHeader* header_ = nullptr;  // page 0, mapped
  static constexpr uint32_t kMaxSegments = 32;
  // Published with release after the segment is mapped; readers load with acquire.
  std::atomic<char*> segments_[kMaxSegments] = {};
  std::atomic<uint32_t> mapped_segments_{0};

  // Owner-only: the newest open record per (meter, tenant), every open slot, freed slots.
  Index index_[kMeterCount];
  std::vector<uint64_t> open_slots_;
  std::vector<uint64_t> free_slots_;
  mutable std::mutex reuse_mu_;

  std::atomic<uint64_t> close_generation_{0};
  std::atomic<uint64_t> rejected_{0};
};

}  // namespace pgtenant::billing
