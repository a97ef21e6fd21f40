// Test helpers: a fresh directory under /tmp, and the sorted names in a
// directory (what a test checks a module left behind).
#pragma once

#include <dirent.h>
#include <stdlib.h>

#include <algorithm>
#include <string>
#include <vector>

namespace kiln::testing {

/// A new private directory /tmp/<prefix>XXXXXX ("" when mkdtemp fails).
inline std::string MakeScratchDir(const std::string& prefix) {
  std::string tmpl = "/tmp/" + prefix + "XXXXXX";
  return ::mkdtemp(tmpl.data()) ? tmpl : std::string();
}

/// The entries of `dir` but . and .., sorted (none when it is missing).
inline std::vector<std::string> DirNames(const std::string& dir) {
  std::vector<std::string> out;
  if (DIR* d = ::opendir(dir.c_str())) {
    while (struct dirent* e = ::readdir(d))
      if (std::string(e->d_name) != "." && std::string(e->d_name) != "..")
        out.push_back(e->d_name);
    ::closedir(d);
  }
  std::sort(out.begin(), out.end());
  return out;
}

}  // namespace kiln::testing
