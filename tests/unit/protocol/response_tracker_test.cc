#include "protocol/response_tracker.h"

#include <gtest/gtest.h>

#include <string>
#include <vector>

namespace pgtenant::protocol {
namespace {

using Origin = ResponseTracker::Origin;
using Action = ResponseTracker::Action;

// Feeds one backend message; returns the action and appends what became due to *due.
Action Backend(ResponseTracker* t, char type, std::string* due) {
  std::vector<uint64_t> failed;
  return t->OnBackend(type, due, &failed);
}

TEST(ResponseTrackerTest, PgtenantsOwnAnswersAreSwallowedAndTheClientsForwarded) {
  ResponseTracker t;
  t.Sent('B', Origin::kPgtenant);
  t.Sent('E', Origin::kPgtenant);
  t.Sent('Q', Origin::kClient);
  std::string due;
  EXPECT_EQ(Backend(&t, '2', &due), Action::kSwallow);
  EXPECT_EQ(Backend(&t, 'D', &due), Action::kSwallow);  // a row of pgtenant's Execute: not completing
  EXPECT_EQ(Backend(&t, 'C', &due), Action::kSwallow);
  EXPECT_EQ(Backend(&t, 'T', &due), Action::kForward);
  EXPECT_EQ(Backend(&t, 'C', &due), Action::kForward);
  EXPECT_EQ(Backend(&t, 'Z', &due), Action::kForward);
  EXPECT_TRUE(t.empty());
  EXPECT_TRUE(due.empty());
}

TEST(ResponseTrackerTest, ClientMessagesWithoutSyncOpenABatchUntilTheSync) {
  ResponseTracker t;
  EXPECT_FALSE(t.extended_open());
  t.Sent('B', Origin::kClient);
  t.Sent('E', Origin::kClient);
  EXPECT_TRUE(t.extended_open());
  t.Sent('S', Origin::kClient);
  EXPECT_FALSE(t.extended_open());
  EXPECT_EQ(t.client_sync_points(), 1);
}

// A message pgtenant answers itself (a Close of a shared statement, a Parse the connection
// already holds) never reaches the server, so the server is not in a batch because of it. Once
// its answer is out, a tenant SET behind it in the same batch can again be answered by pgtenant.
TEST(ResponseTrackerTest, SyntheticAnswersDoNotOpenAServerBatch) {
  ResponseTracker t;
  t.Synthetic('3');
  std::string due;
  t.TakeDue(&due);
  EXPECT_EQ(due, std::string("3\0\0\0\4", 5));
  EXPECT_TRUE(t.empty());
  EXPECT_FALSE(t.extended_open());
}

TEST(ResponseTrackerTest, SyntheticAnswerWaitsForWhatTheServerOwesBeforeIt) {
  ResponseTracker t;
  t.Sent('B', Origin::kClient);
  t.Synthetic('1');
  std::string due;
  t.TakeDue(&due);
  EXPECT_TRUE(due.empty());  // the BindComplete comes first
  EXPECT_EQ(Backend(&t, '2', &due), Action::kForward);
  EXPECT_EQ(due, std::string("1\0\0\0\4", 5));
  EXPECT_TRUE(t.empty());
  EXPECT_TRUE(t.extended_open());  // the client's Bind still waits for its Sync
}

// Tags of pgtenant's own answers say what became of them: emitted in their turn, or skipped
// with the rest of a batch after an error (then what pgtenant did for them must be undone).
TEST(ResponseTrackerTest, SyntheticTagsAreReportedAsEmittedOrSkipped) {
  ResponseTracker t;
  t.Sent('B', Origin::kClient);
  t.Sent('E', Origin::kClient);
  EXPECT_TRUE(t.Synthetic('3', 7));  // a Close answered by pgtenant behind the Execute
  t.Sent('B', Origin::kClient);
  EXPECT_TRUE(t.Synthetic('1', 8));
  t.Sent('S', Origin::kClient);
  std::string due;
  std::vector<uint64_t> failed, skipped, emitted;
  EXPECT_EQ(t.OnBackend('2', &due, &failed, nullptr, &skipped, &emitted), Action::kForward);
  EXPECT_EQ(t.OnBackend('C', &due, &failed, nullptr, &skipped, &emitted), Action::kForward);
  EXPECT_EQ(emitted, std::vector<uint64_t>{7}) << "the Close's answer went out after the Execute's";
  EXPECT_EQ(t.OnBackend('E', &due, &failed, nullptr, &skipped, &emitted), Action::kForward);
  EXPECT_EQ(skipped, std::vector<uint64_t>{8}) << "the failed Bind made the backend skip the Parse";
  EXPECT_EQ(emitted, std::vector<uint64_t>{7});
  EXPECT_EQ(t.OnBackend('Z', &due, &failed, nullptr, &skipped, &emitted), Action::kForward);
  EXPECT_TRUE(t.empty());
  // An error before the client's Sync was sent: what comes until the Sync gets no answer at all.
  t.Sent('B', Origin::kClient);
  EXPECT_EQ(t.OnBackend('E', &due, &failed, nullptr, &skipped, &emitted), Action::kForward);
  EXPECT_FALSE(t.Synthetic('3', 9));
  t.Sent('S', Origin::kClient);
  EXPECT_TRUE(t.Synthetic('1', 10)) << "after the Sync, a new batch";
}

TEST(ResponseTrackerTest, ExtendedErrorSkipsToTheSyncAndDropsSkippedSynthetics) {
  ResponseTracker t;
  t.Sent('B', Origin::kClient);
  t.Sent('E', Origin::kClient);
  t.Synthetic('3');
  t.Sent('S', Origin::kClient);
  std::string due;
  EXPECT_EQ(Backend(&t, 'E', &due), Action::kForward);
  EXPECT_TRUE(due.empty());  // Postgres would not have answered the Close after the error
  EXPECT_EQ(Backend(&t, 'Z', &due), Action::kForward);
  EXPECT_TRUE(t.empty());
  EXPECT_EQ(t.client_sync_points(), 0);
}

}  // namespace
}  // namespace pgtenant::protocol
