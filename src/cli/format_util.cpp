// --format for the CLI (docs/format.md).
#include "cli/format_util.h"

#include <algorithm>
#include <cstdio>
#include <ctime>

#include "kiln/oci.h"

namespace kiln::cli {

int ReportFormatError(const Error& error) {
  (void)ReportError(error);
  return 125;
}

namespace {

void Write(const std::string& s) {
  std::fwrite(s.data(), 1, s.size(), stdout);
}

}  // namespace

int PrintList(const std::string& format, const std::vector<nlohmann::json>& json_rows,
              const std::vector<nlohmann::json>& rows, const format::ListOptions& options, int indent) {
  if (format::IsJsonFormat(format)) {
    nlohmann::json a = nlohmann::json::array();
    for (const auto& r : json_rows)
      a.push_back(r);
    Write(a.dump(indent, ' ', false, nlohmann::json::error_handler_t::replace) + "\n");
    return 0;
  }
  auto out = format::RenderList(format, rows, options);
  if (!out)
    return ReportFormatError(out.error());
  Write(*out);
  return 0;
}

int PrintObjects(const std::string& format, const std::vector<nlohmann::json>& objects,
                 const format::Options& options, int indent) {
  if (format.empty() || format::IsJsonFormat(format)) {
    nlohmann::json a = nlohmann::json::array();
    for (const auto& o : objects)
      a.push_back(o);
    Write(a.dump(indent, ' ', false, nlohmann::json::error_handler_t::replace) + "\n");
    return 0;
  }
  std::string all;
  for (const auto& o : objects) {
    auto out = format::RenderOne(format, o, options);
    if (!out)
      return ReportFormatError(out.error());
    all += *out;
  }
  Write(all);
  return 0;
}

std::string GoTime(const std::string& rfc3339) {
  auto t = ParseRfc3339(rfc3339);
  if (!t)
    return rfc3339;
  time_t tt = static_cast<time_t>(*t);
  struct tm tm = {};
  ::gmtime_r(&tt, &tm);
  char buf[64];
  std::strftime(buf, sizeof buf, "%Y-%m-%d %H:%M:%S +0000 UTC", &tm);
  return buf;
}

int64_t UnixOrZero(const std::string& rfc3339) {
  auto t = ParseRfc3339(rfc3339);
  return t ? *t : -62135596800;
}

Expected<ListFilter> ListFilter::Parse(const std::vector<std::string>& specs, const std::vector<std::string>& keys,
                                       const std::function<std::string(const std::string& key)>& unknown_key) {
  ListFilter f;
  for (const auto& s : specs) {
    size_t eq = s.find('=');
    std::string key = s.substr(0, eq);
    if (std::find(keys.begin(), keys.end(), key) == keys.end())
      return Error(Errc::kInvalidInput, unknown_key(key));
    if (eq == std::string::npos || eq + 1 == s.size())
      return Error(Errc::kInvalidInput, "--filter " + s + ": expected " + key + "=VALUE");
    f.by_key_[key].push_back(s.substr(eq + 1));
  }
  return f;
}

bool ListFilter::Match(
    const std::function<bool(const std::string& key, const std::string& value, size_t index)>& one) const {
  for (const auto& [key, values] : by_key_) {
    bool any = false;
    for (size_t i = 0; i < values.size() && !any; ++i)
      any = one(key, values[i], i);
    if (!any)
      return false;
  }
  return true;
}

bool LabelMatches(const nlohmann::json& labels, const std::string& spec) {
  if (!labels.is_object())
    return false;
  size_t eq = spec.find('=');
  auto it = labels.find(spec.substr(0, eq));
  if (it == labels.end())
    return false;
  return eq == std::string::npos || (it->is_string() && it->get<std::string>() == spec.substr(eq + 1));
}

bool LabelMatches(const std::map<std::string, std::string>& labels, const std::string& spec) {
  size_t eq = spec.find('=');
  auto it = labels.find(spec.substr(0, eq));
  return it != labels.end() && (eq == std::string::npos || it->second == spec.substr(eq + 1));
}

void ListFlags::Add(CLI::App* cmd, const std::string& quiet_help, const std::string& filter_help,
                    const std::string& format_help) {
  cmd->add_flag("-q,--quiet", quiet, quiet_help);
  cmd->add_flag("--noheading,-n", no_heading, "leave out the header row of a table");
  cmd->add_option("-f,--filter", filters, filter_help);
  cmd->add_option("--format", format, format_help);
}

int ListFlags::Print(format::ListOptions o, const std::vector<nlohmann::json>& json_rows,
                     const std::vector<nlohmann::json>& rows, int indent) const {
  o.no_heading = no_heading;
  return PrintList(format, json_rows, rows, o, indent);
}

format::Options TemplateOptions(const std::string& name, const std::string& type_name) {
  format::Options o;
  o.name = name;
  o.type_name = type_name;
  return o;
}

int InspectEach(const std::vector<std::string>& names, const std::string& format, const format::Options& options,
                int indent, const std::function<Expected<nlohmann::json>(const std::string& name)>& one) {
  std::vector<nlohmann::json> out;
  int rc = 0;
  for (const auto& n : names) {
    auto j = one(n);
    if (!j) {
      rc = ReportError(j.error());
      continue;
    }
    out.push_back(std::move(*j));
  }
  int prc = PrintObjects(format, out, options, indent);
  return prc != 0 ? prc : rc;
}

int ForEachName(const std::vector<std::string>& names, const std::function<Status(const std::string& name)>& op) {
  int rc = 0;
  for (const auto& n : names) {
    if (auto st = op(n); !st) {
      rc = ReportError(st.error());
      continue;
    }
    std::printf("%s\n", n.c_str());
  }
  return rc;
}

}  // namespace kiln::cli
