#include "billing/usage_reader.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstddef>
#include <cstring>
#include <utility>
#include <vector>

#include "billing/usage_ledger_format.h"

namespace pgtenant::billing {

using namespace ledger_format;  // NOLINT: the format's own names

namespace {

// The descriptor and the read-only mappings of one read, released however it ends.
class Mapped {
 public:
  Mapped() = default;
  Mapped(const Mapped&) = delete;
  Mapped& operator=(const Mapped&) = delete;
  ~Mapped() {
    for (const auto& [p, n] : maps_) munmap(p, n);
    if (fd >= 0) close(fd);
  }
  // nullptr (errno set) on failure.
  const char* Map(size_t bytes, off_t offset) {
    void* p = mmap(nullptr, bytes, PROT_READ, MAP_SHARED, fd, offset);
    if (p == MAP_FAILED) return nullptr;
    maps_.emplace_back(p, bytes);
    return static_cast<const char*>(p);
  }
  int fd = -1;

 private:
  std::vector<std::pair<void*, size_t>> maps_;
};

// One attempt at copying the record at `r`. Returns its state; fills `*view` and `*sane`.
RecordState CopyRecord(const Record* r, uint32_t tenant_capacity, uint64_t* scratch, RecordView* view,
                       bool* sane) {
  RecordState state = LoadState(r);  // acquire: the identity and value stored before it are visible
  *sane = false;
  if (state == RecordState::kFree || state == RecordState::kCorrupt) return state;
  // The identity into aligned scratch memory, then checked there: what is checked is what is kept.
  std::memcpy(scratch, r, sizeof(Record));
  auto* copy = reinterpret_cast<Record*>(scratch);
  if (copy->tenant_len == 0 || copy->tenant_len > tenant_capacity) return state;
  std::memcpy(TenantOf(copy), TenantOf(r), copy->tenant_len);
  *sane = static_cast<uint32_t>(state) < static_cast<uint32_t>(RecordState::kCorrupt) &&
          copy->meter < kMeterCount && copy->window_seconds > 0 &&
          copy->identity_check == IdentityCheck(copy);
  if (!*sane) return state;
  view->tenant.assign(TenantOf(copy), copy->tenant_len);
  view->meter = static_cast<Meter>(copy->meter);
  view->window_start = copy->window_start;
  view->window_seconds = copy->window_seconds;
  // Relaxed, as UsageLedger::View: an open window's value may be a moment old.
  view->value = Atomic(r->value).load(std::memory_order_relaxed);
  view->state = state;
  view->attempts = Atomic(r->attempts).load(std::memory_order_relaxed);
  view->state_changed_at = Atomic(r->state_changed_at).load(std::memory_order_relaxed);
  return state;
}

}  // namespace

std::string LedgerPathIn(const std::string& state_dir) {
  std::string path = state_dir;
  if (!path.empty() && path.back() != '/') path.push_back('/');
  return path.append(kLedgerFileName);
}

Result<LedgerContents> ReadUsageLedger(const std::string& path) {
  Mapped m;
  m.fd = open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (m.fd < 0) {
    if (errno == ENOENT) {
      std::string msg = "no billing ledger at ";
      msg.append(path).append(" (pgtenant creates it when it starts with billing.state_dir set)");
      return Status::Error("58P01", std::move(msg));
    }
    return IoError("cannot open", path);
  }
  struct stat st {};
  if (fstat(m.fd, &st) != 0) return IoError("fstat", path);
  if (st.st_size < static_cast<off_t>(kHeaderSize)) return Corrupt(path, "shorter than its header");
  const char* page = m.Map(kHeaderSize, 0);
  if (page == nullptr) return IoError("mmap", path);
  const auto* live = reinterpret_cast<const FileHeader*>(page);

  // The fixed fields never change once the file is created; the mutable ones are loaded below.
  FileHeader h{};
  std::memcpy(&h, page, offsetof(FileHeader, segments));
  // `used` before `segments` (both acquire): the owner grows the file, then publishes the new
  // segment count, then hands out slots in it, so the segments read cover the slots read.
  uint64_t used = Atomic(live->used).load(std::memory_order_acquire);
  h.segments = Atomic(live->segments).load(std::memory_order_acquire);
  h.used = used;
  Status checked = CheckHeader(h, path);
  if (!checked.ok()) return checked;
  if (fstat(m.fd, &st) != 0) return IoError("fstat", path);  // the size after those loads
  uint32_t segments = SegmentsHeld(h, h.segments, st.st_size);
  if (segments == 0) return Corrupt(path, "truncated inside its first segment");
  if (used > Capacity(h.segment0_records, segments)) {
    std::string what = "truncated: ";
    what.append(std::to_string(used)).append(" records in use, room for ");
    what.append(std::to_string(Capacity(h.segment0_records, segments)));
    return Corrupt(path, what);
  }

  const char* bases[kMaxSegments] = {};
  for (uint32_t k = 0; k < segments; ++k) {
    size_t bytes = size_t{h.segment0_records} * h.record_size << k;
    off_t offset = kHeaderSize + static_cast<off_t>(Capacity(h.segment0_records, k)) * h.record_size;
    bases[k] = m.Map(bytes, offset);
    if (bases[k] == nullptr) return IoError("mmap", path);
  }

  LedgerContents out;
  out.tenant_capacity = h.tenant_capacity;
  std::vector<uint64_t> scratch((h.record_size + sizeof(uint64_t) - 1) / sizeof(uint64_t));
  for (uint64_t slot = 0; slot < used; ++slot) {
    SlotPosition p = PositionOf(slot, h.segment0_records);
    const auto* r = reinterpret_cast<const Record*>(bases[p.segment] + p.index * h.record_size);
    // A finished record pgtenant frees and reuses while we copy it changes state under us (or
    // fails its check): read it again. Torn for good, it stays insane with a steady state.
    RecordView view;
    view.slot = slot;
    bool sane = false;
    RecordState state = RecordState::kFree;
    for (int attempt = 0; attempt < 3; ++attempt) {
      state = CopyRecord(r, h.tenant_capacity, scratch.data(), &view, &sane);
      std::atomic_thread_fence(std::memory_order_acquire);
      if (LoadState(r) == state) break;
    }
    if (state == RecordState::kFree) continue;
    if (!sane) {
      ++out.corrupt;
      continue;
    }
    out.records.push_back(std::move(view));
  }
  return out;
}

}  // namespace pgtenant::billing
