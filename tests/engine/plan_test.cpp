#include "engine/plan.h"

#include <chrono>
#include <mutex>
#include <thread>

#include <gtest/gtest.h>

namespace kiln::engine {
namespace {

TEST(PlanTest, ReleasesDependentsInOrder) {
  // 0 -> 1 -> 3, 0 -> 2 -> 3 (a diamond)
  auto plan = Plan::Create({{}, {0}, {0}, {1, 2}});
  ASSERT_TRUE(plan);
  EXPECT_EQ(plan->TakeReady(), std::vector<NodeId>{0});
  EXPECT_TRUE(plan->TakeReady().empty());
  plan->NodeFinished(0);
  auto ready = plan->TakeReady();
  std::sort(ready.begin(), ready.end());
  EXPECT_EQ(ready, (std::vector<NodeId>{1, 2}));
  plan->NodeFinished(1);
  EXPECT_TRUE(plan->TakeReady().empty());
  plan->NodeFinished(2);
  EXPECT_EQ(plan->TakeReady(), std::vector<NodeId>{3});
  plan->NodeFinished(3);
  EXPECT_FALSE(plan->more_to_do());
}

TEST(PlanTest, RejectsCycles) {
  auto plan = Plan::Create({{1}, {0}, {}});
  ASSERT_FALSE(plan);
  EXPECT_NE(plan.error().message().find("cycle"), std::string::npos);
  EXPECT_FALSE(Plan::Create({{5}}));
}

TEST(RunPlanTest, RunsIndependentNodesInParallel) {
  auto plan = Plan::Create({{}, {}, {}, {}});
  ASSERT_TRUE(plan);
  auto start = std::chrono::steady_clock::now();
  Status s = RunPlan(*plan, 4, [](NodeId, const std::atomic<bool>&) {
    std::this_thread::sleep_for(std::chrono::milliseconds(300));
    return Ok();
  });
  auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - start).count();
  ASSERT_TRUE(s);
  EXPECT_LT(ms, 550) << "four 300 ms nodes with --jobs 4 must overlap, took " << ms << " ms";
}

TEST(RunPlanTest, JobsCapsConcurrency) {
  auto plan = Plan::Create({{}, {}, {}, {}});
  ASSERT_TRUE(plan);
  std::atomic<int> now{0}, peak{0};
  Status s = RunPlan(*plan, 2, [&](NodeId, const std::atomic<bool>&) {
    int n = ++now;
    int p = peak.load();
    while (n > p && !peak.compare_exchange_weak(p, n)) {}
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
    --now;
    return Ok();
  });
  ASSERT_TRUE(s);
  EXPECT_EQ(peak.load(), 2);
}

TEST(RunPlanTest, RespectsDependencies) {
  auto plan = Plan::Create({{}, {0}, {1}});
  ASSERT_TRUE(plan);
  std::mutex mu;
  std::vector<NodeId> order;
  Status s = RunPlan(*plan, 4, [&](NodeId id, const std::atomic<bool>&) {
    std::lock_guard<std::mutex> lock(mu);
    order.push_back(id);
    return Ok();
  });
  ASSERT_TRUE(s);
  EXPECT_EQ(order, (std::vector<NodeId>{0, 1, 2}));
}

TEST(RunPlanTest, FirstFailureCancelsTheRest) {
  // 0 fails fast; 1 runs long and must see cancel; 2 depends on 0 and never runs.
  auto plan = Plan::Create({{}, {}, {0}});
  ASSERT_TRUE(plan);
  std::atomic<bool> ran2{false}, saw_cancel{false};
  Status s = RunPlan(*plan, 4, [&](NodeId id, const std::atomic<bool>& cancel) -> Status {
    if (id == 0)
      return Error(Errc::kFailed, "step 0 failed");
    if (id == 2) {
      ran2 = true;
      return Ok();
    }
    for (int i = 0; i < 200 && !cancel; ++i)
      std::this_thread::sleep_for(std::chrono::milliseconds(5));
    saw_cancel = cancel.load();
    return cancel ? Status(Error(Errc::kCancelled, "cancelled")) : Ok();
  });
  ASSERT_FALSE(s);
  EXPECT_EQ(s.error().message(), "step 0 failed");
  EXPECT_FALSE(ran2);
  EXPECT_TRUE(saw_cancel);
}

}  // namespace
}  // namespace kiln::engine
