#include "protocol/response_tracker.h"

#include "protocol/message_writer.h"

namespace pgtenant::protocol {
namespace {

bool IsSyncPoint(char t) { return t == 'Q' || t == 'F' || t == 'S'; }
bool IsExtended(char t) { return t == 'P' || t == 'B' || t == 'D' || t == 'E' || t == 'C'; }

// Does this backend message finish the answer to a frontend message of this kind?
bool Completes(char slot, char backend) {
  switch (slot) {
    case 'Q':
    case 'F':
    case 'S': return backend == 'Z';
    case 'P': return backend == '1';
    case 'B': return backend == '2';
    case 'C': return backend == '3';
    case 'D': return backend == 'T' || backend == 'n';
    case 'E': return backend == 'C' || backend == 'I' || backend == 's';
    default: return false;
  }
}

}  // namespace

void ResponseTracker::Sent(char t, Origin origin, uint64_t tag) {
  if (!IsSyncPoint(t) && !IsExtended(t)) return;
  if (skipping_) {
    if (t != 'S') {
      if (tag != 0) skipped_tags_.push_back(tag);
      return;  // discarded by the backend, unanswered
    }
    skipping_ = false;
  }
  slots_.push_back({t, origin, tag});
  if (t == 'P') ++parses_;
  if (origin != Origin::kClient) return;
  if (IsSyncPoint(t)) {
    ++client_sync_points_;
    unsynced_ = 0;
  } else {
    ++unsynced_;
  }
}

bool ResponseTracker::Synthetic(char response_type, uint64_t tag) {
  if (skipping_) return false;  // Postgres would not have answered it either
  // Not counted in unsynced_: the message never reached the server, so it leaves the server
  // outside any batch. Counting it made a Close or Parse that pgtenant answered turn the
  // client's next tenant SET in the same batch into a statement the server ran.
  slots_.push_back({response_type, Origin::kSynthetic, tag});
  return true;
}

void ResponseTracker::Pop() {
  const Slot& s = slots_.front();
  if (s.origin == Origin::kClient && IsSyncPoint(s.kind)) --client_sync_points_;
  if (s.origin != Origin::kSynthetic && s.kind == 'P') --parses_;
  slots_.pop_front();
}

void ResponseTracker::EmitDue(std::string* due, std::vector<uint64_t>* emitted_synthetic) {
  while (!slots_.empty() && slots_.front().origin == Origin::kSynthetic) {
    MessageWriter(due).Begin(slots_.front().kind).Finish();
    if (emitted_synthetic && slots_.front().tag != 0) emitted_synthetic->push_back(slots_.front().tag);
    slots_.pop_front();
  }
}

void ResponseTracker::TakeDue(std::string* due, std::vector<uint64_t>* emitted_synthetic) {
  EmitDue(due, emitted_synthetic);
}

ResponseTracker::Action ResponseTracker::OnBackend(char type, std::string* due,
                                                   std::vector<uint64_t>* failed_tags,
                                                   uint64_t* completed_tag,
                                                   std::vector<uint64_t>* skipped_synthetic,
                                                   std::vector<uint64_t>* emitted_synthetic) {
  if (failed_tags && !skipped_tags_.empty()) {
    failed_tags->insert(failed_tags->end(), skipped_tags_.begin(), skipped_tags_.end());
    skipped_tags_.clear();
  }
  if (slots_.empty()) return Action::kForward;  // asynchronous: notice, notification, status
  const Slot front = slots_.front();
  Action action = front.origin == Origin::kPgtenant ? Action::kSwallow : Action::kForward;
  if (type == 'E' && front.kind != 'Q' && front.kind != 'F' && front.kind != 'S') {
    // An extended-protocol error: the backend skips everything up to the next Sync.
    if (front.origin == Origin::kPgtenant) action = Action::kPgtenantError;
    while (!slots_.empty() && slots_.front().kind != 'S') {
      const Slot& s = slots_.front();
      if (s.origin != Origin::kSynthetic && s.tag != 0 && failed_tags) failed_tags->push_back(s.tag);
      if (s.origin == Origin::kSynthetic && s.tag != 0 && skipped_synthetic) skipped_synthetic->push_back(s.tag);
      // Pop(), not pop_front(): a client Query skipped here gets no ReadyForQuery, so it must
      // leave client_sync_points() too.
      Pop();
    }
    // No Sync sent yet: whatever is sent before it will be discarded too.
    if (slots_.empty()) skipping_ = true;
    return action;
  }
  if (type == 'E' && front.origin == Origin::kPgtenant) action = Action::kPgtenantError;
  if (Completes(front.kind, type)) {
    if (completed_tag && front.kind == 'P' && front.tag != 0) *completed_tag = front.tag;
    if (type == 'Z' && front.kind != 'S' && unsynced_ > 0 && front.origin == Origin::kClient) unsynced_ = 0;
    Pop();
    EmitDue(due, emitted_synthetic);
  }
  return action;
}

void ResponseTracker::Clear() {
  skipping_ = false;
  skipped_tags_.clear();
  slots_.clear();
  client_sync_points_ = 0;
  unsynced_ = 0;
  parses_ = 0;
}

}  // namespace pgtenant::protocol
