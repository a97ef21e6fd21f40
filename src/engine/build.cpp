#include "engine/build.h"

#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <mutex>
#include <thread>

#include <nlohmann/json.hpp>

#include "engine/copy.h"
#include "engine/plan.h"
#include "engine/rootfs.h"
#include "kiln/fs.h"
#include "kiln/log.h"
#include "kiln/reference.h"

namespace kiln::engine {

namespace {

constexpr const char kDefaultPath[] = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// One layer of a stage's filesystem. `dir` is empty until the layer is
/// needed on disk (a cache hit never unpacks).
struct LayerRef {
  Descriptor blob;
  Digest diff_id;
  std::string dir;
};

struct StageState {
  ImageConfig config;
  bool cmd_set = false;  // CMD seen in this stage (ENTRYPOINT then keeps it, as BuildKit)
  std::vector<LayerRef> layers;
  Digest key;  // cache key after the last step
  bool done = false;
};

std::string Rfc3339(int64_t t) {
  std::time_t tt = static_cast<std::time_t>(t);
  struct tm tm;
  gmtime_r(&tt, &tm);
  char buf[32];
  std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%SZ", &tm);
  return buf;
}

std::string StageLabelName(const Stage& stage) {
  return stage.name.empty() ? "stage-" + std::to_string(stage.source_index) : stage.name;
}

std::string Where(const Step& step) {
  return step.location.file + ":" + std::to_string(step.location.line);
}

class Builder {
 public:
  Builder(const BuildGraph& graph, Store& store, const BuildOptions& options, Progress& progress)
      : graph_(graph), store_(store), opts_(options), progress_(progress), states_(graph.stages.size()) {}

  Expected<BuildResult> Run();

 private:
  Status RunStage(StageIndex index, const std::atomic<bool>& cancel);
  Status InitFromBase(const Stage& stage, StageState& st);
  Status ExecuteStep(const Stage& stage, const Step& step, StageState& st, const StepLabel& label);
  Status RunStepInSandbox(const Stage& stage, const Step& step, const RunStep& run, StageState& st,
                          const StepLabel& label, const std::string& upper, const std::string& work);
  Status CopyStep_(const Step& step, const CopyStep& copy, StageState& st, const std::string& merged);
  Expected<std::vector<std::string>> LowerDirs(StageState& st);
  Expected<std::string> EmptyDir();
  /// Packs `upper` into a layer (or nothing when it is empty), records it in
  /// `st` and the cache under `key`.
  Status CommitUpper(const std::string& upper, const Step& step, StageState& st, const Digest& key);
  Expected<std::vector<std::string>> InputsFor(const Step& step, StageState& st);
  Expected<CopyRequest> MakeCopyRequest(const CopyStep& copy, const std::string& src_root, bool from_context);
  Expected<std::string> SourceRootFor(const CopySource& from, std::vector<Mount>* mounts,
                                      const std::string& scratch);
  void ApplyConfigStep(const Step& step, StageState& st);
  void AddHistory(const Step& step, StageState& st, bool empty_layer);
  std::string Now() const;
  Expected<BuildResult> WriteFinalImage();

  const BuildGraph& graph_;
  Store& store_;
  const BuildOptions& opts_;
  Progress& progress_;
  std::vector<StageState> states_;
  std::mutex empty_mu_;
  std::string empty_dir_;
  std::vector<std::string> temp_dirs_;
  std::mutex temp_mu_;
};

std::string Builder::Now() const {
  if (opts_.timestamp)
    return Rfc3339(*opts_.timestamp);
  return Rfc3339(static_cast<int64_t>(std::time(nullptr)));
}

Expected<std::string> Builder::EmptyDir() {
  std::lock_guard<std::mutex> lock(empty_mu_);
  if (empty_dir_.empty()) {
    KILN_ASSIGN_OR_RETURN(std::string d, store_.MakeTempDir("empty-"));
    empty_dir_ = d;
  }
  return empty_dir_;
}

Expected<std::vector<std::string>> Builder::LowerDirs(StageState& st) {
  std::vector<std::string> lowers;
  for (auto it = st.layers.rbegin(); it != st.layers.rend(); ++it) {
    if (it->dir.empty()) {
      auto dir = store_.UnpackedLayer(it->blob, it->diff_id);
      if (!dir)
        return std::move(dir).error().WithContext("unpack layer " + it->blob.digest.str());
      it->dir = *dir;
    }
    lowers.push_back(it->dir);
  }
  if (lowers.empty()) {
    KILN_ASSIGN_OR_RETURN(std::string e, EmptyDir());
    lowers.push_back(e);
  }
  return lowers;
}

Status Builder::InitFromBase(const Stage& stage, StageState& st) {
  switch (stage.base.kind) {
    case StageBase::Kind::kScratch:
      st.config.set_platform(stage.platform);
      st.key = Digest::Of("kiln-base scratch " + stage.platform.str());
      return Ok();
    case StageBase::Kind::kStage: {
      const StageState& parent = states_[static_cast<size_t>(stage.base.stage)];
      st.config = parent.config;
      st.layers = parent.layers;
      st.key = parent.key;
      return Ok();
    }
    case StageBase::Kind::kContext:
      return Error(Errc::kUnsupported, stage.location.file + ":" + std::to_string(stage.location.line) +
                                           ": FROM a named build context is not supported yet");
    case StageBase::Kind::kImage:
      break;
  }
  std::string ref = stage.base.digest.empty() ? stage.base.image : stage.base.image + "@" + stage.base.digest;
  auto image = store_.ResolveImage(stage.base.digest.empty() ? stage.base.image : stage.base.digest, stage.platform);
  if (!image && image.error().code() == Errc::kNotFound && opts_.pull) {
    KILN_TRY(opts_.pull(stage.base.image, stage.platform));
    image = store_.ResolveImage(stage.base.image, stage.platform);
  }
  if (!image)
    return std::move(image).error().WithContext(stage.location.file + ":" + std::to_string(stage.location.line) +
                                                ": FROM " + stage.base.written);
  st.config = image->config;
  if (image->manifest.layers.size() != image->config.diff_ids.size())
    return Error(Errc::kCorrupt, "image " + ref + ": manifest has " + std::to_string(image->manifest.layers.size()) +
                                     " layers but config has " + std::to_string(image->config.diff_ids.size()) +
                                     " diff_ids");
  for (size_t i = 0; i < image->manifest.layers.size(); ++i)
    st.layers.push_back({image->manifest.layers[i], image->config.diff_ids[i], ""});
  st.key = Digest::Of("kiln-base image " + image->manifest_descriptor.digest.str());
  return Ok();
}

Expected<CopyRequest> Builder::MakeCopyRequest(const CopyStep& copy, const std::string& src_root,
                                               bool from_context) {
  CopyRequest req;
  req.src_root = src_root;
  req.from_context = from_context;
  req.ignore = from_context ? opts_.ignore : nullptr;
  for (const auto& s : copy.sources)
    req.sources.push_back(s);
  for (const auto& h : copy.heredoc_sources)
    req.inline_files.emplace_back(h.name, h.content);
  req.dest = copy.dest;
  req.chmod = copy.chmod;
  req.excludes = copy.excludes;
  req.parents = copy.parents;
  req.unpack_archives = copy.is_add && copy.unpack.value_or(true) && from_context;
  req.what = copy.is_add ? "ADD" : "COPY";
  return req;
}

Expected<std::string> Builder::SourceRootFor(const CopySource& from, std::vector<Mount>* mounts,
                                             const std::string& scratch) {
  switch (from.kind) {
    case CopySource::Kind::kContext:
      return opts_.context_dir;
    case CopySource::Kind::kNamedContext: {
      auto it = opts_.named_contexts.find(from.name);
      if (it == opts_.named_contexts.end())
        return Error(Errc::kInvalidInput, "no build context named \"" + from.name + "\" (use --build-context)");
      return it->second;
    }
    case CopySource::Kind::kStage:
    case CopySource::Kind::kImage:
      break;
  }
  StageState image_state;
  StageState* src = nullptr;
  if (from.kind == CopySource::Kind::kStage) {
    src = &states_[static_cast<size_t>(from.stage)];
  } else {
    auto image = store_.ResolveImage(from.image);
    if (!image && image.error().code() == Errc::kNotFound && opts_.pull) {
      KILN_TRY(opts_.pull(from.image, graph_.target_platform));
      image = store_.ResolveImage(from.image);
    }
    if (!image)
      return std::move(image).error();
    for (size_t i = 0; i < image->manifest.layers.size() && i < image->config.diff_ids.size(); ++i)
      image_state.layers.push_back({image->manifest.layers[i], image->config.diff_ids[i], ""});
    src = &image_state;
  }
  KILN_ASSIGN_OR_RETURN(std::vector<std::string> lowers, LowerDirs(*src));
  std::string target = JoinPath(scratch, "src" + std::to_string(mounts->size()));
  KILN_TRY(MakeDirs(target));
  KILN_ASSIGN_OR_RETURN(Mount m, Mount::ReadOnly(lowers, target));
  mounts->push_back(std::move(m));
  return target;
}

Expected<std::vector<std::string>> Builder::InputsFor(const Step& step, StageState& st) {
  (void)st;
  std::vector<std::string> inputs;
  if (step.kind != StepKind::kCopy && step.kind != StepKind::kAdd)
    return inputs;
  const auto& copy = std::get<CopyStep>(step.op);
  switch (copy.from.kind) {
    case CopySource::Kind::kStage:
      inputs.push_back("stage " + states_[static_cast<size_t>(copy.from.stage)].key.str());
      return inputs;
    case CopySource::Kind::kImage: {
      auto image = store_.ResolveImage(copy.from.image);
      inputs.push_back("image " + (image ? image->manifest_descriptor.digest.str() : copy.from.image));
      return inputs;
    }
    case CopySource::Kind::kContext:
    case CopySource::Kind::kNamedContext: {
      KILN_ASSIGN_OR_RETURN(std::string root, SourceRootFor(copy.from, nullptr, ""));
      for (const auto& s : copy.sources)
        if (s.rfind("http://", 0) == 0 || s.rfind("https://", 0) == 0)
          return Error(Errc::kUnsupported, Where(step) + ": ADD from a URL is not supported yet");
      KILN_ASSIGN_OR_RETURN(CopyRequest req, MakeCopyRequest(copy, root, true));
      auto d = HashCopySources(req);
      if (!d)
        return std::move(d).error().WithContext(Where(step));
      inputs.push_back("context " + d->str());
      return inputs;
    }
  }
  return inputs;
}

Status Builder::CommitUpper(const std::string& upper, const Step& step, StageState& st, const Digest& key) {
  bool empty = true;
  {
    KILN_ASSIGN_OR_RETURN(UniqueFd probe, OpenFile(upper, O_RDONLY | O_DIRECTORY));
    DIR* d = ::fdopendir(probe.release());
    if (d) {
      while (struct dirent* e = ::readdir(d)) {
        if (std::strcmp(e->d_name, ".") && std::strcmp(e->d_name, "..")) {
          empty = false;
          break;
        }
      }
      ::closedir(d);
    }
  }
  nlohmann::json record;
  if (empty) {
    record["empty"] = true;
    AddHistory(step, st, true);
  } else {
    KILN_ASSIGN_OR_RETURN(BlobWriter writer, store_.NewBlobWriter());
    layer::PackOptions po;
    po.compression = opts_.compression;
    po.clamp_mtime = opts_.timestamp;
    po.from_overlay_upper = true;
    auto info = layer::PackDirectory(upper, writer.fd(), po);
    if (!info)
      return std::move(info).error().WithContext(Where(step) + ": pack layer");
    std::string media = opts_.docker_format
                            ? std::string(opts_.compression == layer::Compression::kNone ? kMediaTypeDockerLayer
                                                                                          : kMediaTypeDockerLayerGzip)
                            : info->media_type;
    if (opts_.docker_format && opts_.compression == layer::Compression::kZstd)
      media = info->media_type;
    KILN_ASSIGN_OR_RETURN(Descriptor desc, writer.Commit(media));
    // The upperdir is already this layer in overlay form: adopt it as the
    // layer directory instead of unpacking the blob again.
    std::string layer_dir;
    auto adopted = store_.GetOrCreateLayerDir(info->diff_id, [&](const std::string& staging) -> Status {
      if (::rmdir(staging.c_str()) != 0 && errno != ENOENT)
        return Error::FromErrno("rmdir " + staging);
      if (::rename(upper.c_str(), staging.c_str()) != 0)
        return Error::FromErrno("rename " + upper);
      return Ok();
    });
    if (adopted)
      layer_dir = *adopted;
    st.layers.push_back({desc, info->diff_id, layer_dir});
    st.config.diff_ids.push_back(info->diff_id);
    record["layer"] = nlohmann::json::parse(ToJson(desc));
    record["diff_id"] = info->diff_id.str();
    AddHistory(step, st, false);
  }
  // Records are written even with --no-cache (which only skips the
  // lookup), so that the next build can hit them.
  (void)store_.PutCacheRecord(key.hex(), record.dump());
  return Ok();
}

void Builder::AddHistory(const Step& step, StageState& st, bool empty_layer) {
  HistoryEntry h;
  h.created = Now();
  h.created_by = step.created_by;
  h.comment = "kiln";
  h.empty_layer = empty_layer;
  st.config.history.push_back(std::move(h));
}

void Builder::ApplyConfigStep(const Step& step, StageState& st) {
  ContainerConfig& c = st.config.config;
  std::visit(
      [&](const auto& op) {
        using T = std::decay_t<decltype(op)>;
        if constexpr (std::is_same_v<T, EnvStep>) {
          for (const auto& [k, v] : op.vars)
            c.SetEnv(k, v);
        } else if constexpr (std::is_same_v<T, LabelStep>) {
          for (const auto& [k, v] : op.labels)
            c.labels[k] = v;
        } else if constexpr (std::is_same_v<T, ExposeStep>) {
          for (const auto& p : op.ports)
            if (std::find(c.exposed_ports.begin(), c.exposed_ports.end(), p) == c.exposed_ports.end())
              c.exposed_ports.push_back(p);
          std::sort(c.exposed_ports.begin(), c.exposed_ports.end());
        } else if constexpr (std::is_same_v<T, VolumeStep>) {
          for (const auto& p : op.paths)
            if (std::find(c.volumes.begin(), c.volumes.end(), p) == c.volumes.end())
              c.volumes.push_back(p);
          std::sort(c.volumes.begin(), c.volumes.end());
        } else if constexpr (std::is_same_v<T, UserStep>) {
          c.user = op.user;
        } else if constexpr (std::is_same_v<T, WorkdirStep>) {
          c.working_dir = op.path;
        } else if constexpr (std::is_same_v<T, CommandStep>) {
          if (step.kind == StepKind::kEntrypoint) {
            c.entrypoint = op.argv;
            // A new ENTRYPOINT resets a CMD inherited from the base (Docker).
            if (!st.cmd_set)
              c.cmd = std::nullopt;
          } else {
            c.cmd = op.argv;
            st.cmd_set = true;
          }
        } else if constexpr (std::is_same_v<T, StopSignalStep>) {
          c.stop_signal = op.signal;
        } else if constexpr (std::is_same_v<T, HealthcheckStep>) {
          HealthConfig h;
          h.test = op.test;
          h.interval = op.interval_ns;
          h.timeout = op.timeout_ns;
          h.start_period = op.start_period_ns;
          h.start_interval = op.start_interval_ns;
          h.retries = op.retries;
          c.healthcheck = h;
        } else if constexpr (std::is_same_v<T, ShellStep>) {
          c.shell = op.shell;
        } else if constexpr (std::is_same_v<T, OnbuildStep>) {
          c.on_build.push_back(op.trigger);
        } else if constexpr (std::is_same_v<T, MaintainerStep>) {
          st.config.author = op.author;
        }
      },
      step.op);
}

/// Reads a pipe line by line into progress output until EOF.
void PumpOutput(int fd, Progress& progress, const StepLabel& label, std::string* tail) {
  std::string buf;
  char chunk[8192];
  for (;;) {
    ssize_t n = ::read(fd, chunk, sizeof chunk);
    if (n < 0 && errno == EINTR)
      continue;
    if (n <= 0)
      break;
    buf.append(chunk, static_cast<size_t>(n));
    size_t start = 0;
    for (size_t nl; (nl = buf.find('\n', start)) != std::string::npos; start = nl + 1) {
      std::string line = buf.substr(start, nl - start);
      progress.Output(label, line);
      tail->append(line).push_back('\n');
    }
    buf.erase(0, start);
    if (tail->size() > (size_t(1) << 20))
      tail->erase(0, tail->size() - (size_t(1) << 19));
  }
  if (!buf.empty()) {
    progress.Output(label, buf);
    tail->append(buf).push_back('\n');
  }
}

Status Builder::RunStepInSandbox(const Stage& stage, const Step& step, const RunStep& run, StageState& st,
                                 const StepLabel& label, const std::string& upper, const std::string& work) {
  (void)stage;
  KILN_ASSIGN_OR_RETURN(std::vector<std::string> lowers, LowerDirs(st));
  SandboxSpec spec;
  spec.lower_dirs = lowers;
  spec.upper_dir = upper;
  spec.work_dir = work;
  spec.argv = run.argv;
  spec.env = run.env;
  auto has_env = [&](const std::string& k) {
    for (const auto& e : spec.env)
      if (e.compare(0, k.size() + 1, k + "=") == 0)
        return true;
    return false;
  };
  for (const auto& a : run.args)
    if (!has_env(a.substr(0, a.find('='))))
      spec.env.push_back(a);
  for (const auto& p : step.proxy_env)
    spec.env.push_back(p);
  if (!has_env("PATH"))
    spec.env.insert(spec.env.begin(), kDefaultPath);
  spec.cwd = run.workdir.empty() ? "/" : run.workdir;
  if (!run.user.empty()) {
    KILN_ASSIGN_OR_RETURN(auto passwd, ReadFileFromLayers(lowers, "/etc/passwd"));
    KILN_ASSIGN_OR_RETURN(auto group, ReadFileFromLayers(lowers, "/etc/group"));
    auto user = ResolveUser(run.user, passwd, group);
    if (!user)
      return std::move(user).error().WithContext(Where(step) + ": USER " + run.user);
    spec.uid = user->uid;
    spec.gid = user->gid;
    spec.supplementary_gids = user->supplementary_gids;
  }
  NetworkMode net = opts_.network;
  if (run.network == "none")
    net = NetworkMode::kNone;
  else if (run.network == "host")
    net = NetworkMode::kHost;
  if (net == NetworkMode::kPrivate && NetworkHelper().empty()) {
    static std::once_flag warned;
    std::call_once(warned, [] {
      LogWarn("no usable network helper (slirp4netns or pasta, with access to /dev/net/tun): RUN steps use the host network");
    });
    net = NetworkMode::kHost;
  }
  spec.network = net;
  spec.hostname = "kiln";
  spec.etc_hostname = "kiln\n";
  spec.etc_hosts = "127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n127.0.1.1\tkiln\n";
  if (net == NetworkMode::kNone) {
    spec.etc_resolv_conf = "";
  } else if (net == NetworkMode::kPrivate && NetworkHelper() == "slirp4netns") {
    spec.etc_resolv_conf = "nameserver 10.0.2.3\n";
  } else {
    auto host = ReadFile("/etc/resolv.conf", 1 << 20);
    spec.etc_resolv_conf = host ? *host : "";
  }
  // Heredoc scripts and other files the step reads: bind-mounted read-only
  // from temp files, so they never land in the layer.
  KILN_ASSIGN_OR_RETURN(std::string files_dir, store_.MakeTempDir("files-"));
  {
    std::lock_guard<std::mutex> lock(temp_mu_);
    temp_dirs_.push_back(files_dir);
  }
  for (size_t i = 0; i < run.files.size(); ++i) {
    std::string host = JoinPath(files_dir, "f" + std::to_string(i));
    KILN_TRY(WriteFileAtomic(host, run.files[i].second, 0755));
    spec.mounts.push_back({SandboxMount::Type::kBind, host, run.files[i].first, true, ""});
  }
  for (const auto& m : run.mounts) {
    if (m.type == MountType::kTmpfs) {
      spec.mounts.push_back({SandboxMount::Type::kTmpfs, "", m.target, false,
                             m.size ? "size=" + std::to_string(*m.size) : std::string()});
      continue;
    }
    if (m.type == MountType::kBind && (!m.from || m.from->kind == CopySource::Kind::kContext)) {
      // The source must stay inside the context, symlinks and ".." included
      // (SECURITY.md I2).
      char* ctx_real = ::realpath(opts_.context_dir.c_str(), nullptr);
      char* src_real = ::realpath(JoinPath(opts_.context_dir, m.source).c_str(), nullptr);
      std::string ctx = ctx_real ? ctx_real : "", src = src_real ? src_real : "";
      std::free(ctx_real);
      std::free(src_real);
      if (src.empty())
        return Error(Errc::kNotFound, Where(step) + ": RUN --mount source \"" + m.source + "\": not found in the build context");
      if (src != ctx && src.rfind(ctx + "/", 0) != 0)
        return Error(Errc::kInvalidInput, Where(step) + ": RUN --mount source \"" + m.source + "\" is outside the build context");
      spec.mounts.push_back({SandboxMount::Type::kBind, src, m.target, m.read_only, ""});
      continue;
    }
    if (m.type == MountType::kCache) {
      std::string id = m.id.empty() ? m.target : m.id;
      std::string dir = JoinPath(store_.root(), "cache-mounts/" + Digest::Of(id).hex());
      KILN_TRY(MakeDirs(dir, m.mode.value_or(0755)));
      spec.mounts.push_back({SandboxMount::Type::kBind, dir, m.target, false, ""});
      continue;
    }
    return Error(Errc::kUnsupported, Where(step) + ": RUN --mount type=" +
                                         std::string(m.type == MountType::kSecret ? "secret"
                                                     : m.type == MountType::kSsh  ? "ssh"
                                                                                  : "bind from a stage") +
                                         " is not supported yet");
  }

  int pipefd[2];
  if (::pipe2(pipefd, O_CLOEXEC) != 0)
    return Error::FromErrno("pipe");
  UniqueFd read_end(pipefd[0]), write_end(pipefd[1]);
  spec.stdout_fd = write_end.get();
  spec.stderr_fd = write_end.get();
  std::string tail;
  std::thread pump([&] { PumpOutput(read_end.get(), progress_, label, &tail); });
  auto result = RunSandbox(spec);
  write_end.reset();
  pump.join();
  if (!result)
    return std::move(result).error().WithContext(Where(step) + ": " + step.text);
  if (result->status() != 0) {
    std::string msg = step.text + " (" + Where(step) + ") ";
    if (!result->message.empty())
      msg += "failed: " + result->message + " (exit status " + std::to_string(result->exit_code) + ")";
    else if (result->signal)
      msg += "was killed by signal " + std::to_string(result->signal);
    else
      msg += "exited with status " + std::to_string(result->exit_code);
    if (progress_.mode() == ProgressMode::kQuiet && !tail.empty())
      msg += "\n" + tail;
    return Error(Errc::kFailed, msg);
  }
  return Ok();
}

Status Builder::ExecuteStep(const Stage& stage, const Step& step, StageState& st, const StepLabel& label) {
  if (step.kind == StepKind::kArg)
    return Ok();
  bool layered = step.kind == StepKind::kRun || step.kind == StepKind::kCopy || step.kind == StepKind::kAdd ||
                 step.kind == StepKind::kWorkdir;
  if (!layered) {
    ApplyConfigStep(step, st);
    AddHistory(step, st, true);
    st.key = StepCacheKey(st.key, step, {});
    return Ok();
  }
  auto start = std::chrono::steady_clock::now();
  KILN_ASSIGN_OR_RETURN(std::vector<std::string> inputs, InputsFor(step, st));
  Digest key = StepCacheKey(st.key, step, inputs);
  if (opts_.use_cache) {
    auto rec = store_.GetCacheRecord(key.hex());
    if (rec) {
      auto j = nlohmann::json::parse(*rec, nullptr, false);
      bool ok = !j.is_discarded() && j.is_object();
      if (ok && j.value("empty", false)) {
        if (step.kind == StepKind::kWorkdir)
          ApplyConfigStep(step, st);
        AddHistory(step, st, true);
        st.key = key;
        progress_.Cached(label, key.str());
        return Ok();
      }
      if (ok && j.contains("layer")) {
        auto desc = ParseDescriptor(j["layer"].dump());
        auto diff = Digest::Parse(j.value("diff_id", ""));
        if (desc && diff && store_.HasBlob(desc->digest)) {
          std::string dir = PathExists(store_.LayerDir(*diff)) ? store_.LayerDir(*diff) : "";
          st.layers.push_back({*desc, *diff, dir});
          st.config.diff_ids.push_back(*diff);
          if (step.kind == StepKind::kWorkdir)
            ApplyConfigStep(step, st);
          AddHistory(step, st, false);
          st.key = key;
          progress_.Cached(label, key.str());
          return Ok();
        }
      }
    }
  }
  progress_.Start(label);
  KILN_ASSIGN_OR_RETURN(std::string scratch, store_.MakeTempDir("step-"));
  std::string upper = JoinPath(scratch, "upper"), work = JoinPath(scratch, "work"),
              merged = JoinPath(scratch, "merged");
  struct Cleanup {
    std::string dir;
    ~Cleanup() { (void)RemoveAll(dir); }
  } cleanup{scratch};
  KILN_TRY(MakeDirs(upper));
  KILN_TRY(MakeDirs(work));
  KILN_TRY(MakeDirs(merged));
  ::chmod(upper.c_str(), 0755);

  Status s;
  if (step.kind == StepKind::kRun) {
    s = RunStepInSandbox(stage, step, std::get<RunStep>(step.op), st, label, upper, work);
  } else {
    KILN_ASSIGN_OR_RETURN(std::vector<std::string> lowers, LowerDirs(st));
    auto mount = Mount::Overlay(lowers, upper, work, merged);
    if (!mount)
      return std::move(mount).error().WithContext(Where(step));
    KILN_ASSIGN_OR_RETURN(UniqueFd root, OpenFile(merged, O_RDONLY | O_DIRECTORY));
    if (step.kind == StepKind::kWorkdir) {
      const auto& wd = std::get<WorkdirStep>(step.op);
      std::optional<uint32_t> uid, gid;
      if (!st.config.config.user.empty()) {
        KILN_ASSIGN_OR_RETURN(auto passwd, ReadFileFromLayers(lowers, "/etc/passwd"));
        KILN_ASSIGN_OR_RETURN(auto group, ReadFileFromLayers(lowers, "/etc/group"));
        auto user = ResolveUser(st.config.config.user, passwd, group);
        if (user) {
          uid = user->uid;
          gid = user->gid;
        }
      }
      auto made = MakeDirsInRoot(root.get(), wd.path, 0755, uid, gid);
      s = made ? Ok() : Status(std::move(made).error().WithContext(Where(step) + ": WORKDIR " + wd.path));
    } else {
      s = CopyStep_(step, std::get<CopyStep>(step.op), st, merged);
    }
    root.reset();
    if (auto u = mount->Unmount(); !u && s)
      s = std::move(u);
  }
  if (!s) {
    progress_.Failed(label, s.error().message());
    return s;
  }
  if (step.kind == StepKind::kWorkdir)
    ApplyConfigStep(step, st);
  KILN_TRY(CommitUpper(upper, step, st, key));
  st.key = key;
  double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  progress_.Done(label, key.str(), secs);
  return Ok();
}

Status Builder::CopyStep_(const Step& step, const CopyStep& copy, StageState& st, const std::string& merged) {
  if (copy.sources.size() + copy.heredoc_sources.size() > 1 && (copy.dest.empty() || copy.dest.back() != '/'))
    return Error(Errc::kInvalidInput, Where(step) + ": when using " + std::string(copy.is_add ? "ADD" : "COPY") +
                                          " with more than one source file, the destination must be a "
                                          "directory and end with a /");
  for (const auto& s : copy.sources)
    if (s.rfind("http://", 0) == 0 || s.rfind("https://", 0) == 0 || s.rfind("git@", 0) == 0)
      return Error(Errc::kUnsupported, Where(step) + ": ADD from a URL or git repository is not supported yet");
  std::vector<Mount> mounts;
  std::string scratch = DirName(merged);
  KILN_ASSIGN_OR_RETURN(std::string src_root, SourceRootFor(copy.from, &mounts, scratch));
  bool from_context = copy.from.kind == CopySource::Kind::kContext || copy.from.kind == CopySource::Kind::kNamedContext;
  KILN_ASSIGN_OR_RETURN(CopyRequest req, MakeCopyRequest(copy, src_root, from_context));
  if (!copy.chown.empty()) {
    KILN_ASSIGN_OR_RETURN(std::vector<std::string> lowers, LowerDirs(st));
    KILN_ASSIGN_OR_RETURN(auto passwd, ReadFileFromLayers(lowers, "/etc/passwd"));
    KILN_ASSIGN_OR_RETURN(auto group, ReadFileFromLayers(lowers, "/etc/group"));
    auto user = ResolveUser(copy.chown, passwd, group);
    if (!user)
      return std::move(user).error().WithContext(Where(step) + ": --chown=" + copy.chown);
    req.uid = user->uid;
    req.gid = user->gid;
  }
  KILN_ASSIGN_OR_RETURN(UniqueFd root, OpenFile(merged, O_RDONLY | O_DIRECTORY));
  auto s = CopyIntoRoot(req, root.get(), merged);
  if (!s)
    return std::move(s).error().WithContext(Where(step));
  return Ok();
}

Status Builder::RunStage(StageIndex index, const std::atomic<bool>& cancel) {
  const Stage& stage = graph_.stages[static_cast<size_t>(index)];
  StageState& st = states_[static_cast<size_t>(index)];
  std::string name = StageLabelName(stage);
  int total = static_cast<int>(stage.steps.size());
  StepLabel from_label{name, 0, total, "FROM " + stage.base.written};
  progress_.Start(from_label);
  KILN_TRY(InitFromBase(stage, st));
  // The base's ONBUILD triggers run in this stage (the compiler inserted
  // them) and are not passed on (Docker).
  st.config.config.on_build.clear();
  int n = 0;
  for (const Step& step : stage.steps) {
    ++n;
    if (cancel)
      return Error(Errc::kCancelled, "cancelled");
    StepLabel label{name, n, total, step.text};
    KILN_TRY(ExecuteStep(stage, step, st, label));
  }
  st.config.set_platform(stage.platform);
  st.done = true;
  return Ok();
}

Expected<BuildResult> Builder::WriteFinalImage() {
  const Stage& stage = graph_.stages[static_cast<size_t>(graph_.target)];
  StageState& st = states_[static_cast<size_t>(graph_.target)];
  ImageConfig config = st.config;
  config.created = Now();
  config.set_platform(stage.platform);
  for (const auto& [k, v] : opts_.labels)
    config.config.labels[k] = v;
  std::vector<Descriptor> layers;
  for (const auto& l : st.layers)
    layers.push_back(l.blob);
  config.diff_ids.clear();
  for (const auto& l : st.layers)
    config.diff_ids.push_back(l.diff_id);
  KILN_ASSIGN_OR_RETURN(Descriptor manifest,
                        store_.WriteImage(config, layers,
                                          opts_.docker_format ? kMediaTypeDockerManifest : kMediaTypeOciManifest,
                                          opts_.annotations));
  KILN_TRY(store_.AddImage(manifest, opts_.tags));
  KILN_ASSIGN_OR_RETURN(StoredImage image, store_.LoadImage(manifest));
  return BuildResult{manifest, image.id()};
}

Expected<BuildResult> Builder::Run() {
  std::vector<std::vector<NodeId>> deps(graph_.stages.size());
  for (size_t i = 0; i < graph_.stages.size(); ++i)
    for (StageIndex d : graph_.stages[i].deps)
      deps[i].push_back(static_cast<NodeId>(d));
  KILN_ASSIGN_OR_RETURN(Plan plan, Plan::Create(std::move(deps)));
  Status s = RunPlan(plan, opts_.jobs, [this](NodeId id, const std::atomic<bool>& cancel) {
    return RunStage(static_cast<StageIndex>(id), cancel);
  });
  for (const auto& d : temp_dirs_)
    (void)RemoveAll(d);
  if (!empty_dir_.empty())
    (void)RemoveAll(empty_dir_);
  if (!s)
    return std::move(s).error();
  return WriteFinalImage();
}

}  // namespace

Digest StepCacheKey(const Digest& parent, const Step& step, const std::vector<std::string>& inputs) {
  nlohmann::json j;
  j["v"] = 1;
  j["parent"] = parent.str();
  j["step"] = StepCacheJson(step);
  j["inputs"] = inputs;
  return Digest::Of(j.dump());
}

Expected<BuildResult> Build(const BuildGraph& graph, Store& store, const BuildOptions& options, Progress& progress) {
  if (graph.stages.empty())
    return Error(Errc::kInvalidInput, "nothing to build: the graph has no stages");
  if (options.squash)
    return Error(Errc::kUnsupported, "--squash is not supported yet");
  Builder b(graph, store, options, progress);
  return b.Run();
}

}  // namespace kiln::engine
