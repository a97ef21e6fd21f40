// The image-acquire function (include/kiln/acquire.h): one name-resolution
// rule and podman's pull policies, over the store and the transports (the
// registry module plugs in docker://, kiln/transport.h).
#include "kiln/acquire.h"

#include <utility>
#include <vector>

#include "kiln/events.h"
#include "kiln/log.h"
#include "kiln/reference.h"

namespace kiln::image {

namespace {

// --pull values and their policies, both ways.
constexpr std::pair<PullPolicy, std::string_view> kPullPolicies[] = {
    {PullPolicy::kMissing, "missing"}, {PullPolicy::kAlways, "always"},
    {PullPolicy::kNever, "never"}, {PullPolicy::kNewer, "newer"}};

}  // namespace

Expected<PullPolicy> ParsePullPolicy(std::string_view text) {
  for (const auto& [policy, name] : kPullPolicies)
    if (text == name)
      return policy;
  return Error(Errc::kInvalidInput, "invalid --pull " + std::string(text) + ": use missing, always, never or newer");
}

std::string_view PullPolicyName(PullPolicy policy) {
  for (const auto& [p, name] : kPullPolicies)
    if (p == policy)
      return name;
  return "missing";
}

Expected<StoredImage> ResolveLocal(const Store& store, std::string_view reference,
                                   const std::optional<Platform>& platform) {
  auto image = store.ResolveImage(reference, platform);
  constexpr std::string_view kHub = "docker.io/library/";
  if (!image && image.error().code() == Errc::kNotFound && reference.substr(0, kHub.size()) == kHub) {
    auto local = store.ResolveImage("localhost/" + std::string(reference.substr(kHub.size())), platform);
    if (local)
      return local;
  }
  return image;
}

Expected<StoredImage> Pull(Store& store, std::string_view reference, const AcquireOptions& options) {
  KILN_ASSIGN_OR_RETURN(TransportRef src, TransportRef::Parse(reference));
  TransferOptions to = options.transfer;
  to.platform = options.platform;
  // Until the image is named, the lease keeps the blobs the pull writes
  // (a concurrent `kiln prune` would otherwise be free to remove them).
  KILN_ASSIGN_OR_RETURN(Lease lease, store.AcquireLease("pull " + std::string(reference)));
  KILN_ASSIGN_OR_RETURN(PulledImage pulled, PullImage(store, src, to));
  std::vector<std::string> names = std::move(pulled.names);
  if (src.transport == "docker" && names.empty()) {
    std::string text = src.location;
    if (text.rfind("//", 0) == 0)
      text = text.substr(2);
    if (auto ref = ImageReference::Parse(text))
      names.push_back(ref->str());
  }
  KILN_TRY(store.AddImage(pulled.top, names));
  KILN_ASSIGN_OR_RETURN(StoredImage image, store.LoadImage(pulled.top, options.platform));
  image.names = std::move(names);
  events::Record(store.root(), "image", "pull", image.id().hex(), std::string(reference));
  return image;
}

Expected<StoredImage> Acquire(Store& store, std::string_view reference, const AcquireOptions& options) {
  auto pull = [&]() -> Expected<StoredImage> {
    auto image = Pull(store, reference, options);
    if (!image && options.pull_context)
      return std::move(image).error().WithContext("pull " + std::string(reference));
    return image;
  };
  switch (options.policy) {
    case PullPolicy::kAlways:
      return pull();
    case PullPolicy::kNewer: {
      auto pulled = pull();
      if (pulled)
        return pulled;
      auto local = ResolveLocal(store, reference, options.platform);
      if (!local)
        return pulled;  // the pull's error says more than "not known"
      LogWarn(pulled.error().message());
      return local;
    }
    case PullPolicy::kMissing:
    case PullPolicy::kNever:
      break;
  }
  auto local = ResolveLocal(store, reference, options.platform);
  if (local || local.error().code() != Errc::kNotFound || options.policy == PullPolicy::kNever)
    return local;
  return pull();
}

Expected<std::string> AcquireForPlatform(Store& store, std::string_view reference, std::string_view platform,
                                         std::string_view pull) {
  auto p = Platform::Parse(platform);
  if (!p)
    return Error(Errc::kInvalidInput, "--platform " + std::string(platform) + ": " + p.error().message());
  KILN_ASSIGN_OR_RETURN(PullPolicy policy, ParsePullPolicy(pull));
  AcquireOptions options;
  options.policy = policy;
  options.platform = *p;
  KILN_ASSIGN_OR_RETURN(StoredImage image, Acquire(store, reference, options));
  if (!p->Matches(image.config.platform()))
    return Error(Errc::kNotFound, std::string(reference) + ": no image for " + p->str() + " (it is " +
                                      image.config.platform().str() + ")");
  if (image.manifest_descriptor.digest != image.top.digest)
    return image.manifest_descriptor.digest.str();
  return std::string(reference);
}

}  // namespace kiln::image
