// Plan: which nodes of a DAG are ready to run (ninja's Plan without I/O),
// and RunPlan: the loop that runs ready nodes on oneTBB workers.
//
// Only the thread that calls RunPlan touches the Plan. Workers run one node
// and push one result onto a queue; the loop reads results, releases
// dependents and starts what became ready. The first failure stops new work,
// lets running nodes finish (they are told to cancel) and is returned.
#pragma once

#include <atomic>
#include <cstddef>
#include <functional>
#include <string>
#include <vector>

#include "kiln/error.h"

namespace kiln::engine {

using NodeId = size_t;

class Plan {
 public:
  /// deps[i] lists the nodes that node i waits for.
  static Expected<Plan> Create(std::vector<std::vector<NodeId>> deps);

  /// Nodes whose dependencies are all done and that were not yet handed out.
  std::vector<NodeId> TakeReady();
  /// Marks a node finished; its dependents may become ready.
  void NodeFinished(NodeId id);
  bool more_to_do() const { return finished_ < deps_.size(); }
  size_t size() const { return deps_.size(); }

 private:
  std::vector<std::vector<NodeId>> deps_;
  std::vector<std::vector<NodeId>> dependents_;
  std::vector<size_t> waiting_;   // unfinished dependencies per node
  std::vector<NodeId> ready_;
  size_t finished_ = 0;
};

/// Runs every node of `plan`: `run(id, cancel)` on up to `jobs` workers at a
/// time (`jobs` 0 = the number of cores). `cancel` becomes true after the
/// first failure; a long-running node should check it and stop. Returns the
/// first failure, or Ok when every node succeeded.
Status RunPlan(Plan& plan, size_t jobs,
               const std::function<Status(NodeId, const std::atomic<bool>& cancel)>& run);

}  // namespace kiln::engine
