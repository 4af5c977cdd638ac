// Fuzzes protocol::ResponseTracker with an arbitrary interleaving of what the proxy tells it:
// client and pgtenant messages sent, messages pgtenant answers itself, backend messages in any
// order (a hostile or confused backend), TakeDue and Clear.
//
// Input: a sequence of operations, two bytes each: the operation (low 3 bits) with flags in the
// high bits, then its argument (a message type index or a tag).
//
// Invariants checked besides "no crash, no UB":
//   * client_sync_points() is never negative and never more than the client's sync points sent
//     since the last Clear;
//   * answers pgtenant emits are whole, empty ParseComplete/BindComplete/CloseComplete messages;
//   * after Clear the tracker is empty, with no sync point or open extended batch.
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "protocol/response_tracker.h"
#include "tests/fuzz/fuzz_check.h"

namespace {

using pgtenant::protocol::ResponseTracker;

// Frontend types the proxy may pass to Sent, answered or not.
constexpr std::string_view kFrontend = "QFSPBDECHdcfXp";
// Backend types, with some that answer nothing; an index past the end sends a raw byte.
constexpr std::string_view kBackend = "ZE123TnCIsNSAKRDtdcGHWv";
constexpr std::string_view kSynthetic = "123";

void CheckDue(std::string_view due) {
  FUZZ_CHECK(due.size() % 5 == 0);
  for (size_t i = 0; i < due.size(); i += 5) {
    FUZZ_CHECK(kSynthetic.find(due[i]) != std::string_view::npos);
    FUZZ_CHECK(due.substr(i + 1, 4) == std::string_view("\0\0\0\4", 4));
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  ResponseTracker tracker;
  int client_syncs_sent = 0;
  std::vector<uint64_t> failed;
  for (size_t i = 0; i + 1 < size; i += 2) {
    const uint8_t op = data[i];
    const uint8_t arg = data[i + 1];
    std::string due;
    switch (op & 7) {
      case 0:
      case 1: {
        const char type = kFrontend[arg % kFrontend.size()];
        const auto origin =
            (op & 8) ? ResponseTracker::Origin::kPgtenant : ResponseTracker::Origin::kClient;
        const uint64_t tag = (op & 16) ? uint64_t{arg} + 1 : 0;
        tracker.Sent(type, origin, tag);
        if (origin == ResponseTracker::Origin::kClient &&
            (type == 'Q' || type == 'F' || type == 'S')) {
          ++client_syncs_sent;
        }
        break;
      }
      case 2:
        tracker.Synthetic(kSynthetic[arg % kSynthetic.size()]);
        break;
      case 3:
      case 4:
      case 5: {
        const char type =
            arg < kBackend.size() * 8 ? kBackend[arg % kBackend.size()] : static_cast<char>(arg);
        uint64_t completed = 0;
        tracker.OnBackend(type, &due, (op & 8) ? &failed : nullptr,
                          (op & 16) ? &completed : nullptr);
        break;
      }
      case 6:
        tracker.TakeDue(&due);
        break;
      default:
        if (op & 8) {
          tracker.Clear();
          client_syncs_sent = 0;
          FUZZ_CHECK(tracker.empty() && tracker.client_sync_points() == 0 &&
                     !tracker.extended_open());
        }
        break;
    }
    CheckDue(due);
    FUZZ_CHECK(tracker.client_sync_points() >= 0);
    FUZZ_CHECK(tracker.client_sync_points() <= client_syncs_sent);
    if (tracker.empty()) FUZZ_CHECK(tracker.client_sync_points() == 0);
  }
  return 0;
}
