// Precompiled header of the kiln executable: CLI11 and nlohmann-json are
// large header-only libraries that every command file includes; parsing
// them once instead of ~30 times keeps the build fast on 2 cores.
#include <map>
#include <optional>
#include <string>
#include <vector>

#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>
