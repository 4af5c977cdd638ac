#include "billing/usage_ledger.h"

#include <fcntl.h>
#include <sys/file.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <bit>
#include <cerrno>
#include <cstddef>
#include <cstring>

#include "billing/usage_ledger_format.h"
#include "billing/window.h"

namespace pgtenant::billing {

using namespace ledger_format;  // NOLINT: the format's own names

std::string_view RecordStateName(RecordState s) {
  switch (s) {
    case RecordState::kFree: return "free";
    case RecordState::kOpen: return "open";
    case RecordState::kClosed: return "closed";
    case RecordState::kSending: return "sending";
    case RecordState::kDelivered: return "delivered";
    case RecordState::kFailed: return "failed";
    case RecordState::kExpired: return "expired";
    case RecordState::kUnbilled: return "unbilled";
    case RecordState::kCorrupt: return "corrupt";
  }
  return "unknown";
}

uint64_t UsageLedger::Capacity(uint32_t segments) const {
  return ledger_format::Capacity(segment0_records_, segments);
}

UsageLedger::Record* UsageLedger::At(uint64_t slot) const {
  SlotPosition p = PositionOf(slot, segment0_records_);
  char* base = segments_[p.segment].load(std::memory_order_acquire);
  return reinterpret_cast<Record*>(base + p.index * record_size_);
}

Status UsageLedger::MapSegment(uint32_t k) {
  size_t bytes = size_t{segment0_records_} * record_size_ << k;
  off_t offset = kHeaderSize + static_cast<off_t>(Capacity(k)) * record_size_;
  void* p = mmap(nullptr, bytes, PROT_READ | PROT_WRITE, MAP_SHARED, fd_, offset);
  if (p == MAP_FAILED) return IoError("mmap", path_);
  segments_[k].store(static_cast<char*>(p), std::memory_order_release);
  mapped_segments_.store(k + 1, std::memory_order_release);
  return Status::Ok();
}

Status UsageLedger::Map(uint32_t segments) {
  void* h = mmap(nullptr, kHeaderSize, PROT_READ | PROT_WRITE, MAP_SHARED, fd_, 0);
  if (h == MAP_FAILED) return IoError("mmap", path_);
  header_ = static_cast<FileHeader*>(h);
  for (uint32_t k = 0; k < segments; ++k) {
    Status s = MapSegment(k);
    if (!s.ok()) return s;
  }
  return Status::Ok();
}

Status UsageLedger::Grow() {
  uint32_t k = mapped_segments_.load(std::memory_order_relaxed);
  if (k >= kMaxSegments) return Status::Error("53100", "billing ledger is full");
  off_t offset = kHeaderSize + static_cast<off_t>(Capacity(k)) * record_size_;
  off_t bytes = static_cast<off_t>(segment0_records_) * record_size_ << k;
  // Allocated, not just truncated: a store into a hole of a full disk would be SIGBUS.
  int err = posix_fallocate(fd_, offset, bytes);
  if (err != 0) {
    errno = err;
    return IoError("cannot grow", path_);
  }
  Status s = MapSegment(k);
  if (!s.ok()) return s;
  Atomic(header_->segments).store(k + 1, std::memory_order_release);
  return Status::Ok();
}

RecordView UsageLedger::View(uint64_t slot, const Record* r) const {
  RecordView v;
  v.slot = slot;
  v.tenant.assign(TenantOf(r), r->tenant_len);
  v.meter = static_cast<Meter>(r->meter);
  v.window_start = r->window_start;
  v.window_seconds = r->window_seconds;
  v.value = Atomic(r->value).load(std::memory_order_relaxed);
  v.state = LoadState(r);
  v.attempts = r->attempts;
  v.state_changed_at = Atomic(r->state_changed_at).load(std::memory_order_relaxed);
  return v;
}

UsageLedger::~UsageLedger() {
  uint32_t n = mapped_segments_.load();
  for (uint32_t k = 0; k < n; ++k) {
    munmap(segments_[k].load(), size_t{segment0_records_} * record_size_ << k);
  }
  if (header_ != nullptr) munmap(header_, kHeaderSize);
  if (fd_ >= 0) close(fd_);  // also releases the flock
}

// ---- owner thread -------------------------------------------------------------------------

bool UsageLedger::Add(std::string_view tenant, Meter meter, uint64_t amount, int64_t now) {
  if (amount == 0) return true;
  int64_t start = WindowStart(now, window_seconds_);
  Index& index = index_[static_cast<size_t>(meter)];
  auto it = index.find(tenant);
  if (it != index.end()) {
    Record* r = At(it->second);
    // Also taken when the clock went back: the amount joins the newest open window.
    if (start <= r->window_start) {
      // The owner is the only writer, so load + store needs no locked instruction; the atomic
      // store keeps concurrent readers (Snapshot) from seeing a torn value.
      auto value = Atomic(r->value);
      value.store(value.load(std::memory_order_relaxed) + amount, std::memory_order_relaxed);
      return true;
    }
  }
  return AddSlow(tenant, meter, amount, start, now);
}

bool UsageLedger::AddSlow(std::string_view tenant, Meter meter, uint64_t amount, int64_t start,
                          int64_t now) {
  if (tenant.empty() || tenant.size() > tenant_capacity_) {
    rejected_.fetch_add(1, std::memory_order_relaxed);
    return false;
  }
  // Never (re)open a window Stripe may already have: it would reuse a delivered identifier.
  int64_t closed_before = Atomic(header_->closed_before).load(std::memory_order_relaxed);
  if (start < closed_before) start = closed_before;

  uint64_t slot;
  std::unique_lock<std::mutex> reuse_lock(reuse_mu_, std::defer_lock);
  if (!free_slots_.empty()) {
    reuse_lock.lock();  // Snapshot() may be reading the identity this slot had
    slot = free_slots_.back();
    free_slots_.pop_back();
  } else {
    uint64_t used = Atomic(header_->used).load(std::memory_order_relaxed);
    if (used == Capacity(mapped_segments_.load(std::memory_order_relaxed)) && !Grow().ok()) {
      rejected_.fetch_add(1, std::memory_order_relaxed);
      return false;
    }
    slot = used;
    // Counted before the record is written: a crash in between leaves a free slot below `used`,
    // which Open() reuses, rather than a written record above it.
    Atomic(header_->used).store(used + 1, std::memory_order_release);
  }
  Record* r = At(slot);
  r->attempts = 0;
  Atomic(r->value).store(amount, std::memory_order_relaxed);
  r->window_start = start;
  Atomic(r->state_changed_at).store(now, std::memory_order_relaxed);
  r->window_seconds = static_cast<uint32_t>(window_seconds_);
  r->meter = static_cast<uint8_t>(meter);
  r->tenant_len = static_cast<uint16_t>(tenant.size());
  std::memcpy(TenantOf(r), tenant.data(), tenant.size());
  r->identity_check = IdentityCheck(r);
  StoreState(r, RecordState::kOpen);  // publishes the identity above
  open_slots_.push_back(slot);
  index_[static_cast<size_t>(meter)].insert_or_assign(std::string(tenant), slot);
  return true;
}

size_t UsageLedger::CloseWindowsBefore(int64_t now) {
  size_t closed = 0;
  int64_t boundary = Atomic(header_->closed_before).load(std::memory_order_relaxed);
  for (size_t i = 0; i < open_slots_.size();) {
    uint64_t slot = open_slots_[i];
    Record* r = At(slot);
    int64_t end = WindowEnd(r->window_start, r->window_seconds);
    if (end > now) {
      ++i;
      continue;
    }
    Atomic(r->state_changed_at).store(now, std::memory_order_relaxed);
    StoreState(r, RecordState::kClosed);  // the value's last store happens-before the sender's read
    if (end > boundary) boundary = end;
    Index& index = index_[r->meter];
    auto it = index.find(std::string_view(TenantOf(r), r->tenant_len));
    if (it != index.end() && it->second == slot) index.erase(it);
    open_slots_[i] = open_slots_.back();
    open_slots_.pop_back();
    ++closed;
  }
  if (closed > 0) {
    Atomic(header_->closed_before).store(boundary, std::memory_order_relaxed);
    close_generation_.fetch_add(1, std::memory_order_acq_rel);
  }
  return closed;
}

size_t UsageLedger::Compact(int64_t now, int64_t keep_seconds) {
  std::lock_guard<std::mutex> lock(reuse_mu_);
  size_t freed = 0;
  uint64_t used = Atomic(header_->used).load(std::memory_order_relaxed);
  for (uint64_t slot = 0; slot < used; ++slot) {
    Record* r = At(slot);
    RecordState s = LoadState(r);
    bool finished = s == RecordState::kDelivered || s == RecordState::kFailed ||
                    s == RecordState::kExpired || s == RecordState::kUnbilled;
    if (!finished || Atomic(r->state_changed_at).load(std::memory_order_relaxed) + keep_seconds > now) {
      continue;
    }
    StoreState(r, RecordState::kFree);
    free_slots_.push_back(slot);
    ++freed;
  }
  return freed;
}

// ---- sender thread ------------------------------------------------------------------------

void UsageLedger::ForEachSendable(const std::function<void(const RecordView&)>& fn) const {
  uint64_t used = Atomic(header_->used).load(std::memory_order_acquire);
  for (uint64_t slot = 0; slot < used; ++slot) {
    const Record* r = At(slot);
    RecordState s = LoadState(r);
    // Only closed and sending records are read: no one but the sender changes those, so their
    // identity cannot be rewritten under us (a freed slot is reused only from kFree).
    if (s == RecordState::kClosed || s == RecordState::kSending) fn(View(slot, r));
  }
}

RecordView UsageLedger::Read(uint64_t slot) const { return View(slot, At(slot)); }

void UsageLedger::SetState(uint64_t slot, RecordState state, int64_t now, uint32_t attempts) {
  Record* r = At(slot);
  r->attempts = attempts;
  Atomic(r->state_changed_at).store(now, std::memory_order_relaxed);
  StoreState(r, state);
}

// ---- any thread ---------------------------------------------------------------------------

Status UsageLedger::Sync() {
  uint32_t n = mapped_segments_.load(std::memory_order_acquire);
  for (uint32_t k = 0; k < n; ++k) {
    char* base = segments_[k].load(std::memory_order_acquire);
    if (msync(base, size_t{segment0_records_} * record_size_ << k, MS_SYNC) != 0) {
      return IoError("msync", path_);
    }
  }
  if (msync(header_, kHeaderSize, MS_SYNC) != 0) return IoError("msync", path_);
  // msync writes the pages; fsync also makes the file's size (after a Grow) durable.
  if (fsync(fd_) != 0) return IoError("fsync", path_);
  return Status::Ok();
}

std::vector<RecordView> UsageLedger::Snapshot() const {
  std::lock_guard<std::mutex> lock(reuse_mu_);
  std::vector<RecordView> out;
  uint64_t used = Atomic(header_->used).load(std::memory_order_acquire);
  for (uint64_t slot = 0; slot < used; ++slot) {
    const Record* r = At(slot);
    if (LoadState(r) != RecordState::kFree) out.push_back(View(slot, r));
  }
  return out;
}

}  // namespace pgtenant::billing
