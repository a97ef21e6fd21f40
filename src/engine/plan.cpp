#include "engine/plan.h"

#include <algorithm>
#include <exception>
#include <string>

#include <thread>
#include <utility>

#include <tbb/concurrent_queue.h>
#include <tbb/global_control.h>
#include <tbb/task_arena.h>
#include <tbb/task_group.h>

#include "kiln/cancel.h"

namespace kiln::engine {

Expected<Plan> Plan::Create(std::vector<std::vector<NodeId>> deps) {
  Plan p;
  size_t n = deps.size();
  p.dependents_.resize(n);
  p.waiting_.resize(n);
  for (NodeId i = 0; i < n; ++i) {
    for (NodeId d : deps[i]) {
      if (d >= n)
        return Error(Errc::kInvalidInput, "plan: node " + std::to_string(i) + " depends on unknown node");
      p.dependents_[d].push_back(i);
    }
    p.waiting_[i] = deps[i].size();
    if (deps[i].empty())
      p.ready_.push_back(i);
  }
  p.deps_ = std::move(deps);
  // Cycle check (Kahn): every node must be reachable from the ready set.
  std::vector<size_t> waiting = p.waiting_;
  std::vector<NodeId> queue = p.ready_;
  size_t seen = 0;
  while (!queue.empty()) {
    NodeId id = queue.back();
    queue.pop_back();
    ++seen;
    for (NodeId dep : p.dependents_[id])
      if (--waiting[dep] == 0)
        queue.push_back(dep);
  }
  if (seen != n)
    return Error(Errc::kInvalidInput, "plan: dependency cycle");
  return p;
}

std::vector<NodeId> Plan::TakeReady() { return std::exchange(ready_, {}); }

void Plan::NodeFinished(NodeId id) {
  ++finished_;
  for (NodeId dep : dependents_[id])
    if (--waiting_[dep] == 0)
      ready_.push_back(dep);
}

Status RunPlan(Plan& plan, size_t jobs,
               const std::function<Status(NodeId, const std::atomic<bool>& cancel)>& run) {
  // Default: every ready node at once, as BuildKit (no cap): a RUN step
  // mostly waits (on the network, on I/O, in sleep), so capping at the
  // number of cores would serialise independent stages on small machines;
  // the kernel shares the CPUs among the ones that do compute. Bounded to
  // keep the thread count sane; --jobs N caps it explicitly.
  if (jobs == 0)
    jobs = std::clamp<size_t>(plan.size(), 1, std::max<size_t>(32, std::thread::hardware_concurrency()));
  struct Result {
    NodeId id;
    Status status;
  };
  tbb::concurrent_bounded_queue<Result> results;
  std::atomic<bool> cancel{false};
  // Steps block in waitpid(), so the pool must hold `jobs` threads even on a
  // 2-core machine: raise TBB's limit and reserve no slot for this thread
  // (it waits on the queue, outside the arena).
  tbb::global_control limit(tbb::global_control::max_allowed_parallelism, jobs + 1);
  tbb::task_arena arena(static_cast<int>(jobs), 0);
  tbb::task_group group;
  std::vector<NodeId> pending;
  size_t running = 0;
  Status outcome;  // Ok until the first failure

  while (true) {
    if (outcome && Cancelled()) {  // SIGINT/SIGTERM: start nothing more, as on a failure
      outcome = Error(Errc::kCancelled, "cancelled");
      cancel = true;
    }
    if (outcome) {  // no failure yet: start what is ready
      for (NodeId id : plan.TakeReady())
        pending.push_back(id);
      // Sandboxed steps block in waitpid, so every running node needs its own
      // worker: start at most `jobs` at once.
      while (!pending.empty() && running < jobs) {
        NodeId id = pending.front();
        pending.erase(pending.begin());
        ++running;
        arena.execute([&, id] {
          group.run([&, id] {
            // No exception may escape a worker: the loop below waits for one
            // result per started node, so a throw would hang the build.
            Status st;
            try {
              st = run(id, cancel);
            } catch (const std::exception& e) {
              st = Error(Errc::kFailed, std::string("step failed: ") + e.what());
            } catch (...) {
              st = Error(Errc::kFailed, "step failed: unknown exception");
            }
            results.push(Result{id, std::move(st)});
          });
        });
      }
    }
    if (running == 0)
      break;
    Result r;
    results.pop(r);
    --running;
    if (!r.status) {
      if (outcome) {
        outcome = std::move(r.status);
        cancel = true;
      }
      continue;
    }
    plan.NodeFinished(r.id);
  }
  arena.execute([&] { group.wait(); });
  if (!outcome)
    return outcome;
  if (plan.more_to_do())
    return Error(Errc::kInvalidInput, "plan: nodes left that can never run (dependency cycle)");
  return Ok();
}

}  // namespace kiln::engine
