// ClientRegistry: every client connection of the pooler, in a table of numbered slots.
//
// A client's slot number is also the process id of its cancel key (BackendKeyData), so a
// CancelRequest finds its client by index. One pointer per slot replaces a hash-set node and a
// cancel-key hash-map node (about 80 bytes per client, which matters at 10,000 idle clients).
// Freed slots are reused; the table keeps the size of its peak (8 bytes per slot).
// Removing a client while iterating is safe (its slot is only emptied); adding is not.
// Loop-affine.
#pragma once

#include <cstddef>
#include <cstdint>
#include <iterator>
#include <vector>

namespace pgtenant::proxy {

class ClientSession;

class ClientRegistry {
 public:
  // Returns the client's slot, 1 or more (a valid Postgres process id).
  int32_t Add(ClientSession* client) {
    ++count_;
    if (!free_.empty()) {
      int32_t slot = free_.back();
      free_.pop_back();
      slots_[slot - 1] = client;
      return slot;
    }
    slots_.push_back(client);
    return static_cast<int32_t>(slots_.size());
  }
  // False when `slot` does not hold `client` (already removed).
  bool Remove(ClientSession* client, int32_t slot) {
    if (At(slot) != client || client == nullptr) return false;
    slots_[slot - 1] = nullptr;
    free_.push_back(slot);
    --count_;
    return true;
  }
  // The client in `slot`, or null (free, or out of range: slots come from the network too).
  ClientSession* At(int32_t slot) const {
    return slot >= 1 && static_cast<size_t>(slot) <= slots_.size() ? slots_[slot - 1] : nullptr;
  }
  size_t size() const { return count_; }
  bool empty() const { return count_ == 0; }
  // A copy, for loops that may add clients or that outlive a callback.
  std::vector<ClientSession*> Snapshot() const { return {begin(), end()}; }

  class Iterator {
   public:
    using iterator_category = std::forward_iterator_tag;
    using value_type = ClientSession*;
    using difference_type = std::ptrdiff_t;
    using pointer = ClientSession* const*;
    using reference = ClientSession* const&;
    Iterator(pointer at, pointer end) : at_(at), end_(end) { SkipFree(); }
    reference operator*() const { return *at_; }
    Iterator& operator++() {
      ++at_;
      SkipFree();
      return *this;
    }
    bool operator==(const Iterator& o) const { return at_ == o.at_; }
    bool operator!=(const Iterator& o) const { return at_ != o.at_; }

   private:
    void SkipFree() {
      while (at_ != end_ && *at_ == nullptr) ++at_;
    }
    pointer at_;
    pointer end_;
  };
  Iterator begin() const { return {slots_.data(), slots_.data() + slots_.size()}; }
  Iterator end() const { return {slots_.data() + slots_.size(), slots_.data() + slots_.size()}; }

 private:
  std::vector<ClientSession*> slots_;  // slot N at index N-1; null = free
  std::vector<int32_t> free_;          // freed slots, reused last-freed first
  size_t count_ = 0;
};

}  // namespace pgtenant::proxy
