#include "engine/build.h"

#include <dirent.h>
#include <fcntl.h>
#include <sys/file.h>
#include <sys/random.h>
#include <sys/sendfile.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <set>
#include <atomic>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <map>
#include <mutex>
#include <thread>

#include <nlohmann/json.hpp>
#include <openssl/evp.h>
#include <openssl/hmac.h>

#include "engine/copy.h"
#include "engine/plan.h"
#include "kiln/cancel.h"
#include "kiln/fs.h"
#include "kiln/log.h"
#include "kiln/reference.h"
#include "kiln/rootfs.h"

namespace kiln::engine {

using namespace rootfs;  // Mount, OpenInRoot, MakeDirsInRoot, ReadFileFromLayers, ResolveUser

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
  // --explain-cache and the per-stage record of the last build's inputs.
  std::string base_desc;                       // "image sha256:...", "scratch linux/amd64", "stage NAME"
  bool use_cache = true;                       // false: --no-cache, --layers=false or --no-cache-filter
  nlohmann::json record_steps = nlohmann::json::array();
  nlohmann::json prev_record;                  // null when no earlier build is recorded
  std::string prev_record_text;
  std::string first_change;                    // the earliest change found in this stage
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
  Expected<std::vector<std::string>> InputsFor(const Step& step, StageState& st, nlohmann::json* info);
  StatCache* StatCacheFor(const std::string& root);
  void SaveStatCaches();
  Expected<std::string> SecretKey();
  std::string StageRecordKey(const Stage& stage) const;
  std::vector<std::string> Explain(const Stage& stage, size_t index, StageState& st, const nlohmann::json& cur);
  std::vector<std::string> ExplainFiles(const std::string& old_input, const std::string& new_input);
  Expected<CopyRequest> MakeCopyRequest(const CopyStep& copy, const std::string& src_root, bool from_context);
  Expected<std::string> SourceRootFor(const CopySource& from, std::vector<Mount>* mounts,
                                      const std::string& scratch);
  Expected<std::string> WritableView(const Step& step, const RunMount& m, size_t index, const std::string& source,
                                     const std::string& scratch, std::vector<Mount>* mounts);
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
  std::mutex stat_mu_;
  std::map<std::string, std::unique_ptr<StatCache>> stat_caches_;  // by source root
  int64_t start_ns_ = 0;  // CLOCK_REALTIME_COARSE at the start (the stat caches' stamp)
  std::mutex secret_mu_;
  std::string secret_key_;
};

/// A RUN --mount=type=bind source in the build context: (real host path,
/// path relative to the context). It must stay inside the context,
/// symlinks and ".." included (docs/security.md I2).
Expected<std::pair<std::string, std::string>> BindSource(const std::string& context_dir, const Step& step,
                                                         const RunMount& m) {
  char* ctx_real = ::realpath(context_dir.c_str(), nullptr);
  char* src_real = ::realpath(JoinPath(context_dir, m.source).c_str(), nullptr);
  std::string ctx = ctx_real ? ctx_real : "", src = src_real ? src_real : "";
  std::free(ctx_real);
  std::free(src_real);
  if (src.empty())
    return Error(Errc::kNotFound, Where(step) + ": RUN --mount source \"" + m.source + "\": not found in the build context");
  if (src != ctx && src.rfind(ctx + "/", 0) != 0)
    return Error(Errc::kInvalidInput, Where(step) + ": RUN --mount source \"" + m.source + "\" is outside the build context");
  return std::make_pair(src, src == ctx ? std::string() : src.substr(ctx.size() + 1));
}

/// The directory name of a cache mount: its id (default: the target), and
/// an owner or mode other than 0:0 0755 too, since BuildKit keys a cache by
/// id and the directory it starts from (made with that owner and mode).
std::string CacheMountKey(const RunMount& m) {
  std::string id = m.id.empty() ? m.target : m.id;
  int64_t uid = m.uid.value_or(0), gid = m.gid.value_or(0);
  uint32_t mode = m.mode.value_or(0755);
  if (uid == 0 && gid == 0 && mode == 0755)
    return Digest::Of(id).hex();
  return Digest::Of(id + '\0' + std::to_string(uid) + ':' + std::to_string(gid) + ':' + std::to_string(mode)).hex();
}

/// docs/security.md H13/H38: an id the build gives a file or a RUN must be one
/// chown/setuid take as an id (4294967295 means "leave unchanged" to
/// chown, so --chown=4294967295 gave root-owned files) and one that is
/// mapped in the user namespace kiln runs in.
Status CheckBuildId(const std::string& where, const char* kind, uint32_t id) {
  if (id == 0xffffffffu)
    return Error(Errc::kInvalidInput, where + ": " + kind + " 4294967295 is out of range (0 to 4294967294)");
  auto maps = ReadIdMappings(std::string_view(kind) == "gid");
  if (!maps || maps->empty())
    return Ok();
  std::string ranges;
  for (const auto& m : *maps) {
    if (id >= m.container_id && id - m.container_id < m.size)
      return Ok();
    ranges += (ranges.empty() ? "" : ", ") + std::to_string(m.container_id) + "-" +
              std::to_string(uint64_t(m.container_id) + m.size - 1);
  }
  return Error(Errc::kInvalidInput, where + ": " + kind + " " + std::to_string(id) +
                                        " is not mapped in kiln's user namespace (mapped: " + ranges +
                                        "; a rootless build has the ids of /etc/sub" + (kind[0] == 'g' ? "gid" : "uid") +
                                        ")");
}

/// The name of a state file or cache record derived from `what`.
std::string HexName(const std::string& prefix, const std::string& what) {
  return prefix + Digest::Of(what).hex();
}

StatCache* Builder::StatCacheFor(const std::string& root) {
  if (!opts_.stat_cache)
    return nullptr;
  std::lock_guard<std::mutex> lock(stat_mu_);
  auto& slot = stat_caches_[root];
  if (!slot) {
    slot = std::make_unique<StatCache>(start_ns_);
    if (auto text = store_.GetStateFile(HexName("statcache-", root)))
      slot->Load(*text);
  }
  return slot.get();
}

void Builder::SaveStatCaches() {
  std::lock_guard<std::mutex> lock(stat_mu_);
  for (const auto& [root, cache] : stat_caches_) {
    if (!cache->dirty())
      continue;
    if (auto s = store_.PutStateFile(HexName("statcache-", root), cache->Serialize()); !s)
      LogWarn("stat cache for " + root + ": " + s.error().message());
  }
}

Expected<std::string> Builder::SecretKey() {
  std::lock_guard<std::mutex> lock(secret_mu_);
  if (!secret_key_.empty())
    return secret_key_;
  auto key = store_.GetStateFile("secret-hmac-key", 4096);
  if (!key && key.error().code() == Errc::kNotFound) {
    unsigned char buf[32];
    if (::getrandom(buf, sizeof buf, 0) != static_cast<ssize_t>(sizeof buf))
      return Error::FromErrno("getrandom");
    auto made = store_.CreateStateFile("secret-hmac-key", std::string(reinterpret_cast<char*>(buf), sizeof buf), 0600);
    if (!made && made.error().code() != Errc::kFailed)
      return std::move(made).error();
    key = store_.GetStateFile("secret-hmac-key", 4096);
  }
  if (!key)
    return std::move(key).error().WithContext("the store's secret key");
  if (key->size() < 16)
    return Error(Errc::kCorrupt, store_.root() + "/state/secret-hmac-key: too short");
  secret_key_ = *key;
  return secret_key_;
}

std::string Builder::StageRecordKey(const Stage& stage) const {
  return HexName("stage-", opts_.context_dir + "\n" + opts_.containerfile + "\n" + StageLabelName(stage) + "\n" +
                               stage.platform.str());
}

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
    // The same layer twice (two RUN steps that changed nothing have the same
    // empty diff_id): overlayfs refuses a repeated lowerdir (EINVAL, seen
    // rootless). The topmost copy alone shows the same tree.
    if (std::find(lowers.begin(), lowers.end(), it->dir) == lowers.end())
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
      // As BuildKit's empty image (and Docker's hello-world): PATH is set.
      st.config.config.SetEnv("PATH", kDefaultPath + 5);
      st.config.config.working_dir = "/";  // BuildKit's empty image has WorkingDir "/"
      st.key = Digest::Of("kiln-base scratch " + stage.platform.str());
      st.base_desc = "scratch";
      return Ok();
    case StageBase::Kind::kStage: {
      const StageState& parent = states_[static_cast<size_t>(stage.base.stage)];
      st.config = parent.config;
      st.layers = parent.layers;
      st.key = parent.key;
      st.base_desc = "the result of stage " + StageLabelName(graph_.stages[static_cast<size_t>(stage.base.stage)]);
      return Ok();
    }
    case StageBase::Kind::kContext:
      return Error(Errc::kUnsupported, stage.location.file + ":" + std::to_string(stage.location.line) +
                                           ": FROM a named build context is not supported yet");
    case StageBase::Kind::kImage:
      break;
  }
  std::string ref = stage.base.digest.empty() ? stage.base.image : stage.base.image + "@" + stage.base.digest;
  auto image = stage.base.digest.empty() ? ResolveStoreImage(store_, stage.base.image, stage.platform)
                                         : store_.ResolveImage(stage.base.digest, stage.platform);
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
  st.base_desc = "image " + stage.base.written + " (" + image->manifest_descriptor.digest.str() + ")";
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
    auto image = ResolveStoreImage(store_, from.image);
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

/// What a rw bind mount of `source` (in the build context) shows the step:
/// for a directory an overlay with `source` as its only lower layer and a
/// fresh upper in the step's scratch directory (writes land there and are
/// removed with it; nothing is copied up front), for a file a copy.
Expected<std::string> Builder::WritableView(const Step& step, const RunMount& m, size_t index,
                                            const std::string& source, const std::string& scratch,
                                            std::vector<Mount>* mounts) {
  std::string base = JoinPath(scratch, "rw" + std::to_string(index));
  struct stat st;
  if (::stat(source.c_str(), &st) != 0)
    return Error::FromErrno(Where(step) + ": RUN --mount source \"" + m.source + "\"");
  if (S_ISDIR(st.st_mode)) {
    std::string upper = base + "/upper", work = base + "/work", merged = base + "/merged";
    KILN_TRY(MakeDirs(upper));
    KILN_TRY(MakeDirs(work));
    KILN_TRY(MakeDirs(merged));
    ::chmod(upper.c_str(), st.st_mode & 07777);
    auto mount = Mount::Overlay({source}, upper, work, merged);
    if (!mount)
      return Error(Errc::kSandbox, Where(step) + ": RUN --mount source \"" + m.source +
                                       "\", rw: cannot put a copy-on-write layer over it (" + mount.error().message() +
                                       "); without rw the mount is read-only");
    mounts->push_back(std::move(*mount));
    return merged;
  }
  if (!S_ISREG(st.st_mode))
    return Error(Errc::kInvalidInput, Where(step) + ": RUN --mount source \"" + m.source +
                                          "\", rw: not a directory or regular file");
  KILN_TRY(MakeDirs(base));
  std::string copy = base + "/file";
  KILN_ASSIGN_OR_RETURN(UniqueFd in, OpenFile(source, O_RDONLY | O_NOFOLLOW | O_NONBLOCK));
  UniqueFd out(::open(copy.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, st.st_mode & 07777));
  if (!out)
    return Error::FromErrno("create " + copy);
  for (;;) {
    ssize_t n = ::sendfile(out.get(), in.get(), nullptr, size_t(1) << 30);
    if (n == 0)
      break;
    if (n < 0) {
      if (errno == EINTR)
        continue;
      return Error::FromErrno(Where(step) + ": copy RUN --mount source \"" + m.source + "\"");
    }
  }
  return copy;
}

Expected<std::vector<std::string>> Builder::InputsFor(const Step& step, StageState& st, nlohmann::json* info) {
  (void)st;
  std::vector<std::string> inputs;
  if (step.kind == StepKind::kRun) {
    const auto& run = std::get<RunStep>(step.op);
    for (const auto& m : run.mounts) {
      if (m.type == MountType::kBind && (!m.from || m.from->kind == CopySource::Kind::kContext)) {
        // What the step can read through a bind mount of the context.
        KILN_ASSIGN_OR_RETURN(auto src, BindSource(opts_.context_dir, step, m));
        CopyRequest req;
        req.src_root = opts_.context_dir;
        req.ignore = nullptr;  // the mount shows the directory as it is, ignored files included
        req.sources = {"/" + src.second};
        req.what = "RUN --mount";
        auto d = HashCopySources(req, StatCacheFor(opts_.context_dir));
        if (!d)
          return std::move(d).error().WithContext(Where(step));
        inputs.push_back("bind " + m.target + " " + d->str());
      } else if (m.type == MountType::kSecret && opts_.secret_cache_key) {
        auto it = opts_.secrets.find(m.id);
        if (it == opts_.secrets.end()) {
          inputs.push_back("secret " + m.id + " absent");
          continue;
        }
        KILN_ASSIGN_OR_RETURN(std::string k, SecretKey());
        unsigned char mac[EVP_MAX_MD_SIZE];
        unsigned int len = 0;
        if (!HMAC(EVP_sha256(), k.data(), static_cast<int>(k.size()),
                  reinterpret_cast<const unsigned char*>(it->second.data()), it->second.size(), mac, &len))
          return Error(Errc::kFailed, "HMAC of secret " + m.id + " failed");
        inputs.push_back("secret " + m.id + " hmac-" + Digest::FromSha256Bytes(mac).hex());
      }
    }
    return inputs;
  }
  if (step.kind != StepKind::kCopy && step.kind != StepKind::kAdd)
    return inputs;
  const auto& copy = std::get<CopyStep>(step.op);
  switch (copy.from.kind) {
    case CopySource::Kind::kStage: {
      const Stage& from = graph_.stages[static_cast<size_t>(copy.from.stage)];
      inputs.push_back("stage " + states_[static_cast<size_t>(copy.from.stage)].key.str());
      (*info)["from"] = "stage " + StageLabelName(from);
      return inputs;
    }
    case CopySource::Kind::kImage: {
      auto image = ResolveStoreImage(store_, copy.from.image);
      inputs.push_back("image " + (image ? image->manifest_descriptor.digest.str() : copy.from.image));
      (*info)["from"] = "image " + copy.from.image;
      return inputs;
    }
    case CopySource::Kind::kContext:
    case CopySource::Kind::kNamedContext: {
      KILN_ASSIGN_OR_RETURN(std::string root, SourceRootFor(copy.from, nullptr, ""));
      for (const auto& s : copy.sources)
        if (s.rfind("http://", 0) == 0 || s.rfind("https://", 0) == 0)
          return Error(Errc::kUnsupported, Where(step) + ": ADD from a URL is not supported yet");
      KILN_ASSIGN_OR_RETURN(CopyRequest req, MakeCopyRequest(copy, root, true));
      SourceListing listing;
      auto d = HashCopySources(req, StatCacheFor(root), &listing);
      if (!d)
        return std::move(d).error().WithContext(Where(step));
      inputs.push_back("context " + d->str());
      (*info)["from"] = copy.from.kind == CopySource::Kind::kContext ? "the build context" : "context " + copy.from.name;
      // The file list behind the digest, for --explain-cache: one record
      // per distinct digest, written once (content-addressed).
      std::string name = "files-" + d->hex();
      if (!PathExists(JoinPath(store_.root(), "cache/" + name + ".json"))) {
        nlohmann::json files = nlohmann::json::object();
        for (const auto& [rel, meta] : listing)
          files[rel] = meta;
        std::string text = nlohmann::json{{"files", files}}.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
        if (text.size() < (size_t(3) << 20))
          (void)store_.PutCacheRecord(name, text);
      }
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
  GcRoot keep;  // what the record needs through prune (docs/store.md)
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
    keep.blobs = {desc};
    keep.layers = {info->diff_id};
    AddHistory(step, st, false);
  }
  // Records are written even with --no-cache (which only skips the
  // lookup), so that the next build can hit them; not with --layers=false
  // (buildah keeps no intermediate images then).
  if (opts_.write_cache)
    (void)store_.PutCacheRecord(key.hex(), record.dump(), keep);
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
  spec.volatile_upper = true;  // fresh per step; its layer blob is made durable
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
  // HOME as runc sets it for Docker/BuildKit when neither ENV nor ARG does:
  // the user's passwd entry, "/" without one (so /root for root).
  // The default user is root with the supplementary groups /etc/group
  // gives it, as runc does for BuildKit (`groups=0(root),10(wheel)`).
  const bool need_home = !has_env("HOME");
  {
    KILN_ASSIGN_OR_RETURN(auto passwd, ReadFileFromLayers(lowers, "/etc/passwd"));
    KILN_ASSIGN_OR_RETURN(auto group, ReadFileFromLayers(lowers, "/etc/group"));
    auto user = ResolveUser(run.user.empty() ? "0" : run.user, passwd, group);
    if (!user)
      return std::move(user).error().WithContext(Where(step) + ": USER " + run.user);
    if (!run.user.empty()) {
      KILN_TRY(CheckBuildId(Where(step) + ": USER " + run.user, "uid", user->uid));
      KILN_TRY(CheckBuildId(Where(step) + ": USER " + run.user, "gid", user->gid));
      spec.uid = user->uid;
      spec.gid = user->gid;
      spec.supplementary_gids = user->supplementary_gids;
    } else {
      // Without a USER, a group kiln's user namespace cannot map (a
      // single-id mapping) is left out rather than failing every RUN.
      for (uint32_t g : user->supplementary_gids)
        if (CheckBuildId("", "gid", g))
          spec.supplementary_gids.push_back(g);
    }
    if (need_home)
      spec.env.push_back("HOME=" + user->home);
  }
  NetworkMode net = opts_.network;
  if (run.network == "none")
    net = NetworkMode::kNone;
  else if (run.network == "host")
    net = NetworkMode::kHost;
  // Without a usable helper: loopback only, never the host's network.
  std::string net_warning;
  net = ResolvePrivateNetwork(net, &net_warning);
  if (!net_warning.empty()) {
    static std::once_flag warned;
    std::call_once(warned, [&] { LogWarn("RUN steps: " + net_warning); });
  }
  spec.network = net;
  spec.hostname = opts_.hostname;
  spec.etc_hostname = opts_.hostname + "\n";
  spec.etc_hosts = "127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n127.0.1.1\t" + opts_.hostname + "\n";
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
  std::string secret_dir;
  int secret_n = 0;
  struct SecretCleanup {
    std::string* dir;
    ~SecretCleanup() {
      if (!dir->empty())
        (void)RemoveAll(*dir);
    }
  } secret_cleanup{&secret_dir};
  std::vector<Mount> rw_mounts;  // overlays behind rw bind mounts, unmounted on return
  // Cache mounts, one directory per id. sharing= (docs/security.md H48): one
  // flock per id, held until the step ends, across threads and kiln
  // processes; taken in the ids' order (no deadlock between two steps that
  // name the same ids in another order). shared: a shared lock (all shared
  // users at once); locked: an exclusive lock, waited for (the step bodies
  // never overlap); private: the cache when nobody else uses it, else an
  // empty throwaway directory (never another step's in-flight writes).
  std::vector<UniqueFd> cache_locks;
  std::map<std::string, std::string> cache_hosts;  // hex(id) -> host directory
  {
    // A new cache directory starts as BuildKit's: mode (0755) and owner
    // uid:gid (0:0) from the first mount naming it.
    struct Want {
      CacheSharing sharing;
      uint32_t mode;
      uint32_t uid, gid;
    };
    std::map<std::string, Want> wanted;  // hex(id) -> strongest sharing, mode, owner
    for (const auto& m : run.mounts) {
      if (m.type != MountType::kCache)
        continue;
      std::string hex = CacheMountKey(m);
      auto [it, fresh] = wanted.emplace(hex, Want{m.sharing, static_cast<uint32_t>(m.mode.value_or(0755)),
                                                  static_cast<uint32_t>(m.uid.value_or(0)),
                                                  static_cast<uint32_t>(m.gid.value_or(0))});
      if (!fresh && (m.sharing == CacheSharing::kLocked ||
                     (m.sharing == CacheSharing::kPrivate && it->second.sharing == CacheSharing::kShared)))
        it->second.sharing = m.sharing;
    }
    auto init_cache_dir = [&](const std::string& dir, const Want& want) -> Status {
      KILN_TRY(CheckBuildId(Where(step) + ": RUN --mount=type=cache", "uid", want.uid));
      KILN_TRY(CheckBuildId(Where(step) + ": RUN --mount=type=cache", "gid", want.gid));
      if (::chown(dir.c_str(), want.uid, want.gid) != 0)
        return Error::FromErrno(Where(step) + ": chown cache mount to " + std::to_string(want.uid) + ":" +
                                std::to_string(want.gid));
      if (::chmod(dir.c_str(), want.mode) != 0)
        return Error::FromErrno(Where(step) + ": chmod cache mount");
      return Ok();
    };
    for (const auto& [hex, want] : wanted) {
      std::string dir = JoinPath(store_.root(), "cache-mounts/" + hex);
      const bool is_new = ::access(dir.c_str(), F_OK) != 0;
      KILN_TRY(MakeDirs(dir, want.mode));
      if (is_new)
        KILN_TRY(init_cache_dir(dir, want));
      std::string lock_path = dir + ".lock";
      int lfd = ::open(lock_path.c_str(), O_RDWR | O_CREAT | O_NOFOLLOW | O_CLOEXEC, 0600);
      if (lfd < 0)
        return Error::FromErrno("open cache lock " + lock_path);
      UniqueFd lock_fd(lfd);
      int op = want.sharing == CacheSharing::kShared   ? LOCK_SH
               : want.sharing == CacheSharing::kLocked ? LOCK_EX
                                                       : LOCK_EX | LOCK_NB;
      int rc;
      while ((rc = ::flock(lock_fd.get(), op)) != 0 && errno == EINTR) {
      }
      std::string host = dir;
      if (rc != 0) {
        if (want.sharing != CacheSharing::kPrivate || errno != EWOULDBLOCK)
          return Error::FromErrno("lock cache " + lock_path);
        lock_fd.reset();
        KILN_ASSIGN_OR_RETURN(host, store_.MakeTempDir("cache-private-"));
        {
          std::lock_guard<std::mutex> lock(temp_mu_);
          temp_dirs_.push_back(host);
        }
        KILN_TRY(init_cache_dir(host, want));
      }
      if (lock_fd.valid())
        cache_locks.push_back(std::move(lock_fd));
      cache_hosts[hex] = host;
    }
  }
  for (const auto& m : run.mounts) {
    if (m.type == MountType::kTmpfs) {
      spec.mounts.push_back({SandboxMount::Type::kTmpfs, "", m.target, false,
                             m.size ? "size=" + std::to_string(*m.size) : std::string()});
      continue;
    }
    if (m.type == MountType::kBind && (!m.from || m.from->kind == CopySource::Kind::kContext)) {
      KILN_ASSIGN_OR_RETURN(auto src, BindSource(opts_.context_dir, step, m));
      std::string host = src.first;
      if (!m.read_only) {
        // rw lets the step write there, never into the user's context
        // (docs/security.md H37): as in BuildKit the writes go to a throwaway
        // copy-on-write layer, dropped after the step.
        KILN_ASSIGN_OR_RETURN(host, WritableView(step, m, static_cast<size_t>(&m - run.mounts.data()), src.first,
                                                DirName(upper), &rw_mounts));
      }
      spec.mounts.push_back({SandboxMount::Type::kBind, host, m.target, m.read_only, ""});
      continue;
    }
    if (m.type == MountType::kCache) {
      std::string id = m.id.empty() ? m.target : m.id;
      spec.mounts.push_back({SandboxMount::Type::kBind, cache_hosts.at(CacheMountKey(m)), m.target, false, ""});
      continue;
    }
    if (m.type == MountType::kSecret) {
      // The value goes into a private file on a tmpfs (/dev/shm when it can),
      // bind-mounted read-only; the mount stub is removed after the run, so
      // it is never in the layer. Never logged, never in the key (but
      // --secret-cache-key mixes its HMAC in, InputsFor).
      auto it = opts_.secrets.find(m.id);
      if (it == opts_.secrets.end()) {
        if (m.required)
          return Error(Errc::kInvalidInput, Where(step) + ": secret \"" + m.id +
                                                "\" is required but was not given (kiln build --secret id=" + m.id +
                                                ",src=FILE)");
        continue;
      }
      if (m.target.empty()) {
        // env= without target=: the variable only, no file (BuildKit).
        spec.env.push_back(m.env + "=" + it->second);
        continue;
      }
      if (secret_dir.empty()) {
        char tmpl[] = "/dev/shm/kiln-secrets-XXXXXX";
        if (::mkdtemp(tmpl)) {
          secret_dir = tmpl;
        } else {
          KILN_ASSIGN_OR_RETURN(secret_dir, store_.MakeTempDir("secrets-"));
        }
        ::chmod(secret_dir.c_str(), 0700);
      }
      std::string path = JoinPath(secret_dir, "s" + std::to_string(secret_n++));
      int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
      if (fd < 0)
        return Error::FromErrno("create secret file " + path);
      UniqueFd f(fd);
      KILN_TRY(WriteAll(f.get(), it->second));
      uid_t uid = static_cast<uid_t>(m.uid.value_or(0));
      gid_t gid = static_cast<gid_t>(m.gid.value_or(0));
      if (::fchown(f.get(), uid, gid) != 0)
        return Error(Errc::kFailed, Where(step) + ": secret \"" + m.id + "\": chown to " + std::to_string(uid) + ":" +
                                        std::to_string(gid) + ": " + std::strerror(errno));
      if (::fchmod(f.get(), m.mode.value_or(0400)) != 0)
        return Error::FromErrno("chmod " + path);
      spec.mounts.push_back({SandboxMount::Type::kBind, path, m.target, true, ""});
      if (!m.env.empty())
        spec.env.push_back(m.env + "=" + it->second);
      continue;
    }
    if (m.type == MountType::kSsh) {
      // The agent's socket itself is bound into the RUN (its owner and mode
      // stay the host's); SSH_AUTH_SOCK points at it.
      auto it = opts_.ssh.find(m.id);
      if (it == opts_.ssh.end()) {
        if (m.required)
          return Error(Errc::kInvalidInput, Where(step) + ": ssh agent \"" + m.id +
                                                "\" is required but was not given (kiln build --ssh " + m.id + ")");
        continue;
      }
      spec.mounts.push_back({SandboxMount::Type::kBind, it->second, m.target, false, ""});
      std::erase_if(spec.env, [](const std::string& e) { return e.rfind("SSH_AUTH_SOCK=", 0) == 0; });
      spec.env.push_back("SSH_AUTH_SOCK=" + m.target);
      continue;
    }
    return Error(Errc::kUnsupported, Where(step) + ": RUN --mount type=bind from a stage or image is not supported yet");
  }

  int pipefd[2];
  if (::pipe2(pipefd, O_CLOEXEC) != 0)
    return Error::FromErrno("pipe");
  UniqueFd read_end(pipefd[0]), write_end(pipefd[1]);
  spec.stdout_fd = write_end.get();
  spec.stderr_fd = write_end.get();
  std::string tail;
  std::thread pump([&] { PumpOutput(read_end.get(), progress_, label, &tail); });
  auto result = SandboxOrHost(opts_.sandbox).Run(spec);
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
  size_t index = st.record_steps.size();
  if (step.kind == StepKind::kArg) {
    st.record_steps.push_back(nlohmann::json{{"text", step.text}, {"arg", true}});
    return Ok();
  }
  bool layered = step.kind == StepKind::kRun || step.kind == StepKind::kCopy || step.kind == StepKind::kAdd ||
                 step.kind == StepKind::kWorkdir;
  nlohmann::json info = nlohmann::json::object();
  info["text"] = step.text;
  info["parent"] = st.key.str();
  info["op"] = StepCacheJson(step);
  // What goes into the image config must be UTF-8 (the OCI config is JSON):
  // refuse ENV, LABEL, CMD, ... with other bytes rather than change them.
  if (!layered || step.kind == StepKind::kWorkdir) {
    try {
      (void)info["op"].dump();
    } catch (const nlohmann::json::type_error&) {
      std::string word = step.text.substr(0, step.text.find_first_of(" \t"));
      for (char& ch : word)
        if (static_cast<unsigned char>(ch) >= 0x80)
          ch = '?';
      return Error(Errc::kInvalidInput,
                   Where(step) + ": " + word + " holds bytes that are not UTF-8; the image config (JSON) needs UTF-8");
    }
  }
  if (!layered) {
    ApplyConfigStep(step, st);
    AddHistory(step, st, true);
    st.key = StepCacheKey(st.key, step, {});
    info["key"] = st.key.str();
    info["inputs"] = nlohmann::json::array();
    if (opts_.explain_cache)
      (void)Explain(stage, index, st, info);
    st.record_steps.push_back(std::move(info));
    return Ok();
  }
  auto start = std::chrono::steady_clock::now();
  KILN_ASSIGN_OR_RETURN(std::vector<std::string> inputs, InputsFor(step, st, &info));
  Digest key = StepCacheKey(st.key, step, inputs);
  info["key"] = key.str();
  info["inputs"] = inputs;
  std::vector<std::string> reasons;
  if (opts_.explain_cache)
    reasons = Explain(stage, index, st, info);
  st.record_steps.push_back(std::move(info));
  if (opts_.use_cache && st.use_cache) {
    auto rec = store_.GetCacheRecord(key.hex());
    if (rec) {
      auto j = nlohmann::json::parse(*rec, nullptr, false);
      bool ok = !j.is_discarded() && j.is_object();
      if (ok && j.value("empty", false)) {
        if (step.kind == StepKind::kWorkdir)
          ApplyConfigStep(step, st);
        AddHistory(step, st, true);
        st.key = key;
        if (opts_.explain_cache)
          progress_.Explain(label, true, {});
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
          if (opts_.explain_cache)
            progress_.Explain(label, true, {});
          progress_.Cached(label, key.str());
          return Ok();
        }
      }
    }
  }
  if (opts_.explain_cache) {
    if (!opts_.use_cache)
      reasons.insert(reasons.begin(), opts_.write_cache ? "--no-cache" : "--layers=false");
    else if (!st.use_cache)
      reasons.insert(reasons.begin(), "--no-cache-filter names this stage");
    progress_.Explain(label, false, reasons);
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
    KILN_TRY(CheckBuildId(Where(step) + ": --chown=" + copy.chown, "uid", user->uid));
    KILN_TRY(CheckBuildId(Where(step) + ": --chown=" + copy.chown, "gid", user->gid));
    req.uid = user->uid;
    req.gid = user->gid;
  }
  KILN_ASSIGN_OR_RETURN(UniqueFd root, OpenFile(merged, O_RDONLY | O_DIRECTORY));
  auto s = CopyIntoRoot(req, root.get(), merged);
  if (!s)
    return std::move(s).error().WithContext(Where(step));
  return Ok();
}

std::vector<std::string> Builder::ExplainFiles(const std::string& old_input, const std::string& new_input) {
  auto load = [&](const std::string& input) -> nlohmann::json {
    size_t colon = input.find(':');
    if (colon == std::string::npos)
      return nullptr;
    auto text = store_.GetCacheRecord("files-" + input.substr(colon + 1));
    if (!text)
      return nullptr;
    auto j = nlohmann::json::parse(*text, nullptr, false);
    if (j.is_discarded() || !j.is_object() || !j.contains("files") || !j["files"].is_object())
      return nullptr;
    return j["files"];
  };
  nlohmann::json a = load(old_input), b = load(new_input);
  if (a.is_null() || b.is_null())
    return {"the files it copies changed (no file list recorded)"};
  std::vector<std::string> out;
  int more = 0;
  auto add = [&](std::string r) {
    if (out.size() < 10)
      out.push_back(std::move(r));
    else
      ++more;
  };
  auto split = [](const std::string& meta) {
    // "mode uid:gid [sha256:...|-> target]"
    std::array<std::string, 3> parts;
    size_t s1 = meta.find(' ');
    parts[0] = meta.substr(0, s1);
    if (s1 != std::string::npos) {
      size_t s2 = meta.find(' ', s1 + 1);
      parts[1] = meta.substr(s1 + 1, s2 == std::string::npos ? std::string::npos : s2 - s1 - 1);
      if (s2 != std::string::npos)
        parts[2] = meta.substr(s2 + 1);
    }
    return parts;
  };
  auto octal = [](const std::string& dec) {
    char buf[16];
    std::snprintf(buf, sizeof buf, "%04lo", std::strtoul(dec.c_str(), nullptr, 10) & 07777ul);
    return std::string(buf);
  };
  for (const auto& [rel, meta] : b.items()) {
    if (!a.contains(rel)) {
      add("file " + rel + " was added");
      continue;
    }
    std::string om = a[rel].is_string() ? a[rel].get<std::string>() : "", nm = meta.is_string() ? meta.get<std::string>() : "";
    if (om == nm)
      continue;
    auto o = split(om), n = split(nm);
    std::vector<std::string> what;
    unsigned long otype = std::strtoul(o[0].c_str(), nullptr, 10) & ~07777ul,
                  ntype = std::strtoul(n[0].c_str(), nullptr, 10) & ~07777ul;
    if (otype != ntype)
      what.push_back("type");
    else if (o[0] != n[0])
      what.push_back("mode " + octal(o[0]) + " -> " + octal(n[0]));
    if (o[1] != n[1])
      what.push_back("owner " + o[1] + " -> " + n[1]);
    if (o[2] != n[2] && otype == ntype)
      what.push_back(n[2].rfind("->", 0) == 0 ? "link target" : "content");
    std::string joined;
    for (const auto& w : what)
      joined += (joined.empty() ? "" : ", ") + w;
    add("file " + rel + " changed: " + joined);
  }
  for (const auto& [rel, meta] : a.items())
    if (!b.contains(rel))
      add("file " + rel + " was removed");
  if (more)
    out.push_back("... and " + std::to_string(more) + " more files");
  if (out.empty())
    out.push_back("the files it copies changed");
  return out;
}

std::vector<std::string> Builder::Explain(const Stage& stage, size_t index, StageState& st, const nlohmann::json& cur) {
  (void)stage;
  std::string text = cur.value("text", "");
  auto note_first = [&](const std::string& why) {
    if (st.first_change.empty())
      st.first_change = "step " + std::to_string(index + 1) + " (" + text + "): " + why;
  };
  if (st.prev_record.is_null())
    return {"no earlier build of this stage is recorded"};
  const auto& steps = st.prev_record["steps"];
  if (index >= steps.size() || !steps[index].is_object() || !steps[index].contains("key")) {
    std::string why = "a new step (the last build of this stage had " + std::to_string(steps.size()) + " steps)";
    note_first(why);
    return {why};
  }
  const auto& old = steps[index];
  if (old.value("key", "") == cur.value("key", ""))
    return {"the same inputs as the last build, but no cache record (not written: --layers=false or a failed "
            "build; or removed: kiln prune --cache)"};
  std::vector<std::string> own;
  bool first = true;
  for (size_t k = 0; k < index && k < st.record_steps.size(); ++k)
    first = first && !st.record_steps[k].contains("key");
  bool parent_changed = old.value("parent", "") != cur.value("parent", "");
  if (parent_changed && first) {
    std::string was = st.prev_record.value("base", "");
    own.push_back(was == st.base_desc ? "the base changed: " + st.base_desc
                                      : "the base changed: " + was + " -> " + st.base_desc);
  }
  const auto& oo = old["op"];
  const auto& co = cur["op"];
  if (oo != co) {
    if (!oo.is_object() || oo.value("kind", "") != co.value("kind", "") || old.value("text", "") != text) {
      own.push_back("the instruction changed (was: " + old.value("text", "") + ")");
    } else {
      const auto& oop = oo["op"];
      const auto& cop = co["op"];
      std::set<std::string> fields;
      for (const auto& [k, v] : oop.items())
        fields.insert(k);
      for (const auto& [k, v] : cop.items())
        fields.insert(k);
      for (const auto& f : fields) {
        nlohmann::json ov = oop.contains(f) ? oop[f] : nlohmann::json(), cv = cop.contains(f) ? cop[f] : nlohmann::json();
        if (ov == cv)
          continue;
        if ((f == "args" || f == "env") && ov.is_array() && cv.is_array()) {
          std::map<std::string, std::string> om, cm;
          for (const auto& e : ov)
            if (e.is_string()) {
              std::string kv = e.get<std::string>();
              om[kv.substr(0, kv.find('='))] = kv;
            }
          for (const auto& e : cv)
            if (e.is_string()) {
              std::string kv = e.get<std::string>();
              cm[kv.substr(0, kv.find('='))] = kv;
            }
          std::set<std::string> names;
          for (const auto& [k, v] : om)
            if (!cm.count(k) || cm[k] != v)
              names.insert(k);
          for (const auto& [k, v] : cm)
            if (!om.count(k))
              names.insert(k);
          for (const auto& n : names)
            own.push_back((f == "args" ? "build arg " : "ENV ") + n + " changed");
          continue;
        }
        own.push_back("its " + f + " changed");
      }
    }
  }
  const auto& oi = old["inputs"];
  const auto& ci = cur["inputs"];
  if (oi != ci && oi.is_array() && ci.is_array()) {
    for (size_t i = 0; i < std::max(oi.size(), ci.size()); ++i) {
      std::string os = i < oi.size() && oi[i].is_string() ? oi[i].get<std::string>() : "";
      std::string cs = i < ci.size() && ci[i].is_string() ? ci[i].get<std::string>() : "";
      if (os == cs)
        continue;
      std::string type = cs.substr(0, cs.find(' '));
      std::string from = cur.value("from", "");
      if (type == "context" && os.rfind("context ", 0) == 0) {
        for (auto& r : ExplainFiles(os, cs))
          own.push_back(from.empty() ? r : r + " (in " + from + ")");
      } else if (type == "stage") {
        own.push_back("the result of " + from + " changed");
      } else if (type == "image") {
        own.push_back(from + " has a different digest");
      } else if (type == "secret") {
        size_t a = cs.find(' '), b = cs.find(' ', a + 1);
        own.push_back("secret " + cs.substr(a + 1, b - a - 1) + " changed");
      } else if (type == "bind") {
        size_t a = cs.find(' '), b = cs.find(' ', a + 1);
        own.push_back("the files bind-mounted at " + cs.substr(a + 1, b - a - 1) + " changed");
      } else {
        own.push_back("its inputs changed");
      }
    }
  }
  if (!own.empty()) {
    note_first(own[0]);
    return own;
  }
  if (parent_changed)
    return {st.first_change.empty() ? "an earlier step changed" : "an earlier step changed: " + st.first_change};
  return {"its cache key changed"};
}

Status Builder::RunStage(StageIndex index, const std::atomic<bool>& cancel) {
  const Stage& stage = graph_.stages[static_cast<size_t>(index)];
  StageState& st = states_[static_cast<size_t>(index)];
  std::string name = StageLabelName(stage);
  int total = static_cast<int>(stage.steps.size());
  StepLabel from_label{name, 0, total, "FROM " + stage.base.written};
  progress_.Start(from_label);
  KILN_TRY(InitFromBase(stage, st));
  for (const auto& f : opts_.no_cache_filter)
    if (f == stage.name || f == std::to_string(stage.source_index))
      st.use_cache = false;
  std::string record_key = StageRecordKey(stage);
  if (auto text = store_.GetCacheRecord(record_key)) {
    st.prev_record_text = *text;
    auto j = nlohmann::json::parse(*text, nullptr, false);
    if (!j.is_discarded() && j.is_object() && j.value("v", 0) == 1 && j.contains("steps") && j["steps"].is_array())
      st.prev_record = std::move(j);
  }
  // The base's ONBUILD triggers run in this stage (the compiler inserted
  // them) and are not passed on (Docker).
  st.config.config.on_build.clear();
  int n = 0;
  for (const Step& step : stage.steps) {
    ++n;
    if (cancel || Cancelled())
      return Error(Errc::kCancelled, "cancelled");
    StepLabel label{name, n, total, step.text};
    KILN_TRY(ExecuteStep(stage, step, st, label));
  }
  st.config.set_platform(stage.platform);
  st.done = true;
  // The inputs of this build of the stage, for the next --explain-cache.
  std::string record = nlohmann::json{{"v", 1}, {"base", st.base_desc}, {"steps", st.record_steps}}.dump(
      -1, ' ', false, nlohmann::json::error_handler_t::replace);
  if (record != st.prev_record_text)
    (void)store_.PutCacheRecord(record_key, record);
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
  {
    struct timespec ts;
    ::clock_gettime(CLOCK_REALTIME_COARSE, &ts);  // the clock file timestamps come from
    start_ns_ = int64_t(ts.tv_sec) * 1000000000 + ts.tv_nsec;
  }
  for (const auto& f : opts_.no_cache_filter) {
    bool known = false;
    for (const Stage& stage : graph_.stages)
      known = known || f == stage.name || f == std::to_string(stage.source_index);
    if (!known)
      LogWarn("--no-cache-filter " + f + ": no such stage in the build");
  }
  Status s = RunPlan(plan, opts_.jobs, [this](NodeId id, const std::atomic<bool>& cancel) {
    return RunStage(static_cast<StageIndex>(id), cancel);
  });
  SaveStatCaches();
  for (const auto& d : temp_dirs_)
    (void)RemoveAll(d);
  if (!empty_dir_.empty())
    (void)RemoveAll(empty_dir_);
  if (!s)
    return std::move(s).error();
  KILN_TRY(CheckCancelled());  // SIGINT/SIGTERM: no image, no name
  return WriteFinalImage();
}

}  // namespace

namespace {

// A byte-exact, unambiguous serialisation of a JSON value (strings as
// length-prefixed raw bytes), for cache keys of non-UTF-8 input.
void CacheKeyBytes(const nlohmann::json& j, std::string& out) {
  auto str = [&](const std::string& s) {
    out += 's';
    out += std::to_string(s.size());
    out += ':';
    out += s;
  };
  if (j.is_object()) {
    out += 'o';
    out += std::to_string(j.size());
    out += ':';
    for (const auto& [k, v] : j.items()) {
      str(k);
      CacheKeyBytes(v, out);
    }
  } else if (j.is_array()) {
    out += 'a';
    out += std::to_string(j.size());
    out += ':';
    for (const auto& v : j)
      CacheKeyBytes(v, out);
  } else if (j.is_string()) {
    str(j.get_ref<const std::string&>());
  } else {
    out += 'v';
    std::string text = j.dump();  // null, bool, number: ASCII
    out += std::to_string(text.size());
    out += ':';
    out += text;
  }
}

}  // namespace

Digest StepCacheKey(const Digest& parent, const Step& step, const std::vector<std::string>& inputs) {
  nlohmann::json j;
  j["v"] = 1;
  j["parent"] = parent.str();
  j["step"] = StepCacheJson(step);
  j["inputs"] = inputs;
  // The key must be lossless: a RUN line or ENV value may hold bytes that are
  // not UTF-8 (Docker runs them as they are), which nlohmann's dump rejects
  // (and replacement would give different commands one key). Valid text keeps
  // the JSON form (existing cache keys stay valid); otherwise the raw bytes
  // are hashed in a length-prefixed form that no JSON text can equal.
  try {
    return Digest::Of(j.dump());
  } catch (const nlohmann::json::type_error&) {
    std::string raw = "kiln-cache-key-bytes-v1\n";
    CacheKeyBytes(j, raw);
    return Digest::Of(raw);
  }
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
