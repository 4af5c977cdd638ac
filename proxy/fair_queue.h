// FairQueue: the clients waiting for a server connection of one pool, served round-robin
// across tenants (docs/architecture.md, "Fair waiting"). Each tenant has a lane of its own
// (first come, first served inside it); the lanes that hold waiters form a ring, and each pop
// serves the first lane of the ring that may be served and moves it to the back. One tenant
// with 500 waiting clients then gets one server in every (number of waiting tenants)
// hand-overs instead of all of them, and a quiet tenant's client waits for at most one
// hand-over per other waiting tenant.
//
// No I/O and no clock: T is what waits (ClientSession* in Pool, anything in tests), and the
// caller keeps the Handle that Push returns to Erase a waiter that left. Every operation is
// O(1) except Oldest and PopNext, which are O(lanes tried); Push may allocate a lane.
#pragma once

#include <cstddef>
#include <functional>
#include <list>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <utility>

namespace pgtenant::proxy {

template <typename T>
class FairQueue {
  struct Lane;

 public:
  struct Waiter {
    T item;
    uint64_t since = 0;  // the caller's clock, for Oldest
  };
  // Where a waiter is queued. A default Handle is queued nowhere.
  class Handle {
   public:
    Handle() = default;
    bool queued() const { return lane_ != nullptr; }

   private:
    friend class FairQueue;
    Lane* lane_ = nullptr;
    typename std::list<Waiter>::iterator at_;
  };

  FairQueue() = default;
  FairQueue(const FairQueue&) = delete;
  FairQueue& operator=(const FairQueue&) = delete;

  bool empty() const { return size_ == 0; }
  size_t size() const { return size_; }
  // Tenants with at least one waiter.
  size_t lane_count() const { return ring_.size(); }

  // Queues `item` at the back of `tenant`'s lane; a new lane goes to the back of the ring.
  Handle Push(std::string_view tenant, T item, uint64_t since) {
    auto [it, fresh] = lanes_.try_emplace(std::string(tenant));
    Lane& lane = it->second;
    if (fresh) lane.key = &it->first;
    if (lane.waiters.empty()) lane.in_ring = ring_.insert(ring_.end(), &lane);
    Handle h;
    h.lane_ = &lane;
    h.at_ = lane.waiters.insert(lane.waiters.end(), Waiter{std::move(item), since});
    ++size_;
    return h;
  }

  // Removes the waiter h points to (h must be one of this queue's, or queued nowhere: then
  // nothing happens); h is queued nowhere afterwards.
  void Erase(Handle* h) {
    Lane* lane = h->lane_;
    if (lane == nullptr) return;
    lane->waiters.erase(h->at_);
    --size_;
    *h = Handle();
    if (lane->waiters.empty()) DropLane(lane);
  }

  // Serves the first lane of the ring whose tenant `may_serve` accepts: takes its oldest
  // waiter and moves the lane to the back of the ring. nullopt when no lane may be served.
  std::optional<T> PopNext(const std::function<bool(const std::string& tenant)>& may_serve) {
    for (auto it = ring_.begin(); it != ring_.end(); ++it) {
      Lane* lane = *it;
      if (may_serve && !may_serve(*lane->key)) continue;
      return PopFront(lane);
    }
    return std::nullopt;
  }

  // The waiter that has waited longest (smallest `since`), or nullptr.
  const Waiter* Oldest() const {
    const Waiter* oldest = nullptr;
    for (const Lane* lane : ring_) {
      const Waiter& w = lane->waiters.front();
      if (oldest == nullptr || w.since < oldest->since) oldest = &w;
    }
    return oldest;
  }
  // Takes the waiter Oldest() returned. REQUIRES: !empty().
  T PopOldest() {
    Lane* pick = nullptr;
    for (Lane* lane : ring_) {
      if (pick == nullptr || lane->waiters.front().since < pick->waiters.front().since) pick = lane;
    }
    T item = std::move(pick->waiters.front().item);
    pick->waiters.pop_front();
    --size_;
    if (pick->waiters.empty()) DropLane(pick);
    return item;
  }

  // Waiters of `tenant`.
  size_t WaitingFor(std::string_view tenant) const {
    auto it = lanes_.find(std::string(tenant));
    return it == lanes_.end() ? 0 : it->second.waiters.size();
  }

  // Waiters in the lanes whose tenant `pred` accepts.
  template <typename F>
  size_t CountIn(F&& pred) const {
    size_t n = 0;
    for (const Lane* lane : ring_) {
      if (pred(*lane->key)) n += lane->waiters.size();
    }
    return n;
  }

  // Calls f(tenant, waiter) for every waiter, lane by lane in ring order.
  template <typename F>
  void ForEach(F&& f) const {
    for (const Lane* lane : ring_) {
      for (const Waiter& w : lane->waiters) f(*lane->key, w);
    }
  }

  // Takes every waiter, in ring order (for failing them all at once).
  std::list<T> TakeAll() {
    std::list<T> out;
    for (Lane* lane : ring_) {
      for (Waiter& w : lane->waiters) out.push_back(std::move(w.item));
    }
    ring_.clear();
    lanes_.clear();
    size_ = 0;
    return out;
  }

 private:
  struct Lane {
    const std::string* key = nullptr;  // the map's own key
    std::list<Waiter> waiters;
    typename std::list<Lane*>::iterator in_ring;  // valid while waiters is not empty
  };

  T PopFront(Lane* lane) {
    T item = std::move(lane->waiters.front().item);
    lane->waiters.pop_front();
    --size_;
    if (lane->waiters.empty()) {
      DropLane(lane);
    } else {
      ring_.splice(ring_.end(), ring_, lane->in_ring);  // its turn is over
    }
    return item;
  }

  void DropLane(Lane* lane) {
    ring_.erase(lane->in_ring);
    lanes_.erase(lanes_.find(*lane->key));  // a tenant without waiters costs nothing
  }

  std::unordered_map<std::string, Lane> lanes_;
  std::list<Lane*> ring_;
  size_t size_ = 0;
};

}  // namespace pgtenant::proxy
