#include "expand.h"

namespace kiln::frontend {

void Environment::Set(std::string_view key, std::string_view value) {
  for (auto& [k, v] : entries_) {
    if (k == key) {
      v = std::string(value);
      return;
    }
  }
  entries_.emplace_back(std::string(key), std::string(value));
}

std::optional<std::string> Environment::Get(std::string_view key) const {
  for (const auto& [k, v] : entries_)
    if (k == key)
      return v;
  return std::nullopt;
}

void Environment::Unset(std::string_view key) {
  std::erase_if(entries_, [&](const auto& e) { return e.first == key; });
}

std::vector<std::string> Environment::ToList() const {
  std::vector<std::string> out;
  out.reserve(entries_.size());
  for (const auto& [k, v] : entries_)
    out.push_back(k + "=" + v);
  return out;
}

EnvLookup Environment::Lookup() const {
  return [this](std::string_view name) { return Get(name); };
}

}  // namespace kiln::frontend
