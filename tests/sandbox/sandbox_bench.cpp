// sandbox_bench ROOTFS [N]: start overhead of the sandbox. Runs `true` N times
// (default 20) in ROOTFS, once as a plain directory rootfs and once as an
// overlay lower dir with a fresh upper dir per run, and prints each median in
// milliseconds ("dir 3.1" / "overlay 3.9"). Used by bench/sandbox.sh.
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

#include "kiln/fs.h"
#include "kiln/sandbox.h"

namespace {

double Median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v.size() % 2 ? v[v.size() / 2] : (v[v.size() / 2 - 1] + v[v.size() / 2]) / 2;
}

}  // namespace

int main(int argc, char** argv) {
  if (auto st = kiln::EnterUserNamespace(argc, argv); !st) {
    std::fprintf(stderr, "sandbox_bench: %s\n", st.error().message().c_str());
    return 1;
  }
  if (argc < 2) {
    std::fprintf(stderr, "usage: sandbox_bench ROOTFS [N]\n");
    return 2;
  }
  std::string rootfs = argv[1];
  int n = argc > 2 ? std::atoi(argv[2]) : 20;
  for (const char* mode : {"dir", "overlay"}) {
    std::vector<double> ms;
    for (int i = 0; i < n + 1; ++i) {  // one warm-up run (memfd copy of the helper)
      auto tmp = kiln::TempDir::Create("kiln-bench-");
      if (!tmp)
        return 1;
      kiln::SandboxSpec s;
      if (std::string(mode) == "dir") {
        s.rootfs_dir = rootfs;
      } else {
        s.lower_dirs = {rootfs};
        s.upper_dir = tmp->path() + "/u";
        s.work_dir = tmp->path() + "/w";
        (void)kiln::MakeDirs(s.upper_dir);
        (void)kiln::MakeDirs(s.work_dir);
      }
      s.argv = {"/bin/true"};
      auto t0 = std::chrono::steady_clock::now();
      auto res = kiln::RunSandbox(s);
      auto t1 = std::chrono::steady_clock::now();
      if (!res || res->status() != 0) {
        std::fprintf(stderr, "sandbox_bench: %s\n", res ? ("true failed: status " + std::to_string(res->status()) + " " + res->message).c_str() : res.error().message().c_str());
        return 1;
      }
      if (i > 0)
        ms.push_back(std::chrono::duration<double, std::milli>(t1 - t0).count());
    }
    std::printf("%s %.2f\n", mode, Median(ms));
  }
  return 0;
}
