// Scope guards for what a function must undo on every way out.
#pragma once

#include <string>
#include <utility>

#include "kiln/fs.h"

namespace kiln {

/// Removes the directory tree `path` (RemoveAll, errors ignored) when it
/// goes out of scope: the scratch directories of export, save and the
/// build's cache keys.
class RemoveAllOnExit {
 public:
  explicit RemoveAllOnExit(std::string path) : path_(std::move(path)) {}
  ~RemoveAllOnExit() { (void)RemoveAll(path_); }
  RemoveAllOnExit(const RemoveAllOnExit&) = delete;
  RemoveAllOnExit& operator=(const RemoveAllOnExit&) = delete;

 private:
  std::string path_;
};

}  // namespace kiln
