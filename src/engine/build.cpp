// The build driver: stages in dependency order, the stat caches, the final image.
#include <algorithm>

#include "engine/build_internal.h"

namespace kiln::engine {

namespace build_internal {

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

std::string Builder::StageRecordKey(const Stage& stage) const {
  return HexName("stage-", opts_.context_dir + "\n" + opts_.containerfile + "\n" + StageLabelName(stage) + "\n" +
                               stage.platform.str());
}

std::string Builder::Now() const {
  if (opts_.timestamp)
    return Rfc3339(*opts_.timestamp);
  return Rfc3339(static_cast<int64_t>(std::time(nullptr)));
}

Status Builder::RunStage(StageIndex index, const std::atomic<bool>& cancel) {
  const Stage& stage = graph_.stages[static_cast<size_t>(index)];
  StageState& st = states_[static_cast<size_t>(index)];
  std::string name = StageLabelName(stage);
  int total = static_cast<int>(stage.steps.size());
  const int stage_n = static_cast<int>(index) + 1, stages = static_cast<int>(graph_.stages.size());
  StepLabel from_label{name, 0, total, "FROM " + stage.base.written + (stage.name.empty() ? "" : " AS " + stage.name),
                       stage_n, stages};
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
    StepLabel label{name, n, total, step.text, stage_n, stages, index == graph_.target && n == total};
    KILN_TRY(ExecuteStep(stage, step, st, label));
  }
  progress_.StageDone(from_label);
  st.config.set_platform(stage.platform);
  st.done = true;
  // The inputs of this build of the stage, for the next --explain-cache.
  std::string record = nlohmann::json{{"v", 1}, {"base", st.base_desc}, {"steps", st.record_steps}}.dump(
      -1, ' ', false, nlohmann::json::error_handler_t::replace);
  if (record != st.prev_record_text)
    (void)store_.PutCacheRecord(record_key, record);
  return Ok();
}

namespace {

/// --env K=V: K's entry in `env` (if any) dropped, K=V appended, in the
/// flags' order (as buildah 1.28); --unsetenv K drops it.
void ApplyEnvFlags(const std::vector<std::string>& set, const std::vector<std::string>& unset,
                   std::vector<std::string>& env) {
  auto drop = [&env](const std::string& name) {
    env.erase(std::remove_if(env.begin(), env.end(),
                             [&](const std::string& e) { return e.substr(0, e.find('=')) == name; }),
              env.end());
  };
  for (const std::string& kv : set) {
    drop(kv.substr(0, kv.find('=')));
    env.push_back(kv);
  }
  for (const std::string& k : unset)
    drop(k);
}

}  // namespace

Expected<BuildResult> Builder::WriteFinalImage() {
  const Stage& stage = graph_.stages[static_cast<size_t>(graph_.target)];
  StageState& st = states_[static_cast<size_t>(graph_.target)];
  int total = static_cast<int>(stage.steps.size());
  progress_.Commit(StepLabel{StageLabelName(stage), total, total, "", static_cast<int>(graph_.target) + 1,
                             static_cast<int>(graph_.stages.size())},
                   opts_.commit_name);
  auto start = std::chrono::steady_clock::now();
  ImageConfig config = st.config;
  // History entries without a time (config-only steps) take the time of the
  // first new layer after them, else of the entry before them; the image is
  // as old as its last entry (BuildKit's exporter): a build served from the
  // cache names the same image.
  {
    std::string fill;
    bool gap = false;
    for (const auto& h : config.history) {
      if (!h.created.empty()) {
        fill = h.created;
        if (gap)
          break;
      } else {
        gap = true;
      }
    }
    gap = false;
    for (auto& h : config.history) {
      if (!h.created.empty()) {
        if (gap)
          fill = h.created;
      } else {
        gap = true;
        h.created = fill.empty() ? Now() : fill;
      }
    }
  }
  config.created = opts_.timestamp || config.history.empty() ? Now() : config.history.back().created;
  config.set_platform(stage.platform);
  for (const auto& k : opts_.unset_labels)
    config.config.labels.erase(k);
  for (const auto& [k, v] : opts_.labels)
    config.config.labels[k] = v;
  ApplyEnvFlags(opts_.env, opts_.unset_env, config.config.env);
  std::vector<LayerRef> final_layers = st.layers;
  if (opts_.squash || opts_.squash_all) {
    KILN_ASSIGN_OR_RETURN(final_layers, Squash(st, opts_.squash_all ? 0 : st.base_layers));
    // One history entry for the squashed layer, as podman: the base's
    // entries stay (--squash), the stage's own become one.
    std::vector<HistoryEntry> kept;
    if (!opts_.squash_all)
      kept.assign(config.history.begin(),
                  config.history.begin() + static_cast<std::ptrdiff_t>(std::min(st.base_history, config.history.size())));
    if (final_layers.size() > (opts_.squash_all ? 0 : st.base_layers)) {
      HistoryEntry h;
      h.created = Now();
      h.created_by = "kiln build --squash" + std::string(opts_.squash_all ? "-all" : "");
      kept.push_back(h);
    }
    config.history = std::move(kept);
  }
  if (opts_.omit_history)
    config.history.clear();
  std::vector<Descriptor> layers;
  for (const auto& l : final_layers)
    layers.push_back(l.blob);
  config.diff_ids.clear();
  for (const auto& l : final_layers)
    config.diff_ids.push_back(l.diff_id);
  KILN_ASSIGN_OR_RETURN(Descriptor manifest,
                        store_.WriteImage(config, layers,
                                          opts_.docker_format ? kMediaTypeDockerManifest : kMediaTypeOciManifest,
                                          opts_.annotations));
  KILN_TRY(store_.AddImage(manifest, opts_.tags));
  KILN_ASSIGN_OR_RETURN(StoredImage image, store_.LoadImage(manifest));
  progress_.Committed(image.id().str(),
                      std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count());
  for (const auto& tag : opts_.tags)
    progress_.Tagged(tag);
  return BuildResult{manifest, image.id()};
}

Expected<std::vector<LayerRef>> Builder::Squash(const StageState& st, size_t first) {
  std::vector<LayerRef> out(st.layers.begin(), st.layers.begin() + static_cast<std::ptrdiff_t>(std::min(first, st.layers.size())));
  if (first >= st.layers.size())
    return out;
  std::vector<UniqueFd> fds;
  std::vector<int> raw;
  for (size_t i = first; i < st.layers.size(); ++i) {
    KILN_ASSIGN_OR_RETURN(UniqueFd fd, store_.OpenBlob(st.layers[i].blob.digest));
    raw.push_back(fd.get());
    fds.push_back(std::move(fd));
  }
  KILN_ASSIGN_OR_RETURN(BlobWriter writer, store_.NewBlobWriter());
  layer::PackOptions po;
  po.compression = opts_.compression;
  auto info = layer::SquashLayers(raw, first == 0, writer.fd(), po);
  if (!info)
    return std::move(info).error().WithContext(opts_.squash_all ? "--squash-all" : "--squash");
  std::string media = info->media_type;
  if (opts_.docker_format && opts_.compression == layer::Compression::kGzip)
    media = kMediaTypeDockerLayerGzip;
  KILN_ASSIGN_OR_RETURN(Descriptor desc, writer.Commit(media));
  out.push_back({desc, info->diff_id, ""});
  return out;
}

Expected<BuildResult> Builder::Run() {
  std::vector<std::vector<NodeId>> deps(graph_.stages.size());
  for (size_t i = 0; i < graph_.stages.size(); ++i)
    for (StageIndex d : graph_.stages[i].deps)
      deps[i].push_back(static_cast<NodeId>(d));
  KILN_ASSIGN_OR_RETURN(Plan plan, Plan::Create(std::move(deps)));
  int steps = 0;
  for (const Stage& stage : graph_.stages)
    steps += static_cast<int>(stage.steps.size()) + 1;  // and FROM
  progress_.Begin(steps);
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

}  // namespace build_internal

using build_internal::Builder;

Expected<BuildResult> Build(const BuildGraph& graph, Store& store, const BuildOptions& options, Progress& progress) {
  if (graph.stages.empty())
    return Error(Errc::kInvalidInput, "nothing to build: the graph has no stages");
  // Host networking is granted by whoever runs the build, never by the
  // Containerfile (BuildKit's network.host entitlement): RUN --network=host
  // needs --allow network.host or a build that runs with --network host.
  // Checked before any step runs, cached ones included.
  if (!options.allow_network_host && options.network != NetworkMode::kHost)
    for (const Stage& stage : graph.stages)
      for (const Step& step : stage.steps)
        if (const auto* run = std::get_if<RunStep>(&step.op); run && run->network == "host")
          return Error(Errc::kInvalidInput,
                       build_internal::Where(step) + ": RUN --network=host is not allowed: the build runs with --network " +
                           (options.network == NetworkMode::kNone ? "none" : "private") +
                           "; grant the host network with --allow network.host (or --network host)");
  Builder b(graph, store, options, progress);
  return b.Run();
}

}  // namespace kiln::engine
