// ServerBudget: the budget of server connections across every pool (limits.
// max_server_connections) and per backend host:port (limits.max_server_connections_per_host),
// docs/architecture.md, "The server-connection budget". A thousand pools of size 5 would
// otherwise ask one PostgreSQL for 5,000 connections.
//
// A connection counts from the moment a pool decides to open it until it is gone (closed and
// freed), so the budget holds for connections on their way and on their way out too. A pool
// that may not open one waits in a FIFO of pools; Pooler asks the least recently used idle
// connection of another pool to close and, when a slot frees, lets the waiting pools try again
// in order. No I/O: Pooler owns one and does the closing.
#pragma once

#include <cstddef>
#include <cstdint>
#include <deque>
#include <optional>
#include <string>
#include <algorithm>
#include <unordered_map>
#include <unordered_set>

namespace pgtenant::proxy {

// A connection serves its pool at least this long before the budget may take it back for another
// pool, and an idle connection is taken for a pool that already has its share only once it has
// been idle this long. A backend login costs milliseconds of PostgreSQL's CPU: moving
// connections between pools at every transaction had the pools of a thousand tenants log in
// again for nearly every transaction (bench/scale.sh).
inline constexpr uint64_t kBudgetQuantumMs = 100;

class ServerBudget {
 public:
  // 0 = no limit. Lowering a limit below what is open closes nothing: new connections wait.
  void Configure(int max_total, int max_per_host) {
    max_total_ = max_total;
    max_per_host_ = max_per_host;
  }
  bool limited() const { return max_total_ > 0 || max_per_host_ > 0; }

  // Whether a connection to `host` fits now.
  bool Fits(const std::string& host) const {
    return (max_total_ == 0 || total_ < max_total_) && (max_per_host_ == 0 || OnHost(host) < max_per_host_);
  }
  // What stands in the way: the per-host cap (true) or the total (false). REQUIRES: !Fits(host).
  bool HostIsFull(const std::string& host) const { return max_per_host_ > 0 && OnHost(host) >= max_per_host_; }

  // Counts a connection to `host` when it fits; false otherwise.
  bool TryTake(const std::string& host) {
    if (!Fits(host)) return false;
    ++total_;
    ++per_host_[host];
    return true;
  }
  // A connection counted by TryTake is gone.
  void Return(const std::string& host) {
    --total_;
    auto it = per_host_.find(host);
    if (it != per_host_.end() && --it->second <= 0) per_host_.erase(it);
  }

  // `pool` could not open a connection: it waits for a slot, once (true when newly queued).
  bool Wait(const std::string& pool) {
    if (!queued_.insert(pool).second) return false;
    waiting_.push_back(pool);
    return true;
  }
  // The pool that has waited longest for a slot, taken off the queue.
  std::optional<std::string> NextWaiter() {
    if (waiting_.empty()) return std::nullopt;
    std::string p = std::move(waiting_.front());
    waiting_.pop_front();
    queued_.erase(p);
    return p;
  }
  // The first waiting pool (longest waiting first) for which `pick` is true, taken off the queue.
  template <typename Pick>
  std::optional<std::string> NextWaiterWhere(Pick pick) {
    for (auto it = waiting_.begin(); it != waiting_.end(); ++it) {
      if (!pick(*it)) continue;
      std::string p = std::move(*it);
      waiting_.erase(it);
      queued_.erase(p);
      return p;
    }
    return std::nullopt;
  }
  // Free slots of the total now (0 when there is no total: only per-host caps, or none).
  int free_slots() const { return max_total_ == 0 ? 0 : std::max(0, max_total_ - total_); }
  size_t waiting_pools() const { return waiting_.size(); }
  const std::deque<std::string>& waiters() const { return waiting_; }

  int total() const { return total_; }
  int OnHost(const std::string& host) const {
    auto it = per_host_.find(host);
    return it == per_host_.end() ? 0 : it->second;
  }
  int max_total() const { return max_total_; }
  int max_per_host() const { return max_per_host_; }

 private:
  int max_total_ = 0;
  int max_per_host_ = 0;
  int total_ = 0;
  std::unordered_map<std::string, int> per_host_;
  std::deque<std::string> waiting_;  // pool names: a pool removed meanwhile is skipped
  std::unordered_set<std::string> queued_;  // the names in waiting_, for Wait's check at scale
};

}  // namespace pgtenant::proxy
