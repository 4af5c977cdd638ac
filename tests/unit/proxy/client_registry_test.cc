#include "proxy/client_registry.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <vector>

namespace pgtenant::proxy {
namespace {

// The registry never dereferences its entries, so distinct addresses stand in for sessions.
ClientSession* Fake(int i) { return reinterpret_cast<ClientSession*>(static_cast<uintptr_t>(0x1000 + 16 * i)); }

TEST(ClientRegistryTest, SlotsFindTheirClientsAndAreReusedAfterRemoval) {
  ClientRegistry r;
  EXPECT_TRUE(r.empty());
  int32_t a = r.Add(Fake(1)), b = r.Add(Fake(2)), c = r.Add(Fake(3));
  EXPECT_EQ(a, 1);
  EXPECT_EQ(r.At(b), Fake(2));
  EXPECT_EQ(r.size(), 3u);
  EXPECT_TRUE(r.Remove(Fake(2), b));
  EXPECT_FALSE(r.Remove(Fake(2), b));  // twice: no effect
  EXPECT_EQ(r.At(b), nullptr);
  EXPECT_EQ(r.size(), 2u);
  int32_t d = r.Add(Fake(4));
  EXPECT_EQ(d, b);  // the freed slot, not a new one
  EXPECT_EQ(r.At(d), Fake(4));
  EXPECT_FALSE(r.Remove(Fake(1), c));  // a slot that holds another client
  EXPECT_EQ(r.size(), 3u);
}

TEST(ClientRegistryTest, SlotsFromTheNetworkOutOfRangeFindNothing) {
  ClientRegistry r;
  r.Add(Fake(1));
  for (int32_t slot : {0, -1, 2, 1 << 30, INT32_MIN}) EXPECT_EQ(r.At(slot), nullptr) << slot;
  EXPECT_FALSE(r.Remove(Fake(1), 0));  // a client that never got a slot
}

TEST(ClientRegistryTest, IterationSkipsFreeSlotsAndSurvivesRemoval) {
  ClientRegistry r;
  std::vector<int32_t> slots;
  for (int i = 0; i < 10; ++i) slots.push_back(r.Add(Fake(i)));
  for (int i = 0; i < 10; i += 3) r.Remove(Fake(i), slots[i]);
  std::vector<ClientSession*> seen;
  for (ClientSession* c : r) {
    seen.push_back(c);
    // Removing the current client while iterating (what a janitor does) is allowed.
    if (c == Fake(4)) r.Remove(c, slots[4]);
  }
  EXPECT_EQ(seen, (std::vector<ClientSession*>{Fake(1), Fake(2), Fake(4), Fake(5), Fake(7), Fake(8)}));
  EXPECT_EQ(r.Snapshot(), (std::vector<ClientSession*>{Fake(1), Fake(2), Fake(5), Fake(7), Fake(8)}));
  EXPECT_EQ(r.size(), 5u);
}

}  // namespace
}  // namespace pgtenant::proxy
