// Sigstore signatures as podman, skopeo and cosign store them, and the
// containers-policy.json(5) rules that require them (docs/supply-chain.md).
//
// - Keys: cosign's format. The private key is a PEM block "ENCRYPTED
//   SIGSTORE PRIVATE KEY" holding JSON {kdf: scrypt, cipher: nacl/secretbox,
//   ciphertext} around a PKCS#8 ECDSA P-256 key; the public key is PKIX PEM.
// - A signature: ECDSA/SHA-256 over a "simple signing" JSON payload naming
//   the manifest digest and the reference it was pushed as, stored in the
//   same repository under the tag "sha256-<hex>.sig" as an OCI manifest with
//   one layer per signature (the payload, its signature in the annotation
//   "dev.cosignproject.cosign/signature").
#pragma once

#include <map>
#include <string>
#include <string_view>
#include <vector>

#include "kiln/digest.h"
#include "kiln/error.h"
#include "kiln/reference.h"

namespace kiln::registry {

class RegistryClient;

struct SigstoreKeyPair {
  std::string private_pem;  // encrypted with the passphrase
  std::string public_pem;
};

/// A new ECDSA P-256 key pair; the private key encrypted as cosign does.
Expected<SigstoreKeyPair> GenerateSigstoreKey(std::string_view passphrase);

/// The simple-signing payload for `manifest` pushed as `reference`.
std::string SigstorePayload(const ImageReference& reference, const Digest& manifest);

/// Signs `payload` with the encrypted private key (kAuth on a wrong
/// passphrase); returns the base64 DER signature.
Expected<std::string> SigstoreSign(std::string_view private_pem, std::string_view passphrase,
                                   std::string_view payload);

/// Ok when `signature_b64` is a valid signature of `payload` by `public_pem`.
Status SigstoreVerifySignature(std::string_view public_pem, std::string_view payload,
                               std::string_view signature_b64);

/// One stored signature.
struct SigstoreSignature {
  std::string payload;
  std::string signature_b64;
};

/// The signatures stored for `manifest` in `repo` (empty when none).
Expected<std::vector<SigstoreSignature>> FetchSigstoreSignatures(RegistryClient& client, const std::string& repo,
                                                                 const Digest& manifest);
/// Adds a signature for `manifest` to `repo` (keeping those already there).
Status PutSigstoreSignature(RegistryClient& client, const std::string& repo, const Digest& manifest,
                            const SigstoreSignature& signature);

// ----------------------------------------------------------- policy.json

/// One requirement of a policy scope.
struct PolicyRequirement {
  enum class Type { kAcceptAnything, kReject, kSigstoreSigned, kUnsupported };
  Type type = Type::kAcceptAnything;
  /// kUnsupported: what kiln cannot check (signedBy/GPG, fulcio, rekor,
  /// remapIdentity, an unreadable keyPath). An image in this scope is refused.
  std::string unsupported;
  std::vector<std::string> public_keys_pem;  // sigstoreSigned: any one may have signed
  /// sigstoreSigned signedIdentity: "matchRepoDigestOrExact" (default),
  /// "matchExact", "matchRepository", "exactReference", "exactRepository".
  std::string identity = "matchRepoDigestOrExact";
  std::string identity_value;  // exactReference / exactRepository
};

struct Policy {
  std::vector<PolicyRequirement> default_requirements;
  /// transports.docker: scope ("host[:port][/path]", "*.domain", "" = the
  /// transport's default) -> requirements.
  std::map<std::string, std::vector<PolicyRequirement>> docker;
  std::string file;  // "" when no policy file exists (everything is accepted)
};

/// Parses policy.json text (key files named by keyPath are read now).
/// Requirements kiln cannot check are kept as kUnsupported: a pull in their
/// scope fails closed naming them, other scopes are unaffected.
Expected<Policy> ParsePolicy(std::string_view text, const std::string& file);

/// `override_path` when given, else $HOME/.config/containers/policy.json when
/// it exists, else /etc/containers/policy.json; none at all: accept anything.
Expected<Policy> LoadPolicy(const std::string& override_path);

/// The requirements that apply to `ref` and the scope they came from
/// ("default" for the top-level default).
std::pair<const std::vector<PolicyRequirement>*, std::string> PolicyScope(const Policy& policy,
                                                                           const ImageReference& ref);

/// True when some requirement needs signatures (they are fetched only then).
bool NeedsSignatures(const std::vector<PolicyRequirement>& requirements);

/// Checks the requirements for `ref` (the reference the user asked for)
/// whose top manifest is `manifest`, given the signatures found. The error
/// names the reference, the policy file and the scope.
Status EvaluatePolicy(const Policy& policy, const ImageReference& ref, const Digest& manifest,
                      const std::vector<SigstoreSignature>& signatures);

}  // namespace kiln::registry
