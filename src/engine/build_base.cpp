// A stage's starting point: its base (image, scratch or stage), the lower
// directories, and the source roots of COPY.
#include "engine/build_internal.h"

namespace kiln::engine {

namespace build_internal {

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

// The one "resolve, else pull" of a build (issue [2.3]): FROM, COPY --from=IMAGE,
// RUN --mount from=IMAGE and their cache keys all name an image through here,
// with image::ResolveLocal's name rule before and after the pull.
Expected<StoredImage> Builder::AcquireImage(const std::string& name, const std::string& digest,
                                            const Platform& platform) {
  auto image = digest.empty() ? ResolveStoreImage(store_, name, platform) : store_.ResolveImage(digest, platform);
  if (!image && image.error().code() == Errc::kNotFound && opts_.pull) {
    KILN_TRY(opts_.pull(digest.empty() ? name : name + "@" + digest, platform));
    image = digest.empty() ? ResolveStoreImage(store_, name, platform) : store_.ResolveImage(digest, platform);
  }
  return image;
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
      st.base_layers = parent.base_layers;  // --squash: what this build made is new
      st.base_history = parent.base_history;
      st.key = parent.key;
      st.base_desc = "the result of stage " + StageLabelName(graph_.stages[static_cast<size_t>(stage.base.stage)]);
      return Ok();
    }
    case StageBase::Kind::kContext:
      return InitFromContext(stage, st);
    case StageBase::Kind::kImage:
      break;
  }
  std::string ref = stage.base.digest.empty() ? stage.base.image : stage.base.image + "@" + stage.base.digest;
  auto image = AcquireImage(stage.base.image, stage.base.digest, stage.platform);
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
  st.base_layers = st.layers.size();
  st.base_history = st.config.history.size();
  st.key = Digest::Of("kiln-base image " + image->manifest_descriptor.digest.str());
  st.base_desc = "image " + stage.base.written + " (" + image->manifest_descriptor.digest.str() + ")";
  return Ok();
}

// FROM NAME with --build-context NAME=DIR (BuildKit): the stage starts as
// the directory's files (its own ignore file applies; owned by 0:0, as COPY
// from a context) in one layer, on the empty image's config. The layer is
// kept in the cache under the digest of those files, so an unchanged
// directory is not packed again.
Status Builder::InitFromContext(const Stage& stage, StageState& st) {
  const std::string where = stage.location.file + ":" + std::to_string(stage.location.line) + ": FROM " +
                            stage.base.written;
  auto it = opts_.named_contexts.find(stage.base.context);
  if (it == opts_.named_contexts.end())
    return Error(Errc::kInvalidInput, where + ": no build context named \"" + stage.base.context + "\"");
  st.config.set_platform(stage.platform);
  st.config.config.SetEnv("PATH", kDefaultPath + 5);
  st.config.config.working_dir = "/";
  CopyRequest req;
  req.src_root = it->second;
  req.from_context = true;
  if (auto ig = opts_.named_ignores.find(stage.base.context); ig != opts_.named_ignores.end())
    req.ignore = ig->second;
  req.sources = {"/"};
  req.dest = "/";
  req.what = "FROM";
  auto files = HashCopySources(req, StatCacheFor(it->second));
  if (!files)
    return std::move(files).error().WithContext(where);
  const std::string record_key = HexName("fromctx-", files->str() + "\n" + layer::CompressionName(opts_.compression) +
                                                         "\n" + (opts_.timestamp ? std::to_string(*opts_.timestamp) : ""));
  LayerRef ref;
  bool have = false;
  if (auto text = store_.GetCacheRecord(record_key)) {
    auto j = nlohmann::json::parse(*text, nullptr, false);
    if (j.is_object() && j.contains("layer") && j.contains("diff_id")) {
      auto desc = ParseDescriptor(j["layer"].dump());
      auto diff = Digest::Parse(j.value("diff_id", ""));
      if (desc && diff && store_.HasBlob(desc->digest)) {
        ref = {*desc, *diff, ""};
        have = true;
      }
    }
  }
  if (!have) {
    KILN_ASSIGN_OR_RETURN(std::string scratch, store_.MakeTempDir("fromctx-"));
    struct Cleanup {
      std::string dir;
      ~Cleanup() { (void)RemoveAll(dir); }
    } cleanup{scratch};
    std::string root = JoinPath(scratch, "root");
    KILN_TRY(MakeDirs(root));
    {
      KILN_ASSIGN_OR_RETURN(UniqueFd fd, OpenFile(root, O_RDONLY | O_DIRECTORY));
      if (auto s = CopyIntoRoot(req, fd.get(), root); !s)
        return std::move(s).error().WithContext(where);
    }
    KILN_ASSIGN_OR_RETURN(BlobWriter writer, store_.NewBlobWriter());
    layer::PackOptions po;
    po.compression = opts_.compression;
    po.clamp_mtime = opts_.timestamp;
    auto info = layer::PackDirectory(root, writer.fd(), po);
    if (!info)
      return std::move(info).error().WithContext(where);
    KILN_ASSIGN_OR_RETURN(Descriptor desc, writer.Commit(info->media_type));
    ref = {desc, info->diff_id, ""};
    GcRoot keep;
    keep.blobs = {desc};
    nlohmann::json record = {{"layer", nlohmann::json::parse(ToJson(desc))}, {"diff_id", info->diff_id.str()}};
    (void)store_.PutCacheRecord(record_key, record.dump(), keep);
  }
  st.layers.push_back(ref);
  st.config.diff_ids.push_back(ref.diff_id);
  HistoryEntry h;
  h.created = Now();
  h.created_by = "FROM " + stage.base.written + " (build context " + stage.base.context + ")";
  st.config.history.push_back(h);
  st.key = Digest::Of("kiln-base context " + ref.diff_id.str() + " " + stage.platform.str());
  st.base_desc = "context " + stage.base.context + " (" + files->str() + ")";
  return Ok();
}

Expected<CopyRequest> Builder::MakeCopyRequest(const CopyStep& copy, const std::string& src_root,
                                               bool from_context) {
  CopyRequest req;
  req.src_root = src_root;
  req.from_context = from_context;
  req.ignore = from_context ? opts_.ignore : nullptr;
  if (copy.from.kind == CopySource::Kind::kNamedContext) {
    auto it = opts_.named_ignores.find(copy.from.name);
    req.ignore = it != opts_.named_ignores.end() ? it->second : nullptr;
  }
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

Expected<std::string> Builder::BindRoot(const RunMount& m) {
  if (!m.from || m.from->kind == CopySource::Kind::kContext)
    return opts_.context_dir;
  return SourceRootFor(*m.from, nullptr, "");  // a named context: its directory
}

Expected<std::vector<std::string>> Builder::SourceLowers(const CopySource& from, std::vector<Digest>* diff_ids) {
  StageState image_state;
  StageState* src = nullptr;
  if (from.kind == CopySource::Kind::kStage) {
    src = &states_[static_cast<size_t>(from.stage)];
  } else {
    auto image = AcquireImage(from.image, "", graph_.target_platform);
    if (!image)
      return std::move(image).error();
    for (size_t i = 0; i < image->manifest.layers.size() && i < image->config.diff_ids.size(); ++i)
      image_state.layers.push_back({image->manifest.layers[i], image->config.diff_ids[i], ""});
    src = &image_state;
  }
  if (diff_ids)
    for (const auto& l : src->layers)
      diff_ids->push_back(l.diff_id);
  return LowerDirs(*src);
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
  KILN_ASSIGN_OR_RETURN(std::vector<std::string> lowers, SourceLowers(from));
  std::string target = JoinPath(scratch, "src" + std::to_string(mounts->size()));
  KILN_TRY(MakeDirs(target));
  KILN_ASSIGN_OR_RETURN(Mount m, Mount::ReadOnly(lowers, target));
  mounts->push_back(std::move(m));
  return target;
}

}  // namespace build_internal

}  // namespace kiln::engine
