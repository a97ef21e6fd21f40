// Cache keys: the inputs of a step, the secret HMAC key, StepCacheKey.
#include "engine/build_internal.h"
#include "kiln/cleanup.h"

namespace kiln::engine {

namespace build_internal {

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

Expected<std::vector<std::string>> Builder::InputsFor(const Step& step, StageState& st, nlohmann::json* info) {
  (void)st;
  std::vector<std::string> inputs;
  if (step.kind == StepKind::kRun) {
    const auto& run = std::get<RunStep>(step.op);
    if (!opts_.run_key.empty())
      inputs.push_back("sandbox " + opts_.run_key);
    for (const auto& m : run.mounts) {
      if (m.type == MountType::kBind && m.from &&
          (m.from->kind == CopySource::Kind::kStage || m.from->kind == CopySource::Kind::kImage)) {
        // What the step can read through a bind mount of a stage or image:
        // the content of the source, not how the stage was built (BuildKit),
        // so a change elsewhere in the stage keeps the step cached. The
        // whole root: its layers' digests; a path: the digest of its files.
        std::vector<Digest> ids;
        KILN_ASSIGN_OR_RETURN(std::vector<std::string> lowers, SourceLowers(*m.from, &ids));
        std::string rel = m.source;
        while (!rel.empty() && rel.front() == '/')
          rel.erase(0, 1);
        while (!rel.empty() && rel.back() == '/')
          rel.pop_back();
        if (rel.empty() || rel == ".") {
          std::string all;
          for (const auto& id : ids)
            all += id.str() + "\n";
          inputs.push_back("bind " + m.target + " layers " + Digest::Of(all).str());
          continue;
        }
        KILN_ASSIGN_OR_RETURN(std::string scratch, store_.MakeTempDir("bindkey-"));
        RemoveAllOnExit cleanup(scratch);
        Expected<Digest> d = Error(Errc::kIo, "");
        {
          std::string root = JoinPath(scratch, "root");
          KILN_TRY(MakeDirs(root));
          auto mount = Mount::ReadOnly(lowers, root);
          if (!mount)
            return std::move(mount).error().WithContext(Where(step) + ": RUN --mount from=");
          CopyRequest req;
          req.src_root = root;
          req.ignore = nullptr;
          req.sources = {"/" + rel};
          req.what = "RUN --mount";
          d = HashCopySources(req, nullptr);
        }
        if (!d)
          return std::move(d).error().WithContext(Where(step));
        inputs.push_back("bind " + m.target + " " + d->str());
      } else if (m.type == MountType::kBind) {
        // What the step can read through a bind mount of the context.
        KILN_ASSIGN_OR_RETURN(std::string ctx_root, BindRoot(m));
        KILN_ASSIGN_OR_RETURN(auto src, BindSource(ctx_root, step, m));
        CopyRequest req;
        req.src_root = ctx_root;
        req.ignore = nullptr;  // the mount shows the directory as it is, ignored files included
        req.sources = {"/" + src.second};
        req.what = "RUN --mount";
        auto d = HashCopySources(req, StatCacheFor(ctx_root));
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
      // What the stage holds (its layers' digests), not how it was made: a
      // stage that ran again (--no-cache-filter) with another result makes
      // the COPY run again, one rebuilt to the same layers keeps it cached.
      std::string all;
      for (const auto& l : states_[static_cast<size_t>(copy.from.stage)].layers)
        all += l.diff_id.str() + "\n";
      inputs.push_back("stage layers " + Digest::Of(all).str());
      (*info)["from"] = "stage " + StageLabelName(from);
      return inputs;
    }
    case CopySource::Kind::kImage: {
      // The key names the image's content: one not in the store yet is pulled
      // now, so a later build with another image under the name does not hit.
      auto image = AcquireImage(copy.from.image, "", graph_.target_platform);
      if (!image)
        return std::move(image).error().WithContext(Where(step) + ": --from=" + copy.from.image);
      inputs.push_back("image " + image->manifest_descriptor.digest.str());
      (*info)["from"] = "image " + copy.from.image;
      return inputs;
    }
    case CopySource::Kind::kContext:
    case CopySource::Kind::kNamedContext: {
      const CopyStep* local = &copy;
      std::pair<CopyStep, CopyStep> split;
      if (copy.is_add && CopyHasUrlSource(copy)) {
        split = SplitUrlSources(copy);
        KILN_ASSIGN_OR_RETURN(inputs, UrlInputs(step, split.first));
        (*info)["from"] = "a URL";
        if (split.second.sources.empty() && split.second.heredoc_sources.empty())
          return inputs;
        local = &split.second;  // and local sources in the same ADD
      }
      KILN_ASSIGN_OR_RETURN(std::string root, SourceRootFor(copy.from, nullptr, ""));
      KILN_ASSIGN_OR_RETURN(CopyRequest req, MakeCopyRequest(*local, root, true));
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

}  // namespace build_internal

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

}  // namespace kiln::engine
