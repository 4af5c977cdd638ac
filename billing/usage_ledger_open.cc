// UsageLedger::Open: creating a ledger file, or checking an existing one and resuming it
// (billing/usage_ledger.h). Kept apart from the hot path in usage_ledger_ops.cc.
#include <fcntl.h>
#include <sys/file.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <bit>
#include <cerrno>
#include <cstddef>
#include <cstring>

#include "billing/usage_ledger.h"
#include "billing/usage_ledger_format.h"

namespace pgtenant::billing {

using namespace ledger_format;  // NOLINT: the format's own names

namespace {

Status CreateFile(int fd, const std::string& path, const LedgerOptions& o, uint32_t record_size) {
  FileHeader h{};
  std::memcpy(h.magic, kMagic, sizeof kMagic);
  h.version = kVersion;
  h.header_size = kHeaderSize;
  h.record_size = record_size;
  h.tenant_capacity = o.tenant_capacity;
  h.segment0_records = o.segment0_records;
  h.header_check = HeaderCheck(h);
  h.segments = 1;
  char page[kHeaderSize] = {};
  std::memcpy(page, &h, sizeof h);
  if (pwrite(fd, page, sizeof page, 0) != static_cast<ssize_t>(sizeof page)) {
    return IoError("cannot write", path);
  }
  int err = posix_fallocate(fd, kHeaderSize, off_t{o.segment0_records} * record_size);
  if (err != 0) {
    errno = err;
    return IoError("cannot allocate", path);
  }
  if (fsync(fd) != 0) return IoError("fsync", path);
  // The file's directory entry must be durable too, or a machine crash could lose the file.
  std::string dir = path.substr(0, path.find_last_of('/') == std::string::npos ? 0 : path.find_last_of('/'));
  int dfd = open(dir.empty() ? "." : dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dfd >= 0) {
    fsync(dfd);
    close(dfd);
  }
  return Status::Ok();
}

}  // namespace

Result<std::unique_ptr<UsageLedger>> UsageLedger::Open(const LedgerOptions& o, OpenReport* report) {
  OpenReport ignored;
  if (report == nullptr) report = &ignored;
  *report = OpenReport{};
  if (o.tenant_capacity == 0 || o.tenant_capacity > kMaxTenantCapacity || o.window_seconds <= 0 ||
      o.segment0_records < 32 || !std::has_single_bit(o.segment0_records)) {
    return Status::InvalidParameter("billing ledger options out of range");
  }
  std::unique_ptr<UsageLedger> l(new UsageLedger());
  l->path_ = o.path;
  l->window_seconds_ = o.window_seconds;
  l->fd_ = open(o.path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0600);
  if (l->fd_ < 0) return IoError("cannot open", o.path);
  // Two processes adding to one ledger would corrupt each other's records.
  if (flock(l->fd_, LOCK_EX | LOCK_NB) != 0) {
    return IoError("billing ledger is in use by another process:", o.path);
  }
  struct stat st {};
  if (fstat(l->fd_, &st) != 0) return IoError("fstat", o.path);
  if (st.st_size == 0) {
    Status s = CreateFile(l->fd_, o.path, o, RecordSizeFor(o.tenant_capacity));
    if (!s.ok()) return s;
    report->created = true;
    st.st_size = kHeaderSize + off_t{o.segment0_records} * RecordSizeFor(o.tenant_capacity);
  }
  if (st.st_size < static_cast<off_t>(kHeaderSize)) return Corrupt(o.path, "shorter than its header");

  FileHeader h{};
  if (pread(l->fd_, &h, sizeof h, 0) != static_cast<ssize_t>(sizeof h)) return IoError("cannot read", o.path);
  static_assert(ledger_format::kMaxSegments == UsageLedger::kMaxSegments);
  Status checked = CheckHeader(h, o.path);
  if (!checked.ok()) return checked;
  l->tenant_capacity_ = h.tenant_capacity;
  l->record_size_ = h.record_size;
  l->segment0_records_ = h.segment0_records;
  if (h.tenant_capacity != o.tenant_capacity) {
    std::string w = "billing ledger ";
    w.append(o.path).append(" holds tenant ids up to ").append(std::to_string(h.tenant_capacity));
    report->warnings.push_back(w.append(" bytes (fixed when it was created)"));
  }

  // The segments the file really holds: a machine crash can leave the header ahead of the size.
  uint32_t segments = SegmentsHeld(h, h.segments, st.st_size);
  if (segments == 0) return Corrupt(o.path, "truncated inside its first segment");
  if (h.used > l->Capacity(segments)) {
    std::string what = "truncated: ";
    what.append(std::to_string(h.used)).append(" records in use, room for ");
    what.append(std::to_string(l->Capacity(segments)));
    return Corrupt(o.path, what);
  }
  if (segments != h.segments) {
    std::string w = "billing ledger ";
    w.append(o.path).append(": header named more segments than the file holds; using ");
    report->warnings.push_back(w.append(std::to_string(segments)));
  }
  Status s = l->Map(segments);
  if (!s.ok()) return s;
  Atomic(l->header_->segments).store(segments, std::memory_order_relaxed);
  l->Scan(report);
  return l;
}

// Rebuilds the owner's index and lists from the file and marks records that fail their check.
void UsageLedger::Scan(OpenReport* report) {
  uint64_t used = Atomic(header_->used).load(std::memory_order_relaxed);
  for (uint64_t slot = 0; slot < used; ++slot) {
    Record* r = At(slot);
    RecordState state = LoadState(r);
    if (state == RecordState::kFree) {
      free_slots_.push_back(slot);
      continue;
    }
    bool sane = static_cast<uint32_t>(state) <= static_cast<uint32_t>(RecordState::kCorrupt) &&
                r->tenant_len > 0 && r->tenant_len <= tenant_capacity_ && r->meter < kMeterCount &&
                r->window_seconds > 0 && r->identity_check == IdentityCheck(r);
    if (state == RecordState::kCorrupt || !sane) {
      if (state != RecordState::kCorrupt && report->corrupt < kMaxCorruptWarnings) {
        std::string w = "billing ledger ";
        w.append(path_).append(": record ").append(std::to_string(slot));
        report->warnings.push_back(w.append(" fails its checksum (torn write?); it will not be sent"));
      }
      StoreState(r, RecordState::kCorrupt);
      ++report->corrupt;
      continue;
    }
    ++report->records;
    if (state == RecordState::kOpen) {
      ++report->open;
      open_slots_.push_back(slot);
      Index& index = index_[r->meter];
      std::string_view tenant(TenantOf(r), r->tenant_len);
      auto it = index.find(tenant);
      if (it == index.end()) {
        index.emplace(std::string(tenant), slot);
      } else if (At(it->second)->window_start < r->window_start) {
        it->second = slot;
      }
    } else if (state == RecordState::kClosed || state == RecordState::kSending) {
      ++report->pending;
    }
  }
  if (report->corrupt > kMaxCorruptWarnings) {
    std::string w = "billing ledger ";
    w.append(path_).append(": ").append(std::to_string(report->corrupt));
    report->warnings.push_back(w.append(" records fail their checksum in all"));
  }
}

}  // namespace pgtenant::billing
