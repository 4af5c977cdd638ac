// The on-disk layout of the usage ledger (billing/usage_ledger.h, format version 1) and the
// helpers its writer (billing/usage_ledger*.cc) and its read-only reader
// (billing/usage_reader.cc) share. Internal to billing/.
#pragma once

#include <atomic>
#include <bit>
#include <cerrno>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <string>

#include "billing/usage_ledger.h"

namespace pgtenant::billing {

struct FileHeader {
  char magic[8];
  uint32_t version;
  uint32_t header_size;
  uint32_t record_size;
  uint32_t tenant_capacity;
  uint32_t segment0_records;
  uint32_t header_check;  // FNV-1a over the fields above
  // Mutable (atomic_ref): segments the file is sized for, slots handed out, and the end of the
  // newest closed window (Add() never opens a window before it).
  uint32_t segments;
  uint32_t reserved;
  uint64_t used;
  int64_t closed_before;
};
static_assert(offsetof(FileHeader, segments) == 32 && sizeof(FileHeader) == 56);

struct UsageLedger::Record {
  uint32_t state;             // atomic_ref; RecordState
  uint32_t attempts;          // sender-owned
  uint64_t value;             // atomic_ref; written by the owner while open
  int64_t window_start;       // identity: written before the record is published
  int64_t state_changed_at;   // atomic_ref
  uint32_t window_seconds;    // identity
  uint32_t identity_check;    // FNV-1a over the identity fields and the tenant bytes
  uint8_t meter;              // identity
  uint8_t reserved8;
  uint16_t tenant_len;        // identity
  uint32_t reserved32;
  // tenant_capacity bytes of tenant id follow
};
static_assert(sizeof(UsageLedger::Record) == 48);

namespace ledger_format {

using Record = UsageLedger::Record;

inline constexpr char kMagic[8] = {'P', 'G', 'T', 'U', 'S', 'A', 'G', 'E'};
inline constexpr uint32_t kVersion = 1;
inline constexpr uint32_t kHeaderSize = 4096;  // one page, so segments start page-aligned for mmap
inline constexpr size_t kMaxCorruptWarnings = 5;
inline constexpr uint32_t kMaxSegments = 32;  // segment k holds segment0_records << k records

inline uint32_t Fnv(const void* data, size_t n, uint32_t h = 2166136261u) {
  const auto* p = static_cast<const unsigned char*>(data);
  for (size_t i = 0; i < n; ++i) h = (h ^ p[i]) * 16777619u;
  return h;
}

inline uint32_t HeaderCheck(const FileHeader& h) { return Fnv(&h, offsetof(FileHeader, header_check)); }

inline char* TenantOf(Record* r) { return reinterpret_cast<char*>(r) + sizeof(Record); }
inline const char* TenantOf(const Record* r) { return reinterpret_cast<const char*>(r) + sizeof(Record); }

inline uint32_t IdentityCheck(const Record* r) {
  uint32_t h = Fnv(&r->window_start, sizeof r->window_start);
  h = Fnv(&r->window_seconds, sizeof r->window_seconds, h);
  h = Fnv(&r->meter, sizeof r->meter, h);
  h = Fnv(&r->tenant_len, sizeof r->tenant_len, h);
  return Fnv(TenantOf(r), r->tenant_len, h);
}

// Fields shared between threads are plain integers in the mapped file, accessed through
// atomic_ref: the file's layout cannot hold std::atomic objects portably.
template <typename T>
std::atomic_ref<T> Atomic(const T& field) { return std::atomic_ref<T>(const_cast<T&>(field)); }

inline RecordState LoadState(const Record* r) {
  return static_cast<RecordState>(Atomic(r->state).load(std::memory_order_acquire));
}
inline void StoreState(Record* r, RecordState s) {
  Atomic(r->state).store(static_cast<uint32_t>(s), std::memory_order_release);
}

// The records segments 0..segments-1 hold together.
inline uint64_t Capacity(uint32_t segment0_records, uint32_t segments) {
  return uint64_t{segment0_records} * ((uint64_t{1} << segments) - 1);
}

// Where slot `slot` lives: its segment and its index in that segment.
struct SlotPosition {
  uint32_t segment;
  uint64_t index;
};
inline SlotPosition PositionOf(uint64_t slot, uint32_t segment0_records) {
  uint64_t q = slot / segment0_records + 1;
  uint32_t k = static_cast<uint32_t>(std::bit_width(q) - 1);
  return {k, slot - Capacity(segment0_records, k)};
}

// A power of two, so a record never straddles a page: a page is what a machine crash tears.
inline uint32_t RecordSizeFor(uint32_t tenant_capacity) {
  uint32_t size = 128;
  while (size < sizeof(Record) + tenant_capacity) size *= 2;
  return size;
}

inline Status IoError(const std::string& what, const std::string& path) {
  std::string m = what;
  m.append(" ").append(path).append(": ").append(std::strerror(errno));
  return Status::Error("58030", std::move(m));
}

inline Status Corrupt(const std::string& path, const std::string& what) {
  std::string m = "billing ledger ";
  m.append(path).append(" is damaged: ").append(what);
  m.append(" (move it aside to start a new ledger; its unsent usage is then not billed)");
  return Status::Error("XX001", std::move(m));
}

// The checks of a header read from `path` that both Open() and ReadUsageLedger() make: magic,
// version, checksum and the ranges of the fixed fields (and of `segments`).
inline Status CheckHeader(const FileHeader& h, const std::string& path) {
  if (std::memcmp(h.magic, kMagic, sizeof kMagic) != 0) return Corrupt(path, "not a ledger (bad magic)");
  if (h.version != kVersion) {
    std::string what = "format version ";
    what.append(std::to_string(h.version)).append(", this pgtenant reads 1");
    return Corrupt(path, what);
  }
  if (h.header_check != HeaderCheck(h)) return Corrupt(path, "header checksum mismatch");
  if (h.header_size != kHeaderSize || h.tenant_capacity == 0 || h.tenant_capacity > kMaxTenantCapacity ||
      h.record_size != RecordSizeFor(h.tenant_capacity) || h.segment0_records < 32 ||
      !std::has_single_bit(h.segment0_records) || h.segments == 0 || h.segments > kMaxSegments) {
    return Corrupt(path, "header fields out of range");
  }
  return Status::Ok();
}

// Of the first `segments` segments, how many a file of `file_size` bytes holds whole: a machine
// crash can leave the header ahead of the size.
inline uint32_t SegmentsHeld(const FileHeader& h, uint32_t segments, int64_t file_size) {
  while (segments > 0 &&
         file_size < static_cast<int64_t>(kHeaderSize + Capacity(h.segment0_records, segments) * h.record_size)) {
    --segments;
  }
  return segments;
}

}  // namespace ledger_format
}  // namespace pgtenant::billing
