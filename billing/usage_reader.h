// ReadUsageLedger: a read-only look at a usage ledger file (billing/usage_ledger.h), for
// `pgtenant usage export` (billing/usage_export.h) while pgtenant runs or when it is stopped.
//
// The reader opens the file O_RDONLY and maps it PROT_READ: it takes no lock (the running
// pgtenant holds an exclusive flock on the file and keeps it), writes nothing, and checks the
// header as UsageLedger::Open() does (magic, version, checksum, ranges), so a damaged header is an
// error here too.
//
// Reading a live ledger. The owner only appends slots and publishes each record by its state
// after writing its identity, so the reader sees whole records:
//  - closed, sending and finished records never change but for their state, attempts and state
//    time: their value is final;
//  - an open window's value is loaded with a relaxed atomic load while the owner adds to it: it
//    is a moment old, and it keeps growing until the window closes;
//  - a finished record that pgtenant frees (Compact) and reuses while the reader copies it is
//    caught by its state changing or its identity checksum failing, and read again.
// A record whose identity checksum fails (a torn write after a machine crash; records pgtenant
// already marked corrupt) is skipped and counted, never exported.
//
// Pure apart from the file; any thread.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "billing/usage_ledger.h"
#include "protocol/status.h"

namespace pgtenant::billing {

// The ledger's file name in billing.state_dir.
inline constexpr const char* kLedgerFileName = "usage.ledger";
// <state_dir>/usage.ledger
std::string LedgerPathIn(const std::string& state_dir);

struct LedgerContents {
  std::vector<RecordView> records;  // every used (not free) record that passes its check, slot order
  uint64_t corrupt = 0;             // records skipped: failed their checksum, or marked corrupt
  uint32_t tenant_capacity = 0;     // from the header
};

// Reads the ledger at `path`. Errors: the file is missing (the message says so: pgtenant creates it
// when it starts with billing on) or unreadable, is not a ledger, has another format version, its
// header is damaged, or it is shorter than its header says.
Result<LedgerContents> ReadUsageLedger(const std::string& path);

}  // namespace pgtenant::billing
