// ServerBudget (proxy/server_budget.h): the count of server connections across pools and per
// backend host, and the queue of pools waiting for a slot.
#include "proxy/server_budget.h"

#include <gtest/gtest.h>

namespace pgtenant::proxy {
namespace {

TEST(ServerBudgetTest, UnlimitedCountsButNeverRefuses) {
  ServerBudget b;
  EXPECT_FALSE(b.limited());
  for (int i = 0; i < 1000; ++i) ASSERT_TRUE(b.TryTake("db:5432"));
  EXPECT_EQ(b.total(), 1000);
  EXPECT_EQ(b.OnHost("db:5432"), 1000);
  for (int i = 0; i < 1000; ++i) b.Return("db:5432");
  EXPECT_EQ(b.total(), 0);
  EXPECT_EQ(b.OnHost("db:5432"), 0);
}

TEST(ServerBudgetTest, TotalBoundsEveryHost) {
  ServerBudget b;
  b.Configure(3, 0);
  EXPECT_TRUE(b.TryTake("a:1"));
  EXPECT_TRUE(b.TryTake("b:1"));
  EXPECT_TRUE(b.TryTake("b:1"));
  EXPECT_FALSE(b.TryTake("c:1"));
  EXPECT_FALSE(b.HostIsFull("c:1")) << "the total is what is spent";
  b.Return("b:1");
  EXPECT_TRUE(b.TryTake("c:1"));
  EXPECT_EQ(b.total(), 3);
}

TEST(ServerBudgetTest, PerHostCapLeavesOtherHostsFree) {
  ServerBudget b;
  b.Configure(0, 2);
  EXPECT_TRUE(b.TryTake("a:1"));
  EXPECT_TRUE(b.TryTake("a:1"));
  EXPECT_FALSE(b.Fits("a:1"));
  EXPECT_TRUE(b.HostIsFull("a:1"));
  EXPECT_TRUE(b.TryTake("b:1"));
  EXPECT_TRUE(b.TryTake("a:2")) << "another port is another backend";
}

TEST(ServerBudgetTest, LoweringTheBudgetClosesNothingButRefusesNewOnes) {
  ServerBudget b;
  b.Configure(5, 0);
  for (int i = 0; i < 5; ++i) ASSERT_TRUE(b.TryTake("a:1"));
  b.Configure(2, 0);
  EXPECT_EQ(b.total(), 5);
  EXPECT_FALSE(b.TryTake("a:1"));
  for (int i = 0; i < 3; ++i) b.Return("a:1");
  EXPECT_FALSE(b.TryTake("a:1")) << "2 open, at the new budget";
  b.Return("a:1");
  EXPECT_TRUE(b.TryTake("a:1"));
}

TEST(ServerBudgetTest, PoolsWaitOnceEachInOrder) {
  ServerBudget b;
  EXPECT_TRUE(b.Wait("p1"));
  EXPECT_TRUE(b.Wait("p2"));
  EXPECT_FALSE(b.Wait("p1")) << "already waiting";
  EXPECT_EQ(b.waiting_pools(), 2u);
  EXPECT_EQ(b.NextWaiter(), "p1");
  EXPECT_TRUE(b.Wait("p1"));  // it found no room: behind p2 now
  EXPECT_EQ(b.NextWaiter(), "p2");
  EXPECT_EQ(b.NextWaiter(), "p1");
  EXPECT_EQ(b.NextWaiter(), std::nullopt);
}

}  // namespace
}  // namespace pgtenant::proxy
