// Image-level pull and push between a Store and a registry, and the
// "docker" transport that plugs them into kiln pull/push/FROM.
#include <fcntl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <condition_variable>
#include <cstdlib>
#include <optional>
#include <cstdio>
#include <memory>
#include <mutex>
#include <set>
#include <string_view>
#include <thread>
#include <vector>

#include "kiln/env.h"
#include "kiln/fs.h"
#include "kiln/log.h"
#include "kiln/registry.h"
#include "kiln/registries_conf.h"
#include "kiln/sigstore.h"
#include "kiln/unique_fd.h"

namespace kiln::registry {

namespace {

std::string Short(const Digest& d) { return d.str().substr(0, 19); }

std::string HumanSize(int64_t n) {
  char buf[32];
  if (n >= (int64_t(1) << 30))
    std::snprintf(buf, sizeof buf, "%.1f GiB", static_cast<double>(n) / (1 << 30));
  else if (n >= (1 << 20))
    std::snprintf(buf, sizeof buf, "%.1f MiB", static_cast<double>(n) / (1 << 20));
  else if (n >= 1024)
    std::snprintf(buf, sizeof buf, "%.1f KiB", static_cast<double>(n) / 1024);
  else
    std::snprintf(buf, sizeof buf, "%lld B", static_cast<long long>(n));
  return buf;
}

// Runs `jobs` on up to `width` threads; the first error stops the rest from
// starting and is returned.
Status RunParallel(size_t count, int width, const std::function<Status(size_t)>& job) {
  if (count == 0)
    return Ok();
  std::atomic<size_t> next{0};
  std::atomic<bool> failed{false};
  std::mutex mu;
  std::optional<Error> first;
  auto worker = [&] {
    for (;;) {
      size_t i = next.fetch_add(1);
      if (i >= count || failed.load())
        return;
      Status s = job(i);
      if (!s) {
        std::lock_guard<std::mutex> lock(mu);
        if (!first)
          first = std::move(s).error();
        failed = true;
        return;
      }
    }
  };
  size_t n = std::min<size_t>(count, static_cast<size_t>(std::max(width, 1)));
  std::vector<std::thread> threads;
  for (size_t i = 1; i < n; ++i)
    threads.emplace_back(worker);
  worker();
  for (auto& t : threads)
    t.join();
  if (first)
    return std::move(*first);
  return Ok();
}

void Say(const std::function<void(const std::string&)>& progress, const std::string& line) {
  if (progress)
    progress(line);
}

// Unpacks a layer while it downloads (buildah pulls and unpacks too; doing
// both at once makes pull+unpack cost about max(download, unpack) instead of
// their sum). The download's sink tees every byte it wrote to the blob's temp
// file -- and hashed -- into a socketpair read by
// Store::UnpackedLayerFromStream, which computes the diff_id. The compressed
// bytes are hashed once, by the download: the unpacker publishes the layer
// only when the download verified its digest over exactly the stream it was
// fed (no restart, no gap). If the download restarts or fails, or the
// unpacker cannot keep up with an error, the unpack fails harmlessly and the
// layer is unpacked from the stored blob on first use instead.
class StreamingUnpack {
 public:
  StreamingUnpack(Store& store, const Descriptor& layer, const Digest& diff_id) {
    int sv[2];
    if (::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) != 0)
      return;
    UniqueFd reader(sv[0]);
    feeder_.reset(sv[1]);
    unpack_ = std::thread([this, &store, layer, diff_id, reader = std::move(reader)]() mutable {
      auto verified = [this, &layer]() -> Status {
        std::unique_lock<std::mutex> lock(mu_);
        cv_.wait(lock, [this] { return done_; });
        if (!verified_)
          return Error(Errc::kCorrupt, "the download of " + layer.digest.str() +
                                           " was not verified as one gap-free stream");
        return Ok();
      };
      auto dir = store.UnpackedLayerFromStream(reader.get(), layer, diff_id, verified);
      reader.reset();  // from here on the feeder's sends fail (EPIPE)
      unpacked_ = dir.has_value();
      if (!dir)
        LogDebug("streaming unpack of " + layer.digest.str() + " failed (unpacked on first use instead): " +
                 dir.error().message());
    });
  }
  StreamingUnpack(const StreamingUnpack&) = delete;
  StreamingUnpack& operator=(const StreamingUnpack&) = delete;
  ~StreamingUnpack() { Finish(false); }

  /// After Finish(): the layer was unpacked from exactly the verified
  /// download and its diff_id matched (a layer directory of this blob).
  bool unpacked() const { return unpacked_; }

  /// The download's sink: `data` was just written at `offset` of the blob.
  /// Batched into 1 MiB sends: curl hands over ~16 KiB at a time, and a
  /// wake-up of the unpacker per piece cost more than the copy.
  void Feed(std::string_view data, uint64_t offset) {
    if (!feeder_.valid())
      return;
    if (offset != fed_) {  // a restart: the stream would have a gap
      feeder_.reset();
      return;
    }
    pending_.append(data);
    fed_ += data.size();
    if (pending_.size() >= kBatch)
      Flush();
  }

  /// The download ended; `verified`: FetchBlob checked the digest.
  void Finish(bool verified) {
    if (verified)
      Flush();
    {
      std::lock_guard<std::mutex> lock(mu_);
      if (done_)
        return;
      verified_ = verified && feeder_.valid();
      done_ = true;
    }
    cv_.notify_all();
    feeder_.reset();  // end of stream
    if (unpack_.joinable())
      unpack_.join();
  }

 private:
  static constexpr size_t kBatch = 1 << 20;

  void Flush() {
    size_t done = 0;
    while (feeder_.valid() && done < pending_.size()) {
      ssize_t w = ::send(feeder_.get(), pending_.data() + done, pending_.size() - done, MSG_NOSIGNAL);
      if (w < 0 && errno == EINTR)
        continue;
      if (w <= 0)  // the unpacker stopped reading (it failed)
        feeder_.reset();
      else
        done += static_cast<size_t>(w);
    }
    pending_.clear();
  }

  UniqueFd feeder_;
  std::string pending_;
  uint64_t fed_ = 0;
  std::mutex mu_;
  std::condition_variable cv_;
  bool done_ = false;
  bool verified_ = false;
  bool unpacked_ = false;  // written by unpack_, read after it was joined
  std::thread unpack_;
};

// Downloads one blob into the store unless it is there already. The bytes go
// to a BlobWriter's private temp file, hashed as they are written; the blob
// is published only when digest and size match (docs/security.md I4, I10). With
// `diff_id`, the layer is unpacked while it downloads (StreamingUnpack).
Status PullBlob(Store& store, RegistryClient& client, const std::string& repo,
                const Descriptor& d, const PullOptions& options, const std::optional<Digest>& diff_id = {},
                bool* unpacked = nullptr) {
  if (d.size < 0)
    return Error(Errc::kCorrupt, "blob " + d.digest.str() + ": negative size");
  if (store.HasBlob(d.digest)) {
    // Reused only when it is what the descriptor says it is.
    struct stat st;
    if (::stat(store.BlobPath(d.digest).c_str(), &st) == 0 && st.st_size != d.size)
      return Error(Errc::kCorrupt, "blob " + d.digest.str() + ": size mismatch: the descriptor says " +
                                       std::to_string(d.size) + " bytes, the blob has " +
                                       std::to_string(st.st_size));
    Say(options.progress, "Copying blob " + Short(d.digest) + " skipped: already exists");
    return Ok();
  }
  Say(options.progress, "Copying blob " + Short(d.digest) + " (" + HumanSize(d.size) + ")");
  KILN_ASSIGN_OR_RETURN(BlobWriter writer, store.NewBlobWriter(d.digest, d.size));
  std::optional<StreamingUnpack> unpack;
  if (diff_id && !PathExists(store.LayerDir(*diff_id)))
    unpack.emplace(store, d, *diff_id);
  // Every 8 MiB the blob's writeback starts (Commit fsyncs it: the disk
  // works during the download instead of after it), and the bytes go on to
  // the streaming unpack.
  const int fd = writer.fd();
  uint64_t written_back = 0;
  auto on_data = [&](std::string_view data, uint64_t offset) {
    uint64_t end = offset + data.size();
    if (end < written_back)
      written_back = 0;  // the download restarted
    if (end - written_back >= (8u << 20)) {
      (void)::sync_file_range(fd, static_cast<off_t>(written_back), static_cast<off_t>(end - written_back),
                              SYNC_FILE_RANGE_WRITE);
      written_back = end;
    }
    if (unpack)
      unpack->Feed(data, offset);
  };
  Status fetched = client.FetchBlob(repo, d.digest, d.size, fd, on_data);
  if (unpack) {
    unpack->Finish(fetched.has_value());
    if (unpacked)
      *unpacked = unpack->unpacked();
  }
  KILN_TRY(std::move(fetched));
  // FetchBlob hashed exactly the bytes it wrote and checked digest and size.
  auto committed = writer.CommitHashed(d.digest, d.media_type);
  if (!committed)
    return std::move(committed).error().WithContext("blob " + d.digest.str());
  Say(options.progress, "Copying blob " + Short(d.digest) + " done");
  return Ok();
}

// Pulls one image manifest (already fetched and stored) and its blobs: the
// config first (its diff_ids let the layers unpack while they download, when
// options.unpack_layers), then the layers in parallel.
Status PullImageBlobs(Store& store, RegistryClient& client, const std::string& repo,
                      const Manifest& m, const PullOptions& options, std::vector<VerifiedLayer>* verified) {
  if (!IsConfigMediaType(m.config.media_type) && m.config.media_type != kMediaTypeOciEmpty)
    LogDebug("config media type " + m.config.media_type);
  KILN_TRY(PullBlob(store, client, repo, m.config, options));
  std::vector<Digest> diff_ids;
  // The config must parse and match the layers; the store checks each
  // diff_id again when it unpacks.
  if (IsConfigMediaType(m.config.media_type)) {
    auto cfg = store.ReadConfig(m.config.digest);
    if (!cfg)
      return std::move(cfg).error().WithContext("config " + m.config.digest.str());
    if (cfg->diff_ids.size() != m.layers.size())
      return Error(Errc::kCorrupt, "config " + m.config.digest.str() + " lists " +
                                       std::to_string(cfg->diff_ids.size()) +
                                       " diff_ids for " + std::to_string(m.layers.size()) + " layers");
    diff_ids = cfg->diff_ids;
  }
  std::vector<Descriptor> blobs;
  std::vector<std::optional<Digest>> unpack_as;
  std::set<Digest> seen{m.config.digest};
  for (size_t i = 0; i < m.layers.size(); ++i) {
    if (!seen.insert(m.layers[i].digest).second)
      continue;
    blobs.push_back(m.layers[i]);
    bool tar = m.layers[i].media_type.find("tar") != std::string::npos;
    unpack_as.push_back(options.unpack_layers && tar && i < diff_ids.size() ? std::optional<Digest>(diff_ids[i])
                                                                            : std::nullopt);
  }
  std::mutex mu;
  return RunParallel(blobs.size(), client.options().max_connections, [&](size_t i) -> Status {
    bool unpacked = false;
    KILN_TRY(PullBlob(store, client, repo, blobs[i], options, unpack_as[i], &unpacked));
    if (unpacked) {
      std::lock_guard<std::mutex> lock(mu);
      verified->push_back(VerifiedLayer{blobs[i].digest, *unpack_as[i]});
    }
    return Ok();
  });
}

// Fetches a manifest by digest for a descriptor, checks its size and media
// type, and stores it.
Expected<std::string> PullChildManifest(Store& store, RegistryClient& client,
                                        const std::string& repo, const Descriptor& d) {
  KILN_ASSIGN_OR_RETURN(ManifestBlob mb, client.GetManifest(repo, d.digest.str()));
  if (static_cast<int64_t>(mb.body.size()) != d.size)
    return Error(Errc::kCorrupt, "manifest " + d.digest.str() + ": size mismatch: got " +
                                     std::to_string(mb.body.size()) + ", expected " +
                                     std::to_string(d.size));
  KILN_ASSIGN_OR_RETURN(Descriptor stored, store.PutBlob(mb.media_type, mb.body));
  (void)stored;
  return mb.body;
}

}  // namespace

Expected<PulledImage> PullFromRegistry(Store& store, const ImageReference& ref,
                                       const PullOptions& options) {
  std::string what = "pull " + ref.str();
  ClientOptions copts = options.client;
  KILN_ASSIGN_OR_RETURN(auto client, RegistryClient::Create(ref.domain, copts));
  auto top = client->GetManifest(ref.path, ref.TagOrDigest());
  if (!top)
    return std::move(top).error().WithContext(what);
  if (ref.digest.valid() && top->digest != ref.digest)
    return Error(Errc::kCorrupt, what + ": manifest digest mismatch");
  if (options.verify)
    if (auto s = options.verify(*client, ref.path, top->digest); !s)
      return std::move(s).error();
  auto media = DetectManifestMediaType(top->body);
  if (!media)
    return std::move(media).error().WithContext(what);

  PulledImage out;
  if (!ref.tag.empty())
    out.names.push_back(ref.str());

  if (IsIndexMediaType(*media)) {
    auto index = ParseIndex(top->body);
    if (!index)
      return std::move(index).error().WithContext(what);
    std::vector<Descriptor> children;
    if (options.all_platforms) {
      for (const auto& d : index->manifests)
        if (IsManifestMediaType(d.media_type))
          children.push_back(d);
    } else {
      Platform want = options.platform ? *options.platform : Platform::Host();
      auto chosen = index->SelectPlatform(want);
      if (!chosen)
        return std::move(chosen).error().WithContext(what);
      if (!IsManifestMediaType(chosen->media_type))
        return Error(Errc::kUnsupported, what + ": nested index for " + want.str());
      children.push_back(*chosen);
    }
    for (const auto& d : children) {
      auto body = PullChildManifest(store, *client, ref.path, d);
      if (!body)
        return std::move(body).error().WithContext(what);
      auto m = ParseManifest(*body);
      if (!m)
        return std::move(m).error().WithContext(what + ": manifest " + d.digest.str());
      if (auto s = PullImageBlobs(store, *client, ref.path, *m, options, &out.verified_layers); !s)
        return std::move(s).error().WithContext(what);
    }
    if (options.all_platforms) {
      KILN_ASSIGN_OR_RETURN(out.top, store.PutBlob(*media, top->body));
    } else {
      out.top = children.front();
    }
    Say(options.progress, "Writing manifest to image destination");
    return out;
  }

  if (!IsManifestMediaType(*media))
    return Error(Errc::kUnsupported, what + ": unsupported manifest type " + *media);
  auto m = ParseManifest(top->body);
  if (!m)
    return std::move(m).error().WithContext(what);
  if (auto s = PullImageBlobs(store, *client, ref.path, *m, options, &out.verified_layers); !s)
    return std::move(s).error().WithContext(what);
  KILN_ASSIGN_OR_RETURN(out.top, store.PutBlob(*media, top->body));
  Say(options.progress, "Writing manifest to image destination");
  return out;
}

namespace {

Status PushBlob(Store& store, RegistryClient& client, const std::string& repo,
                const Descriptor& d, const std::string& mount_from, const PushOptions& options) {
  KILN_ASSIGN_OR_RETURN(UniqueFd fd, store.OpenBlob(d.digest));
  auto r = client.UploadBlob(repo, d.digest, d.size, fd.get(), mount_from);
  if (!r)
    return std::move(r).error();
  if (r->existed)
    Say(options.progress, "Copying blob " + Short(d.digest) + " skipped: already exists");
  else if (r->mounted)
    Say(options.progress, "Copying blob " + Short(d.digest) + " mounted from " + mount_from);
  else
    Say(options.progress, "Copying blob " + Short(d.digest) + " done (" + HumanSize(d.size) + ")");
  return Ok();
}

// Pushes the blobs of one manifest, then the manifest under `ref` (a tag, or
// its own digest for the children of an index).
Status PushManifest(Store& store, RegistryClient& client, const std::string& repo,
                    const Descriptor& md, const std::string& ref, const std::string& mount_from,
                    const PushOptions& options) {
  KILN_ASSIGN_OR_RETURN(std::string body, store.ReadBlob(md.digest));
  KILN_ASSIGN_OR_RETURN(Manifest m, ParseManifest(body));
  std::vector<Descriptor> blobs;
  std::set<Digest> seen;
  for (const auto& l : m.layers)
    if (seen.insert(l.digest).second)
      blobs.push_back(l);
  if (seen.insert(m.config.digest).second)
    blobs.push_back(m.config);
  for (const auto& b : blobs)
    if (!store.HasBlob(b.digest))
      return Error(Errc::kNotFound, "blob " + b.digest.str() + " of manifest " + md.digest.str() +
                                        " is not in the store");
  KILN_TRY(RunParallel(blobs.size(), client.options().max_connections, [&](size_t i) {
    return PushBlob(store, client, repo, blobs[i], mount_from, options);
  }));
  std::string media = md.media_type.empty() ? m.media_type : md.media_type;
  KILN_ASSIGN_OR_RETURN(Digest pushed, client.PutManifest(repo, ref, media, body));
  if (pushed != md.digest)
    return Error(Errc::kCorrupt, "manifest " + md.digest.str() + " changed while pushing");
  return Ok();
}

}  // namespace

Status PushToRegistry(Store& store, const StoredImage& image, const ImageReference& dest,
                      const PushOptions& options) {
  std::string what = "push " + dest.str();
  KILN_ASSIGN_OR_RETURN(auto client, RegistryClient::Create(dest.domain, options.client));
  std::string ref = dest.tag.empty() ? dest.digest.str() : dest.tag;
  // A blob that came from another repository of the same registry can be
  // mounted instead of uploaded.
  std::string mount_from;
  for (const auto& name : image.names) {
    auto r = ImageReference::Parse(name);
    if (r && r->domain == dest.domain && r->path != dest.path) {
      mount_from = r->path;
      break;
    }
  }
  const Descriptor& top = image.top;
  if (IsIndexMediaType(top.media_type)) {
    KILN_ASSIGN_OR_RETURN(std::string body, store.ReadBlob(top.digest));
    auto index = ParseIndex(body);
    if (!index)
      return std::move(index).error().WithContext(what);
    for (const auto& child : index->manifests) {
      if (!IsManifestMediaType(child.media_type))
        return Error(Errc::kUnsupported, what + ": nested index " + child.digest.str());
      if (!store.HasBlob(child.digest))
        return Error(Errc::kNotFound, what + ": manifest " + child.digest.str() +
                                          " of the index is not in the store (pull --all-platforms)");
      if (auto s = PushManifest(store, *client, dest.path, child, child.digest.str(), mount_from,
                                options);
          !s)
        return std::move(s).error().WithContext(what);
    }
    auto pushed = client->PutManifest(dest.path, ref, top.media_type, body);
    if (!pushed)
      return std::move(pushed).error().WithContext(what);
  } else if (auto s = PushManifest(store, *client, dest.path, top, ref, mount_from, options); !s) {
    return std::move(s).error().WithContext(what);
  }
  if (dest.digest.valid() && dest.digest != top.digest)
    return Error(Errc::kInvalidInput, what + ": the image's digest is " + top.digest.str());
  Say(options.progress, "Writing manifest to image destination");
  if (options.after_push)
    if (auto s = options.after_push(*client, dest.path, top.digest); !s)
      return std::move(s).error().WithContext(what);
  return Ok();
}

ClientOptions ClientOptionsFrom(const TransferOptions& options) {
  ClientOptions c;
  c.tls_verify = options.tls_verify;
  c.cert_dir = options.cert_dir;
  c.authfile = options.authfile;
  if (options.retries)
    c.max_attempts = *options.retries + 1;
  if (options.retry_delay)
    c.retry_base = *options.retry_delay;
  return c;
}

namespace {

// Progress bars on a terminal (podman/docker habit): one line per blob with
// a bar and the bytes so far, redrawn in place at most every 100 ms; the
// plain progress lines are printed above the block of bars.
class TerminalProgress {
 public:
  void Update(const ProgressEvent& e) {
    std::lock_guard<std::mutex> lock(mu_);
    auto it = std::find_if(bars_.begin(), bars_.end(), [&](const ProgressEvent& b) { return b.what == e.what; });
    if (it == bars_.end())
      bars_.push_back(e);
    else
      *it = e;
    auto now = std::chrono::steady_clock::now();
    if (!e.finished && now - last_draw_ < std::chrono::milliseconds(100))
      return;
    last_draw_ = now;
    Draw("");
  }
  void Line(const std::string& line) {
    // A blob's own start and end lines ("Copying blob X (size)", "... done")
    // are what its bar shows; the others ("skipped: already exists",
    // "Writing manifest ...") go above the bars.
    if (line.rfind("Copying blob ", 0) == 0 &&
        (line.back() == ')' || line.find(" done") != std::string::npos))
      return;
    std::lock_guard<std::mutex> lock(mu_);
    Draw(line);
  }

 private:
  // Moves up over the bars drawn last, prints `line` (if any) where they
  // began, then every bar below it.
  void Draw(const std::string& line) {
    std::string out;
    if (drawn_ > 0)
      out += "\x1b[" + std::to_string(drawn_) + "A";
    if (!line.empty())
      out += "\r\x1b[2K" + line + "\n";
    for (const auto& b : bars_) {
      constexpr int kWidth = 30;
      int fill = b.total > 0 ? static_cast<int>(std::min<uint64_t>(b.done, b.total) * kWidth / b.total)
                             : (b.finished ? kWidth : 0);
      std::string bar = std::string(static_cast<size_t>(fill), '=') +
                        (fill < kWidth ? ">" + std::string(static_cast<size_t>(kWidth - fill - 1), ' ') : "");
      std::string what = b.what.empty() ? b.what : std::string(1, static_cast<char>(std::toupper(
                                                     static_cast<unsigned char>(b.what[0])))) + b.what.substr(1);
      out += "\r\x1b[2K" + what + " [" + bar + "] " + HumanSize(static_cast<int64_t>(b.done)) +
             (b.total > 0 ? " / " + HumanSize(static_cast<int64_t>(b.total)) : std::string()) +
             (b.finished ? " done" : "") + "\n";
    }
    drawn_ = static_cast<int>(bars_.size());
    std::fwrite(out.data(), 1, out.size(), stderr);
    std::fflush(stderr);
  }

  std::mutex mu_;
  std::vector<ProgressEvent> bars_;
  int drawn_ = 0;
  std::chrono::steady_clock::time_point last_draw_{};
};

// Where progress goes: nowhere (--quiet), the caller's sink (build), bars on
// a terminal (TERM not "dumb"), or plain lines on stderr otherwise.
void SetUpProgress(const TransferOptions& options, ClientOptions* client,
                   std::function<void(const std::string&)>* lines) {
  if (options.quiet)
    return;
  if (options.progress) {
    *lines = options.progress;
    return;
  }
  const char* term = std::getenv("TERM");
  if (::isatty(STDERR_FILENO) && term && *term && std::string_view(term) != "dumb") {
    auto view = std::make_shared<TerminalProgress>();
    client->progress = [view](const ProgressEvent& e) { view->Update(e); };
    *lines = [view](const std::string& line) { view->Line(line); };
    return;
  }
  *lines = [](const std::string& line) {
    std::string l = line + "\n";
    std::fwrite(l.data(), 1, l.size(), stderr);
  };
}

// Reads the signing key and passphrase and checks them before anything is
// pushed; returns what signs the pushed manifest and stores the signature.
Expected<std::function<Status(RegistryClient&, const std::string&, const Digest&)>> SigstoreSigner(
    const TransferOptions& options, const ImageReference& ref) {
  const std::string& keyfile = options.sign_by_sigstore_private_key;
  KILN_ASSIGN_OR_RETURN(std::string key, ReadFile(keyfile, 1 << 20));
  std::string passphrase;
  if (!options.sign_passphrase_file.empty()) {
    KILN_ASSIGN_OR_RETURN(passphrase, ReadFile(options.sign_passphrase_file, 1 << 16));
    while (!passphrase.empty() && (passphrase.back() == '\n' || passphrase.back() == '\r'))
      passphrase.pop_back();
  }
  // A wrong passphrase or a bad key fails now, not after the push.
  if (auto probe = SigstoreSign(key, passphrase, "probe"); !probe)
    return std::move(probe).error().WithContext(
        "--sign-by-sigstore-private-key " + keyfile +
        (options.sign_passphrase_file.empty() ? " (no --sign-passphrase-file: the empty passphrase was tried)" : ""));
  std::function<Status(RegistryClient&, const std::string&, const Digest&)> sign =
      [key, passphrase, ref](RegistryClient& client, const std::string& repo, const Digest& top) -> Status {
    std::string payload = SigstorePayload(ref, top);
    KILN_ASSIGN_OR_RETURN(std::string sig, SigstoreSign(key, passphrase, payload));
    return PutSigstoreSignature(client, repo, top, SigstoreSignature{payload, sig});
  };
  return sign;
}

// Pulls the first of `candidates` (short-name resolution) that any of its
// sources (registries.conf mirrors, then the primary) serves. Every attempt is
// logged at debug level; when all fail, the error is the last one, with the
// others listed after it.
Expected<PulledImage> PullConfigured(Store& store, const RegistriesConf& conf, const Policy& policy,
                                     const std::vector<ImageReference>& candidates, const PullOptions& options) {
  std::optional<Error> last;
  std::string others;
  size_t attempts = 0;
  for (const auto& cand : candidates) {
    if (candidates.size() > 1)
      Say(options.progress, "Trying to pull " + cand.str() + "...");
    auto sources = PullSources(conf, cand);
    if (!sources) {
      if (last)
        others += (others.empty() ? "" : "; ") + last->message();
      last = std::move(sources).error();
      ++attempts;
      continue;
    }
    // The signature policy of the reference asked for, checked on the top
    // manifest before any blob is stored; signatures come from the source
    // that serves the image (a mirror keeps them beside the image too).
    const bool need_signatures = NeedsSignatures(*PolicyScope(policy, cand).first);
    if (!need_signatures) {
      // reject (or a requirement kiln cannot check) refuses before any request.
      if (auto s = EvaluatePolicy(policy, cand, Digest::Of(""), {}); !s) {
        if (last)
          others += (others.empty() ? "" : "; ") + last->message();
        last = std::move(s).error();
        ++attempts;
        continue;
      }
    }
    for (const auto& src : *sources) {
      PullOptions po = options;
      po.verify = [&](RegistryClient& client, const std::string& repo, const Digest& top) -> Status {
        std::vector<SigstoreSignature> sigs;
        if (need_signatures) {
          auto fetched = FetchSigstoreSignatures(client, repo, top);
          if (!fetched)
            return std::move(fetched).error().WithContext(cand.str() + ": reading its sigstore signatures");
          sigs = std::move(*fetched);
          LogDebug("pull " + cand.str() + ": " + std::to_string(sigs.size()) + " sigstore signature(s) for " +
                   top.str());
        }
        return EvaluatePolicy(policy, cand, top, sigs);
      };
      if (src.insecure)
        po.client.tls_verify = false;
      LogDebug("pull " + cand.str() + ": trying " + src.ref.str() + (src.mirror ? " (mirror)" : "") +
               (src.insecure ? " (insecure)" : ""));
      auto pulled = PullFromRegistry(store, src.ref, po);
      ++attempts;
      if (pulled) {
        pulled->names.clear();
        if (!cand.tag.empty())
          pulled->names.push_back(cand.str());
        return pulled;
      }
      LogDebug("pull " + cand.str() + ": " + src.ref.str() + ": " + pulled.error().message());
      if (last)
        others += (others.empty() ? "" : "; ") + last->message();
      last = std::move(pulled).error();
    }
  }
  if (!last)
    return Error(Errc::kNotFound, "pull: no registry to pull from");
  if (attempts == 1)
    return std::move(*last);
  return Error(last->code(), last->message() + " (also tried: " + others + ")");
}

}  // namespace

void RegisterDockerTransport() {
  PushFn push = [](Store& store, const StoredImage& image, const std::string& source_name,
                   const TransportRef& dest, const TransferOptions& options) -> Status {
    std::string text = dest.location.empty() ? source_name : dest.location;
    if (text.rfind("//", 0) == 0)
      text = text.substr(2);
    KILN_ASSIGN_OR_RETURN(ImageReference ref, ImageReference::Parse(text));
    PushOptions po;
    po.client = ClientOptionsFrom(options);
    KILN_ASSIGN_OR_RETURN(RegistriesConf conf, LoadRegistriesConf());
    KILN_ASSIGN_OR_RETURN(bool insecure, PushInsecure(conf, ref));
    if (insecure)
      po.client.tls_verify = false;
    if (!options.sign_by_sigstore_private_key.empty()) {
      KILN_ASSIGN_OR_RETURN(po.after_push, SigstoreSigner(options, ref));
    }
    SetUpProgress(options, &po.client, &po.progress);
    if (!options.compression.empty())
      LogInfo("push: layers are sent as stored (compressed once, at commit); --compression " +
              options.compression + " applies to new layers only");
    return PushToRegistry(store, image, ref, po);
  };
  PullFn pull = [](Store& store, const TransportRef& src,
                   const TransferOptions& options) -> Expected<PulledImage> {
    std::string text = src.location;
    if (text.rfind("//", 0) == 0)
      text = text.substr(2);
    KILN_ASSIGN_OR_RETURN(ImageReference ref, ImageReference::Parse(text));
    PullOptions po;
    po.platform = options.platform;
    po.all_platforms = options.all_platforms;
    po.client = ClientOptionsFrom(options);
    SetUpProgress(options, &po.client, &po.progress);
    // Inside kiln's user namespace (pull, build, run) the layer directories
    // made here are the ones builds and containers use: unpack while pulling.
    po.unpack_layers = options.unpack_layers && std::getenv(kUserNsMarkerEnv) != nullptr;
    KILN_ASSIGN_OR_RETURN(RegistriesConf conf, LoadRegistriesConf());
    KILN_ASSIGN_OR_RETURN(Policy policy, LoadPolicy(options.signature_policy));
    KILN_ASSIGN_OR_RETURN(ShortNameResolution names, ResolveShortName(conf, ref));
    if (!names.note.empty())
      Say(po.progress, names.note);
    return PullConfigured(store, conf, policy, names.candidates, po);
  };
  RegisterTransport("docker", std::move(push), std::move(pull));
}

}  // namespace kiln::registry
