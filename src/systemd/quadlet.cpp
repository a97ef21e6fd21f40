// Quadlet files to systemd units (include/kiln/systemd.h, docs/kube.md
// "Quadlet"). podman's quadlet(5) is the model: the [Container], [Volume],
// [Network] or [Kube] section becomes an ExecStart command line of kiln, the
// other sections ([Unit], [Service], [Install]) are copied as written, and a
// reference to foo.volume or foo.network adds Requires=/After= on the unit
// that makes it. Names: a container is "systemd-<unit>" unless ContainerName=
// says otherwise, a volume "systemd-<unit>" unless VolumeName=, a network
// "systemd-<unit>" unless NetworkName= (podman's defaults).
#include <map>
#include <set>
#include <utility>

#include "kiln/systemd.h"

namespace kiln::systemd {

namespace {

struct Entry {
  std::string key, value;
  int line = 0;
};

struct Section {
  std::string name;
  std::vector<Entry> entries;
};

std::string Trim(const std::string& s) {
  size_t b = s.find_first_not_of(" \t"), e = s.find_last_not_of(" \t\r");
  return b == std::string::npos ? "" : s.substr(b, e - b + 1);
}

/// systemd.syntax(7): [Section] headers, KEY=VALUE, # and ; comments, a
/// trailing backslash continues the line.
Expected<std::vector<Section>> ParseIni(const std::string& path, const std::string& text) {
  std::vector<Section> sections;
  size_t pos = 0;
  int line_no = 0;
  while (pos < text.size()) {
    size_t nl = text.find('\n', pos);
    std::string line = text.substr(pos, nl == std::string::npos ? std::string::npos : nl - pos);
    pos = nl == std::string::npos ? text.size() : nl + 1;
    int start = ++line_no;
    while (!line.empty() && line.back() == '\\' && pos < text.size()) {
      line.pop_back();
      size_t n2 = text.find('\n', pos);
      line += " " + Trim(text.substr(pos, n2 == std::string::npos ? std::string::npos : n2 - pos));
      pos = n2 == std::string::npos ? text.size() : n2 + 1;
      ++line_no;
    }
    line = Trim(line);
    if (line.empty() || line[0] == '#' || line[0] == ';')
      continue;
    if (line[0] == '[') {
      if (line.back() != ']')
        return Error(Errc::kInvalidInput, path + ":" + std::to_string(start) + ": bad section header: " + line);
      sections.push_back({line.substr(1, line.size() - 2), {}});
      continue;
    }
    size_t eq = line.find('=');
    if (eq == std::string::npos || sections.empty())
      return Error(Errc::kInvalidInput, path + ":" + std::to_string(start) + ": expected KEY=VALUE in a [Section]: " + line);
    sections.back().entries.push_back({Trim(line.substr(0, eq)), Trim(line.substr(eq + 1)), start});
  }
  return sections;
}

/// Split a value on white space, honouring "double" and 'single' quotes
/// (Exec=, PodmanArgs= as systemd splits them).
std::vector<std::string> Words(const std::string& v) {
  std::vector<std::string> out;
  std::string cur;
  bool in = false;
  char q = 0;
  for (char c : v) {
    if (q) {
      if (c == q)
        q = 0;
      else
        cur += c;
    } else if (c == '"' || c == '\'') {
      q = c;
      in = true;
    } else if (c == ' ' || c == '\t') {
      if (in)
        out.push_back(cur);
      cur.clear();
      in = false;
    } else {
      cur += c;
      in = true;
    }
  }
  if (in)
    out.push_back(cur);
  return out;
}

std::string Stem(const std::string& name) {
  size_t dot = name.rfind('.');
  return dot == std::string::npos ? name : name.substr(0, dot);
}

std::string Ending(const std::string& name) {
  size_t dot = name.rfind('.');
  return dot == std::string::npos ? "" : name.substr(dot + 1);
}

struct Deps {
  std::set<std::string> units;  // foo-volume.service, bar-network.service
};

/// A Volume= source or a Network= name: foo.volume → systemd-foo (and the
/// unit foo-volume.service), anything else as written.
std::string Ref(const std::string& v, const char* kind, const QuadletOptions& o, Deps* deps) {
  std::string ending = std::string(".") + kind;
  if (v.size() > ending.size() && v.compare(v.size() - ending.size(), ending.size(), ending) == 0) {
    std::string stem = v.substr(0, v.size() - ending.size());
    deps->units.insert(stem + "-" + kind + ".service");
    auto it = o.objects.find(v);
    return it != o.objects.end() ? it->second : "systemd-" + stem;
  }
  return v;
}

Error Unknown(const std::string& path, const Entry& e, const std::string& section) {
  return Error(Errc::kInvalidInput, path + ":" + std::to_string(e.line) + ": unsupported key '" + e.key +
                                        "' in group '" + section + "' (docs/kube.md lists the keys kiln knows)");
}

/// The [Container] section as `kiln run` arguments.
Expected<std::vector<std::string>> ContainerArgs(const std::string& path, const std::string& stem,
                                                 const Section& sec, const QuadletOptions& o, Deps* deps,
                                                 std::string* name) {
  // Keys that map one to one on a run flag (podman's quadlet names).
  static const std::map<std::string, std::string> kFlag = {
      {"EnvironmentFile", "--env-file"}, {"PublishPort", "-p"}, {"User", "--user"},                {"WorkingDir", "--workdir"},
      {"HostName", "--hostname"},    {"AddHost", "--add-host"},         {"DNS", "--dns"},
      {"Entrypoint", "--entrypoint"}, {"Secret", "--secret"},           {"HealthCmd", "--health-cmd"},
      {"HealthInterval", "--health-interval"}, {"HealthRetries", "--health-retries"},
      {"HealthTimeout", "--health-timeout"},   {"HealthStartPeriod", "--health-start-period"},
      {"HealthOnFailure", "--health-on-failure"}, {"StopSignal", "--stop-signal"},
      {"NetworkAlias", "--network-alias"}, {"IP", "--ip"}, {"ReadOnly", "--read-only"},
      {"Tmpfs", "--tmpfs"}};
  std::string image, exec, pod;
  std::vector<std::string> args, extra;
  for (const auto& e : sec.entries) {
    if (e.key == "Image") {
      image = e.value;
    } else if (e.key == "ContainerName") {
      *name = e.value;
    } else if (e.key == "Exec") {
      exec = e.value;
    } else if (e.key == "Pod") {
      pod = e.value;
    } else if (e.key == "Volume") {
      std::string v = e.value;
      size_t colon = v.find(':');
      if (colon != std::string::npos)
        v = Ref(v.substr(0, colon), "volume", o, deps) + v.substr(colon);
      args.insert(args.end(), {"-v", v});
    } else if (e.key == "Network") {
      args.push_back("--network=" + Ref(e.value, "network", o, deps));
    } else if (e.key == "Environment" || e.key == "Label") {
      for (const auto& w : Words(e.value))
        args.insert(args.end(), {e.key == "Label" ? "--label" : "-e", w});
    } else if (e.key == "PodmanArgs" || e.key == "KilnArgs") {
      for (const auto& w : Words(e.value))
        extra.push_back(w);
    } else if (auto it = kFlag.find(e.key); it != kFlag.end()) {
      if (e.key == "ReadOnly") {
        if (e.value == "true" || e.value == "yes" || e.value == "1")
          args.push_back(it->second);
      } else {
        args.insert(args.end(), {it->second, e.value});
      }
    } else {
      return Unknown(path, e, sec.name);
    }
  }
  if (image.empty())
    return Error(Errc::kInvalidInput, path + ": no Image= key in [Container]");
  if (name->empty())
    *name = "systemd-" + stem;
  std::vector<std::string> out = {"run", "-d", "--name", *name};
  if (!pod.empty())
    out.insert(out.end(), {"--pod", pod});
  out.insert(out.end(), args.begin(), args.end());
  out.insert(out.end(), extra.begin(), extra.end());
  out.push_back(image);
  for (const auto& w : Words(exec))
    out.push_back(w);
  return out;
}

}  // namespace

bool IsQuadletFile(const std::string& name) {
  std::string e = Ending(name);
  return Stem(name) != name && !Stem(name).empty() &&
         (e == "container" || e == "volume" || e == "network" || e == "kube");
}

Expected<QuadletUnit> Quadlet(const std::string& name, const std::string& path, const std::string& text,
                              const QuadletOptions& o) {
  if (!IsQuadletFile(name))
    return Error(Errc::kInvalidInput, path + ": not a Quadlet file (.container, .volume, .network or .kube)");
  KILN_ASSIGN_OR_RETURN(std::vector<Section> sections, ParseIni(path, text));
  std::string kind = Ending(name), stem = Stem(name);
  std::string group = kind == "kube" ? "Kube" : std::string(1, static_cast<char>(kind[0] - 'a' + 'A')) + kind.substr(1);
  std::string base = ExecArg(o.kiln) + (o.store_root.empty() ? "" : " --root " + ExecArg(o.store_root));
  auto line = [&](const std::vector<std::string>& words) {
    std::string s = base;
    for (const auto& w : words)
      s += " " + ExecArg(w);
    return s;
  };
  const Section* own = nullptr;
  for (const auto& s : sections)
    if (s.name == group)
      own = &s;
  if (!own)
    return Error(Errc::kInvalidInput, path + ": no [" + group + "] section");

  Deps deps;
  QuadletUnit unit;
  std::string service;
  if (kind == "container") {
    std::string cname;
    KILN_ASSIGN_OR_RETURN(std::vector<std::string> run, ContainerArgs(path, stem, *own, o, &deps, &cname));
    unit.file_name = stem + ".service";
    service += "Environment=KILN_SYSTEMD_UNIT=%n\n";
    service += "KillMode=mixed\n";
    service += "Type=forking\n";
    service += "ExecStartPre=-" + line({"rm", "-f", cname}) + "\n";
    service += "ExecStart=" + line(run) + "\n";
    service += "ExecStop=" + line({"rm", "-f", cname}) + "\n";
    service += "ExecStopPost=-" + line({"rm", "-f", cname}) + "\n";
  } else if (kind == "volume" || kind == "network") {
    std::string vname = "systemd-" + stem;
    std::vector<std::string> create = {kind, "create", "--ignore"};
    std::string name_key = kind == "volume" ? "VolumeName" : "NetworkName";
    for (const auto& e : own->entries) {
      if (e.key == name_key)
        vname = e.value;
      else if (kind == "network" && e.key == "Label")
        for (const auto& w : Words(e.value))
          create.insert(create.end(), {"--label", w});
      else if (kind == "network" && (e.key == "Subnet" || e.key == "Gateway" || e.key == "Driver"))
        create.insert(create.end(), {"--" + std::string(1, static_cast<char>(e.key[0] - 'A' + 'a')) + e.key.substr(1), e.value});
      else if (kind == "network" && e.key == "Internal") {
        if (e.value == "true" || e.value == "yes" || e.value == "1")
          create.push_back("--internal");
      } else
        return Unknown(path, e, own->name);
    }
    create.push_back(vname);
    unit.object = vname;
    unit.file_name = stem + "-" + kind + ".service";
    service += "Type=oneshot\nRemainAfterExit=yes\n";
    service += "ExecStart=" + line(create) + "\n";
  } else {  // kube
    std::string yaml;
    std::vector<std::string> play = {"kube", "play", "--replace"};
    for (const auto& e : own->entries) {
      if (e.key == "Yaml")
        yaml = e.value;
      else if (e.key == "Network")
        play.push_back("--network=" + Ref(e.value, "network", o, &deps));
      else if (e.key == "ConfigMap")
        play.insert(play.end(), {"--configmap", e.value});
      else
        return Unknown(path, e, own->name);
    }
    if (yaml.empty())
      return Error(Errc::kInvalidInput, path + ": no Yaml= key in [Kube]");
    if (yaml[0] != '/') {  // relative to the Quadlet file, as podman
      size_t slash = path.rfind('/');
      if (slash != std::string::npos)
        yaml = path.substr(0, slash + 1) + yaml;
    }
    play.push_back(yaml);
    unit.file_name = stem + ".service";
    service += "Type=oneshot\nRemainAfterExit=yes\n";
    service += "ExecStart=" + line(play) + "\n";
    service += "ExecStop=" + line({"kube", "down", yaml}) + "\n";
  }

  std::string out = "# Automatically generated by kiln generate quadlet from " + path + "\n\n";
  bool wrote_unit = false;
  auto unit_section = [&](const Section* s) {
    out += "[Unit]\n";
    out += "SourcePath=" + path + "\n";
    for (const auto& d : deps.units)
      out += "Requires=" + d + "\nAfter=" + d + "\n";
    if (s)
      for (const auto& e : s->entries)
        out += e.key + "=" + e.value + "\n";
    out += "\n";
    wrote_unit = true;
  };
  for (const auto& s : sections)
    if (s.name == "Unit")
      unit_section(&s);
  if (!wrote_unit)
    unit_section(nullptr);
  out += "[Service]\n" + service;
  for (const auto& s : sections)
    if (s.name == "Service")
      for (const auto& e : s.entries)
        out += e.key + "=" + e.value + "\n";
  out += "\n";
  for (const auto& s : sections) {
    if (s.name == "Unit" || s.name == "Service" || s.name == group)
      continue;
    out += "[" + s.name + "]\n";
    for (const auto& e : s.entries)
      out += e.key + "=" + e.value + "\n";
    out += "\n";
  }
  unit.text = out;
  return unit;
}

}  // namespace kiln::systemd
