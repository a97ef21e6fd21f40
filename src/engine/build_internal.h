// Engine-internal: the Builder shared by build.cpp (driver, step loop),
// build_base.cpp (base init, lower dirs, COPY sources), build_cachekey.cpp
// (cache inputs and keys, secret HMAC key), build_step.cpp (step execution,
// the sandbox step, commit) and build_config.cpp (config-only steps,
// --explain-cache). Not part of the engine's interface.
#pragma once

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

#include "engine/build.h"
#include "engine/copy.h"
#include "engine/git_source.h"
#include "engine/plan.h"
#include "kiln/cancel.h"
#include "kiln/fs.h"
#include "kiln/log.h"
#include "kiln/reference.h"
#include "kiln/rootfs.h"

namespace kiln::engine {

using namespace rootfs;  // Mount, OpenInRoot, MakeDirsInRoot, ReadFileFromLayers, ResolveUser

namespace build_internal {

inline constexpr const char kDefaultPath[] = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// One layer of a stage's filesystem. `dir` is empty until the layer is
/// needed on disk (a cache hit never unpacks).
struct LayerRef {
  Descriptor blob;
  Digest diff_id;
  std::string dir;
};

/// An ADD URL source in the store (build_url.cpp).
struct UrlFile {
  Digest digest;              // the blob holding its content
  std::string name;           // its file name (Content-Disposition, else the URL path's last component)
  std::string last_modified;  // the Last-Modified header ("" when none): its mtime
};

/// Where ADD's URL sources are laid out for the copy: a root and the
/// sources in it (build_url.cpp MaterializeUrlSources).
struct UrlCopy {
  std::string root;
  std::vector<std::string> sources;
};

/// True when an ADD names an http(s) or git source.
bool CopyHasUrlSource(const CopyStep& copy);
/// An ADD's sources split in two: its URL (http(s), git) sources and its
/// local ones, each as a CopyStep of its own with the same flags and DEST
/// (`ADD https://… local.txt /dst/`, as BuildKit).
std::pair<CopyStep, CopyStep> SplitUrlSources(const CopyStep& copy);

struct StageState {
  ImageConfig config;
  bool cmd_set = false;  // CMD seen in this stage (ENTRYPOINT then keeps it, as BuildKit)
  std::vector<LayerRef> layers;
  size_t base_layers = 0;   // how many of `layers` the FROM image gave (--squash keeps them)
  size_t base_history = 0;  // and how many history entries
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

std::string Rfc3339(int64_t t);
std::string StageLabelName(const Stage& stage);
std::string Where(const Step& step);
Expected<std::pair<std::string, std::string>> BindSource(const std::string& context_dir, const Step& step,
                                                         const RunMount& m);
std::string CacheMountKey(const RunMount& m);
Status CheckBuildId(const std::string& where, const char* kind, uint32_t id);
std::string HexName(const std::string& prefix, const std::string& what);
void PumpOutput(int fd, Progress& progress, const StepLabel& label, std::string* tail);

class Builder {
 public:
  Builder(const BuildGraph& graph, Store& store, const BuildOptions& options, Progress& progress)
      : graph_(graph), store_(store), opts_(options), progress_(progress), states_(graph.stages.size()),
        network_(options.attach_network) {}

  Expected<BuildResult> Run();

 private:
  Status RunStage(StageIndex index, const std::atomic<bool>& cancel);
  Status InitFromBase(const Stage& stage, StageState& st);
  Status InitFromContext(const Stage& stage, StageState& st);
  // The image `name` (or `digest` when set) for `platform`: the store's, else pulled by the pull policy.
  Expected<StoredImage> AcquireImage(const std::string& name, const std::string& digest, const Platform& platform);
  Status ExecuteStep(const Stage& stage, const Step& step, StageState& st, const StepLabel& label);
  Status RunStepInSandbox(const Stage& stage, const Step& step, const RunStep& run, StageState& st,
                          const StepLabel& label, const std::string& upper, const std::string& work);
  Status CopyStep_(const Step& step, const CopyStep& copy, StageState& st, const std::string& merged);
  /// The layer directories (top first) of a stage or image source (pulled
  /// when missing and allowed); its diff_ids, bottom first, into `diff_ids`.
  /// The directory a RUN --mount=type=bind without from=STAGE|IMAGE reads
  /// from: the build context or a named context (--build-context NAME=DIR).
  Expected<std::string> BindRoot(const RunMount& m);
  /// True the first time this build resets cache mount `hex` for --no-cache.
  bool FirstNoCacheUse(const std::string& hex) {
    std::lock_guard<std::mutex> lock(temp_mu_);
    return no_cache_reset_.insert(hex).second;
  }
  Expected<std::vector<std::string>> SourceLowers(const CopySource& from, std::vector<Digest>* diff_ids = nullptr);
  /// RUN --mount=type=bind,from=STAGE|IMAGE: the host path the step gets,
  /// resolved inside the source's root; read-only, or with rw a throwaway
  /// overlay (upper in `scratch`). The mounts go to `mounts`.
  Expected<std::string> FromBindView(const Step& step, const RunMount& m, size_t index, const std::string& scratch,
                                     std::vector<Mount>* mounts);
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
  /// `created`: the time the step's layer was made (kept in its cache
  /// record); "" for a step without one: WriteFinalImage fills it in.
  void AddHistory(const Step& step, StageState& st, bool empty_layer, const std::string& created = "");
  std::string Now() const;
  Expected<BuildResult> WriteFinalImage();
  /// ADD URL (build_url.cpp): the file in the store, fetched or revalidated
  /// once per build; the step's cache inputs; the files laid out under
  /// `scratch` for the copy (`sources` get their paths there).
  Expected<UrlFile> FetchUrlSource(const Step& step, const CopyStep& copy, const std::string& url);
  Expected<std::vector<std::string>> UrlInputs(const Step& step, const CopyStep& copy);
  /// ADD from git (git_source.h): the agent and --keep-git-dir; the commit a source's
  /// ref names (once per build); a checkout under `scratch` (its path).
  GitOptions GitOptionsFor(const CopyStep& copy) const;
  Expected<std::string> ResolveGitCommit(const Step& step, const CopyStep& copy, const std::string& src);
  Expected<std::string> CheckoutGit(const Step& step, const CopyStep& copy, const std::string& src,
                                    const std::string& scratch);
  /// The downloaded files (one copy) and each git checkout (one copy each).
  Expected<std::vector<UrlCopy>> MaterializeUrlSources(const Step& step, const CopyStep& copy,
                                                       const std::string& scratch);
  /// --squash / --squash-all: the final stage's layers from `first` on as
  /// one layer (none when they are none).
  Expected<std::vector<LayerRef>> Squash(const StageState& st, size_t first);

  const BuildGraph& graph_;
  Store& store_;
  const BuildOptions& opts_;
  Progress& progress_;
  std::vector<StageState> states_;
  std::mutex empty_mu_;
  std::string empty_dir_;
  std::vector<std::string> temp_dirs_;
  std::mutex temp_mu_;
  std::set<std::string> no_cache_reset_;  // cache mount ids this --no-cache build emptied
  std::mutex stat_mu_;
  std::map<std::string, std::unique_ptr<StatCache>> stat_caches_;  // by source root
  int64_t start_ns_ = 0;  // CLOCK_REALTIME_COARSE at the start (the stat caches' stamp)
  std::mutex url_mu_;
  std::map<std::string, UrlFile> url_files_;  // url + "\n" + checksum -> file, this build's
  std::map<std::string, std::string> git_commits_;  // git source -> commit, this build's
  std::mutex secret_mu_;
  std::string secret_key_;
  // The private network of every RUN step: one namespace with one
  // slirp4netns/pasta for the whole build, made at the first such step.
  SharedNetwork network_;
};

}  // namespace build_internal

}  // namespace kiln::engine
