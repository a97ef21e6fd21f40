// --format for the CLI (docs/format.md).
#include "cli/format_util.h"

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

}  // namespace kiln::cli
