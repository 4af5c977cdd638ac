// ResponseTracker: which backend message answers which frontend message. pgtenant slips its
// own messages into a client's pipeline (the tenant prelude, a Parse of a statement the client
// prepared on another server connection) and answers some client messages itself (Parse of a
// statement the server already has, Close of a shared statement). The tracker keeps one slot
// per message sent, in order, so that the answers to pgtenant's own messages are dropped and
// pgtenant's answers reach the client exactly where Postgres would have put them.
//
// Pure and allocation-light: a deque of two-byte slots. One tracker per server connection.
#pragma once

#include <cstdint>
#include <deque>
#include <string>
#include <vector>

namespace pgtenant::protocol {

class ResponseTracker {
 public:
  enum class Origin : uint8_t {
    kClient,     // the client's message: its answers go to the client
    kPgtenant,   // pgtenant's own message: its answers are dropped
    kSynthetic,  // a message pgtenant answers itself: the answer is emitted in its turn
  };
  enum class Action { kForward, kSwallow, kPgtenantError };

  // A frontend message went to the server. Types without an answer (Flush, CopyData, ...) are
  // ignored. `tag` is kept with the slot and reported back on errors (e.g. a statement id).
  void Sent(char frontend_type, Origin origin = Origin::kClient, uint64_t tag = 0);
  // The client sent a message pgtenant answers itself with `response_type` ('1' ParseComplete,
  // '3' CloseComplete, '2' BindComplete). False when the backend is skipping to the next Sync
  // after an error: Postgres would skip the message, so it gets no answer (and whatever
  // pgtenant did for it must be undone). A `tag` other than 0 is reported by OnBackend when an
  // error makes the backend skip the slot instead.
  bool Synthetic(char response_type, uint64_t tag = 0);

  // Decides what happens to one backend message, and appends to `due` any answers of
  // pgtenant's that become due right after it. When the message is an error that made the
  // backend skip slots, their tags are appended to `failed_tags` (a Parse that did not happen).
  // `completed_tag` receives the tag of a client Parse that the backend just completed.
  // `skipped_synthetic` receives the tags of pgtenant's own answers dropped that way, and
  // `emitted_synthetic` those of its answers appended to `due`.
  Action OnBackend(char backend_type, std::string* due, std::vector<uint64_t>* failed_tags,
                   uint64_t* completed_tag = nullptr, std::vector<uint64_t>* skipped_synthetic = nullptr,
                   std::vector<uint64_t>* emitted_synthetic = nullptr);
  // Answers of pgtenant's that are due now (nothing of the server's is ahead of them); their
  // tags (those not 0) go to `emitted_synthetic` when given.
  void TakeDue(std::string* due, std::vector<uint64_t>* emitted_synthetic = nullptr);

  bool empty() const { return slots_.empty(); }
  // Query, FunctionCall and Sync messages of the client not yet answered by ReadyForQuery.
  int client_sync_points() const { return client_sync_points_; }
  // Extended-protocol messages of the client sent to the server since its last Sync (or
  // Query). Messages pgtenant answered itself (Synthetic) do not count.
  bool extended_open() const { return unsynced_ > 0; }
  // Parse messages (the client's or pgtenant's) sent and not yet answered. Read while the
  // answer to an earlier message is handled, they are Parses the server runs after it.
  bool parses_in_flight() const { return parses_ > 0; }
  void Clear();

 private:
  struct Slot {
    char kind;  // frontend type, or the response type for a synthetic slot
    Origin origin;
    uint64_t tag;
  };
  void Pop();
  void EmitDue(std::string* due, std::vector<uint64_t>* emitted_synthetic);

  std::deque<Slot> slots_;
  int client_sync_points_ = 0;
  int unsynced_ = 0;
  int parses_ = 0;
  // After an extended-protocol error with no Sync sent yet, the backend discards everything
  // up to the next Sync: messages sent meanwhile get no answer and take no slot.
  bool skipping_ = false;
  std::vector<uint64_t> skipped_tags_;  // tags of messages the backend will discard
};

}  // namespace pgtenant::protocol
