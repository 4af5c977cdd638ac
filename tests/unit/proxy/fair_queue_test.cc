// FairQueue (proxy/fair_queue.h): the waiting clients of a pool, served round-robin across
// tenants, first come first served inside a tenant, skipping tenants the caller says are at
// their cap.
#include "proxy/fair_queue.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <list>
#include <map>
#include <random>
#include <set>
#include <string>
#include <vector>

namespace pgtenant::proxy {
namespace {

using Queue = FairQueue<int>;

std::vector<int> Drain(Queue* q, const std::function<bool(const std::string&)>& may_serve = nullptr) {
  std::vector<int> out;
  while (auto v = q->PopNext(may_serve)) out.push_back(*v);
  return out;
}

TEST(FairQueueTest, OneTenantIsFirstComeFirstServed) {
  Queue q;
  for (int i = 0; i < 5; ++i) q.Push("a", i, 100 + i);
  EXPECT_EQ(q.size(), 5u);
  EXPECT_EQ(q.lane_count(), 1u);
  EXPECT_EQ(Drain(&q), (std::vector<int>{0, 1, 2, 3, 4}));
  EXPECT_TRUE(q.empty());
  EXPECT_EQ(q.lane_count(), 0u);
}

TEST(FairQueueTest, TenantsTakeTurnsInTheOrderTheyCame) {
  Queue q;
  // a queues four, then b one, then c two: a b c a c a a.
  for (int i = 0; i < 4; ++i) q.Push("a", 10 + i, i);
  q.Push("b", 20, 4);
  q.Push("c", 30, 5);
  q.Push("c", 31, 6);
  EXPECT_EQ(q.lane_count(), 3u);
  EXPECT_EQ(q.WaitingFor("a"), 4u);
  EXPECT_EQ(Drain(&q), (std::vector<int>{10, 20, 30, 11, 31, 12, 13}));
}

TEST(FairQueueTest, ATenantThatComesBackQueuesAtTheBackOfTheRing) {
  Queue q;
  q.Push("a", 1, 0);
  q.Push("b", 2, 1);
  EXPECT_EQ(q.PopNext(nullptr), 1);  // a's lane is empty and gone
  q.Push("a", 3, 2);                 // behind b now
  q.Push("b", 4, 3);
  EXPECT_EQ(Drain(&q), (std::vector<int>{2, 3, 4}));
}

TEST(FairQueueTest, TenantsAtTheirCapAreSkippedAndKeepTheirPlace) {
  Queue q;
  q.Push("a", 1, 0);
  q.Push("b", 2, 1);
  q.Push("a", 3, 2);
  std::set<std::string> capped = {"a"};
  auto may_serve = [&](const std::string& t) { return capped.count(t) == 0; };
  EXPECT_EQ(q.PopNext(may_serve), 2);
  EXPECT_EQ(q.PopNext(may_serve), std::nullopt) << "only a waits, and it is at its cap";
  EXPECT_EQ(q.size(), 2u);
  capped.clear();
  EXPECT_EQ(Drain(&q, may_serve), (std::vector<int>{1, 3}));
}

TEST(FairQueueTest, EraseRemovesOneWaiterAndAnEmptyLane) {
  Queue q;
  Queue::Handle a1 = q.Push("a", 1, 0);
  Queue::Handle b1 = q.Push("b", 2, 1);
  Queue::Handle a2 = q.Push("a", 3, 2);
  EXPECT_TRUE(a1.queued());
  q.Erase(&a1);
  EXPECT_FALSE(a1.queued());
  EXPECT_EQ(q.size(), 2u);
  q.Erase(&a1);  // queued nowhere now: nothing happens
  EXPECT_EQ(q.size(), 2u);
  q.Erase(&b1);
  EXPECT_EQ(q.lane_count(), 1u);
  EXPECT_EQ(q.WaitingFor("b"), 0u);
  EXPECT_TRUE(a2.queued());
  EXPECT_EQ(Drain(&q), (std::vector<int>{3}));
}

TEST(FairQueueTest, OldestIsTheLongestWaiterOfAnyTenant) {
  Queue q;
  EXPECT_EQ(q.Oldest(), nullptr);
  q.Push("a", 1, 50);
  q.Push("b", 2, 10);
  q.Push("a", 3, 60);
  q.Push("c", 4, 30);
  ASSERT_NE(q.Oldest(), nullptr);
  EXPECT_EQ(q.Oldest()->item, 2);
  EXPECT_EQ(q.PopOldest(), 2);
  EXPECT_EQ(q.PopOldest(), 4);
  EXPECT_EQ(q.PopOldest(), 1);
  EXPECT_EQ(q.PopOldest(), 3);
  EXPECT_TRUE(q.empty());
}

TEST(FairQueueTest, CountInAndTakeAll) {
  Queue q;
  q.Push("a", 1, 0);
  q.Push("a", 2, 1);
  q.Push("b", 3, 2);
  EXPECT_EQ(q.CountIn([](const std::string& t) { return t == "a"; }), 2u);
  std::map<std::string, int> seen;
  q.ForEach([&](const std::string& t, const Queue::Waiter&) { ++seen[t]; });
  EXPECT_EQ(seen, (std::map<std::string, int>{{"a", 2}, {"b", 1}}));
  std::list<int> all = q.TakeAll();
  EXPECT_EQ(all, (std::list<int>{1, 2, 3}));
  EXPECT_TRUE(q.empty());
  EXPECT_EQ(q.lane_count(), 0u);
  q.Push("a", 4, 3);  // usable again
  EXPECT_EQ(Drain(&q), (std::vector<int>{4}));
}

// Against a plain model of the rule: the tenants with waiters form a ring in the order their
// lanes opened; each pop serves the front tenant's oldest waiter and sends that tenant to the
// back (or out, when it has no waiter left). Every pop must pick exactly the model's waiter.
TEST(FairQueueTest, RandomOperationsFollowTheModel) {
  std::mt19937 rng(18);
  for (int run = 0; run < 200; ++run) {
    Queue q;
    std::map<int, Queue::Handle> handles;
    std::map<int, std::string> tenant_of;
    std::map<std::string, std::vector<int>> lanes;  // waiting ids per tenant, in arrival order
    std::vector<std::string> ring;                  // tenants with waiters, next to serve first
    auto leave_ring_if_empty = [&](const std::string& t) {
      if (lanes[t].empty()) ring.erase(std::find(ring.begin(), ring.end(), t));
    };
    int next = 0;
    for (int step = 0; step < 300; ++step) {
      const int op = static_cast<int>(rng() % 10);
      if (op < 5) {
        std::string t(1, 't');
        t += std::to_string(rng() % 4);  // (not "t" + ...: GCC 12 -O3 warns falsely, -Wrestrict)
        if (lanes[t].empty()) ring.push_back(t);
        handles[next] = q.Push(t, next, static_cast<uint64_t>(step));
        tenant_of[next] = t;
        lanes[t].push_back(next);
        ++next;
      } else if (op < 8) {
        std::optional<int> v = q.PopNext(nullptr);
        ASSERT_EQ(v.has_value(), !ring.empty());
        if (!v) continue;
        const std::string t = ring.front();
        ASSERT_EQ(*v, lanes[t].front()) << "the front tenant's oldest waiter";
        lanes[t].erase(lanes[t].begin());
        handles.erase(*v);
        ring.erase(ring.begin());
        if (!lanes[t].empty()) ring.push_back(t);
      } else if (!handles.empty()) {
        auto it = handles.begin();
        std::advance(it, rng() % handles.size());
        const int id = it->first;
        const std::string t = tenant_of[id];
        q.Erase(&it->second);
        handles.erase(it);
        lanes[t].erase(std::find(lanes[t].begin(), lanes[t].end(), id));
        leave_ring_if_empty(t);
      }
      ASSERT_EQ(q.size(), handles.size());
      ASSERT_EQ(q.lane_count(), ring.size());
      for (auto& [t, ids] : lanes) ASSERT_EQ(q.WaitingFor(t), ids.size()) << t;
    }
  }
}

TEST(FairQueueTest, TwoBusyTenantsAlternate) {
  Queue q;
  for (int i = 0; i < 100; ++i) q.Push("noisy", i, static_cast<uint64_t>(i));
  for (int i = 0; i < 3; ++i) q.Push("quiet", 1000 + i, static_cast<uint64_t>(100 + i));
  std::vector<int> order = Drain(&q);
  // The quiet tenant's waiters are served 2nd, 4th and 6th, not after the noisy hundred.
  EXPECT_EQ(order[1], 1000);
  EXPECT_EQ(order[3], 1001);
  EXPECT_EQ(order[5], 1002);
}

}  // namespace
}  // namespace pgtenant::proxy
