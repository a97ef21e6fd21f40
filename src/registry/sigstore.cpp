// Sigstore keys, signatures and their storage in a registry
// (include/kiln/sigstore.h). Formats as cosign and containers/image write
// them, so keys and signatures move between kiln, skopeo and podman.
#include "kiln/sigstore.h"

#include <openssl/bio.h>
#include <openssl/ec.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <sodium.h>
#include <sys/mman.h>
#include <unistd.h>

#include <ctime>
#include <memory>
#include <nlohmann/json.hpp>

#include "kiln/registry.h"
#include "kiln/unique_fd.h"
#include "registry/internal.h"

namespace kiln::registry {
namespace {

using json = nlohmann::json;

constexpr std::string_view kSigstorePem = "ENCRYPTED SIGSTORE PRIVATE KEY";
constexpr std::string_view kCosignPem = "ENCRYPTED COSIGN PRIVATE KEY";
constexpr std::string_view kSimpleSigning = "application/vnd.dev.cosign.simplesigning.v1+json";
constexpr std::string_view kSignatureAnnotation = "dev.cosignproject.cosign/signature";
constexpr std::string_view kPayloadType = "cosign container image signature";

struct PkeyFree {
  void operator()(EVP_PKEY* p) const { EVP_PKEY_free(p); }
};
using Pkey = std::unique_ptr<EVP_PKEY, PkeyFree>;
struct BioFree {
  void operator()(BIO* b) const { BIO_free(b); }
};
using Bio = std::unique_ptr<BIO, BioFree>;
struct MdCtxFree {
  void operator()(EVP_MD_CTX* c) const { EVP_MD_CTX_free(c); }
};

Error Crypto(const std::string& what) { return Error(Errc::kFailed, what); }

std::string Pem(std::string_view type, const std::string& der) {
  std::string b64 = Base64Encode(der);
  std::string out = "-----BEGIN " + std::string(type) + "-----\n";
  for (size_t i = 0; i < b64.size(); i += 64)
    out += b64.substr(i, 64) + "\n";
  return out + "-----END " + std::string(type) + "-----\n";
}

// The body of the first PEM block, and its type.
Expected<std::pair<std::string, std::string>> UnPem(std::string_view text) {
  size_t b = text.find("-----BEGIN ");
  if (b == std::string_view::npos)
    return Error(Errc::kInvalidInput, "not a PEM file");
  size_t te = text.find("-----", b + 11);
  if (te == std::string_view::npos)
    return Error(Errc::kInvalidInput, "not a PEM file");
  std::string type(text.substr(b + 11, te - b - 11));
  std::string end = "-----END " + type + "-----";
  size_t e = text.find(end, te);
  if (e == std::string_view::npos)
    return Error(Errc::kInvalidInput, "PEM block " + type + " has no end line");
  std::string b64;
  for (char c : text.substr(te + 5, e - te - 5))
    if (c != '\n' && c != '\r' && c != ' ')
      b64 += c;
  auto der = Base64Decode(b64);
  if (!der)
    return Error(Errc::kInvalidInput, "PEM block " + type + " is not valid base64");
  return std::make_pair(type, *der);
}

Status Sodium() {
  static const int ok = sodium_init();
  if (ok < 0)
    return Crypto("libsodium failed to initialise");
  return Ok();
}

// scrypt(passphrase, salt) -> the 32-byte secretbox key, as cosign
// (N=32768, r=8, p=1 unless the file says otherwise).
Expected<std::string> DeriveKey(std::string_view passphrase, const std::string& salt, uint64_t n, uint32_t r,
                                uint32_t p) {
  std::string key(crypto_secretbox_KEYBYTES, '\0');
  if (crypto_pwhash_scryptsalsa208sha256_ll(reinterpret_cast<const uint8_t*>(passphrase.data()), passphrase.size(),
                                            reinterpret_cast<const uint8_t*>(salt.data()), salt.size(), n, r, p,
                                            reinterpret_cast<uint8_t*>(key.data()), key.size()) != 0)
    return Crypto("scrypt failed (out of memory?)");
  return key;
}

Expected<Pkey> DecryptPrivateKey(std::string_view pem, std::string_view passphrase) {
  KILN_TRY(Sodium());
  KILN_ASSIGN_OR_RETURN(auto block, UnPem(pem));
  if (block.first != kSigstorePem && block.first != kCosignPem)
    return Error(Errc::kInvalidInput, "the private key is a \"" + block.first + "\" PEM block; expected \"" +
                                          std::string(kSigstorePem) + "\" (cosign's format)");
  json j = json::parse(block.second, nullptr, false);
  if (j.is_discarded() || !j.is_object())
    return Error(Errc::kInvalidInput, "the private key's PEM block is not cosign's JSON");
  try {
    if (j.at("kdf").at("name") != "scrypt" || j.at("cipher").at("name") != "nacl/secretbox")
      return Error(Errc::kUnsupported, "private key: only scrypt + nacl/secretbox keys are supported");
    const auto& params = j.at("kdf").at("params");
    auto salt = Base64Decode(j.at("kdf").at("salt").get<std::string>());
    auto nonce = Base64Decode(j.at("cipher").at("nonce").get<std::string>());
    auto ct = Base64Decode(j.at("ciphertext").get<std::string>());
    if (!salt || !nonce || !ct || nonce->size() != crypto_secretbox_NONCEBYTES ||
        ct->size() < crypto_secretbox_MACBYTES)
      return Error(Errc::kInvalidInput, "private key: bad salt, nonce or ciphertext");
    uint64_t n = params.at("N").get<uint64_t>();
    uint32_t r = params.at("r").get<uint32_t>(), p = params.at("p").get<uint32_t>();
    if (n > (uint64_t(1) << 20) || r > 32 || p > 16)
      return Error(Errc::kInvalidInput, "private key: scrypt parameters too large");
    KILN_ASSIGN_OR_RETURN(std::string key, DeriveKey(passphrase, *salt, n, r, p));
    std::string der(ct->size() - crypto_secretbox_MACBYTES, '\0');
    if (crypto_secretbox_open_easy(reinterpret_cast<uint8_t*>(der.data()),
                                   reinterpret_cast<const uint8_t*>(ct->data()), ct->size(),
                                   reinterpret_cast<const uint8_t*>(nonce->data()),
                                   reinterpret_cast<const uint8_t*>(key.data())) != 0)
      return Error(Errc::kAuth, "cannot decrypt the private key: wrong passphrase");
    const unsigned char* d = reinterpret_cast<const unsigned char*>(der.data());
    Pkey pkey(d2i_AutoPrivateKey(nullptr, &d, static_cast<long>(der.size())));
    sodium_memzero(der.data(), der.size());
    if (!pkey)
      return Error(Errc::kInvalidInput, "private key: not a PKCS#8 key");
    return pkey;
  } catch (const json::exception& e) {
    return Error(Errc::kInvalidInput, std::string("private key: ") + e.what());
  }
}

Expected<Pkey> PublicKey(std::string_view pem) {
  Bio bio(BIO_new_mem_buf(pem.data(), static_cast<int>(pem.size())));
  Pkey pkey(PEM_read_bio_PUBKEY(bio.get(), nullptr, nullptr, nullptr));
  if (!pkey)
    return Error(Errc::kInvalidInput, "not a PEM public key (\"PUBLIC KEY\")");
  return pkey;
}

}  // namespace

Expected<SigstoreKeyPair> GenerateSigstoreKey(std::string_view passphrase) {
  KILN_TRY(Sodium());
  Pkey pkey(EVP_PKEY_Q_keygen(nullptr, nullptr, "EC", "P-256"));
  if (!pkey)
    return Crypto("ECDSA P-256 key generation failed");
  // Private key: PKCS#8 DER, sealed with scrypt + secretbox (cosign).
  PKCS8_PRIV_KEY_INFO* p8 = EVP_PKEY2PKCS8(pkey.get());
  if (!p8)
    return Crypto("encoding the private key failed");
  unsigned char* der = nullptr;
  int len = i2d_PKCS8_PRIV_KEY_INFO(p8, &der);
  PKCS8_PRIV_KEY_INFO_free(p8);
  if (len <= 0)
    return Crypto("encoding the private key failed");
  std::string plain(reinterpret_cast<char*>(der), static_cast<size_t>(len));
  OPENSSL_clear_free(der, static_cast<size_t>(len));
  std::string salt(32, '\0'), nonce(crypto_secretbox_NONCEBYTES, '\0');
  randombytes_buf(salt.data(), salt.size());
  randombytes_buf(nonce.data(), nonce.size());
  KILN_ASSIGN_OR_RETURN(std::string key, DeriveKey(passphrase, salt, 32768, 8, 1));
  std::string ct(plain.size() + crypto_secretbox_MACBYTES, '\0');
  crypto_secretbox_easy(reinterpret_cast<uint8_t*>(ct.data()), reinterpret_cast<const uint8_t*>(plain.data()),
                        plain.size(), reinterpret_cast<const uint8_t*>(nonce.data()),
                        reinterpret_cast<const uint8_t*>(key.data()));
  sodium_memzero(plain.data(), plain.size());
  json j = {{"kdf", {{"name", "scrypt"}, {"params", {{"N", 32768}, {"r", 8}, {"p", 1}}}, {"salt", Base64Encode(salt)}}},
            {"cipher", {{"name", "nacl/secretbox"}, {"nonce", Base64Encode(nonce)}}},
            {"ciphertext", Base64Encode(ct)}};
  SigstoreKeyPair out;
  out.private_pem = Pem(kSigstorePem, j.dump());
  Bio bio(BIO_new(BIO_s_mem()));
  if (!PEM_write_bio_PUBKEY(bio.get(), pkey.get()))
    return Crypto("encoding the public key failed");
  char* data = nullptr;
  long n = BIO_get_mem_data(bio.get(), &data);
  out.public_pem.assign(data, static_cast<size_t>(n));
  return out;
}

std::string SigstorePayload(const ImageReference& reference, const Digest& manifest) {
  json j = {{"critical",
             {{"identity", {{"docker-reference", reference.str()}}},
              {"image", {{"docker-manifest-digest", manifest.str()}}},
              {"type", kPayloadType}}},
            {"optional", {{"creator", "kiln"}, {"timestamp", static_cast<int64_t>(std::time(nullptr))}}}};
  return j.dump();
}

Expected<std::string> SigstoreSign(std::string_view private_pem, std::string_view passphrase,
                                   std::string_view payload) {
  KILN_ASSIGN_OR_RETURN(Pkey pkey, DecryptPrivateKey(private_pem, passphrase));
  std::unique_ptr<EVP_MD_CTX, MdCtxFree> ctx(EVP_MD_CTX_new());
  size_t len = 0;
  if (!ctx || EVP_DigestSignInit(ctx.get(), nullptr, EVP_sha256(), nullptr, pkey.get()) != 1 ||
      EVP_DigestSign(ctx.get(), nullptr, &len, reinterpret_cast<const unsigned char*>(payload.data()),
                     payload.size()) != 1)
    return Crypto("signing failed");
  std::string sig(len, '\0');
  if (EVP_DigestSign(ctx.get(), reinterpret_cast<unsigned char*>(sig.data()), &len,
                     reinterpret_cast<const unsigned char*>(payload.data()), payload.size()) != 1)
    return Crypto("signing failed");
  sig.resize(len);
  return Base64Encode(sig);
}

Status SigstoreVerifySignature(std::string_view public_pem, std::string_view payload,
                               std::string_view signature_b64) {
  KILN_ASSIGN_OR_RETURN(Pkey pkey, PublicKey(public_pem));
  auto sig = Base64Decode(signature_b64);
  if (!sig)
    return Error(Errc::kCorrupt, "the signature is not base64");
  std::unique_ptr<EVP_MD_CTX, MdCtxFree> ctx(EVP_MD_CTX_new());
  if (!ctx || EVP_DigestVerifyInit(ctx.get(), nullptr, EVP_sha256(), nullptr, pkey.get()) != 1)
    return Crypto("signature verification failed to start");
  if (EVP_DigestVerify(ctx.get(), reinterpret_cast<const unsigned char*>(sig->data()), sig->size(),
                       reinterpret_cast<const unsigned char*>(payload.data()), payload.size()) != 1)
    return Error(Errc::kCorrupt, "the signature does not match the key");
  return Ok();
}

namespace {

std::string SignatureTag(const Digest& manifest) { return "sha256-" + manifest.hex() + ".sig"; }

Expected<UniqueFd> MemFd(std::string_view data) {
  int fd = ::memfd_create("kiln-sig", MFD_CLOEXEC);
  if (fd < 0)
    return Error::FromErrno("memfd_create");
  UniqueFd out(fd);
  size_t off = 0;
  while (off < data.size()) {
    ssize_t n = ::write(fd, data.data() + off, data.size() - off);
    if (n < 0)
      return Error::FromErrno("write");
    off += static_cast<size_t>(n);
  }
  return out;
}

Status Upload(RegistryClient& client, const std::string& repo, std::string_view data) {
  KILN_ASSIGN_OR_RETURN(UniqueFd fd, MemFd(data));
  auto r = client.UploadBlob(repo, Digest::Of(data), static_cast<int64_t>(data.size()), fd.get());
  if (!r)
    return std::move(r).error();
  return Ok();
}

}  // namespace

Expected<std::vector<SigstoreSignature>> FetchSigstoreSignatures(RegistryClient& client, const std::string& repo,
                                                                 const Digest& manifest) {
  std::vector<SigstoreSignature> out;
  KILN_ASSIGN_OR_RETURN(auto head, client.HeadManifest(repo, SignatureTag(manifest)));
  if (!head)
    return out;
  KILN_ASSIGN_OR_RETURN(ManifestBlob mb, client.GetManifest(repo, SignatureTag(manifest)));
  json m = json::parse(mb.body, nullptr, false);
  if (m.is_discarded() || !m.is_object() || !m.contains("layers") || !m["layers"].is_array())
    return Error(Errc::kCorrupt, repo + ":" + SignatureTag(manifest) + ": not a signature manifest");
  for (const auto& l : m["layers"]) {
    if (!l.is_object() || l.value("mediaType", "") != kSimpleSigning)
      continue;
    auto ann = l.find("annotations");
    if (ann == l.end() || !ann->is_object() || !ann->contains(std::string(kSignatureAnnotation)))
      continue;
    KILN_ASSIGN_OR_RETURN(Digest d, Digest::Parse(l.value("digest", "")));
    int64_t size = l.value("size", int64_t(-1));
    if (size < 0 || size > (4 << 20))
      return Error(Errc::kCorrupt, repo + ":" + SignatureTag(manifest) + ": bad signature payload size");
    KILN_ASSIGN_OR_RETURN(std::string payload, client.FetchBlobBytes(repo, d, size));
    out.push_back(SigstoreSignature{std::move(payload), (*ann)[std::string(kSignatureAnnotation)].get<std::string>()});
  }
  return out;
}

Status PutSigstoreSignature(RegistryClient& client, const std::string& repo, const Digest& manifest,
                            const SigstoreSignature& signature) {
  json m;
  json config = {{"architecture", ""}, {"os", ""}, {"config", json::object()},
                 {"rootfs", {{"type", "layers"}, {"diff_ids", json::array()}}}};
  KILN_ASSIGN_OR_RETURN(auto head, client.HeadManifest(repo, SignatureTag(manifest)));
  if (head) {
    KILN_ASSIGN_OR_RETURN(ManifestBlob mb, client.GetManifest(repo, SignatureTag(manifest)));
    m = json::parse(mb.body, nullptr, false);
    if (m.is_discarded() || !m.is_object() || !m.contains("layers") || !m.contains("config"))
      return Error(Errc::kCorrupt, repo + ":" + SignatureTag(manifest) + ": not a signature manifest");
    KILN_ASSIGN_OR_RETURN(Digest cd, Digest::Parse(m["config"].value("digest", "")));
    KILN_ASSIGN_OR_RETURN(std::string body, client.FetchBlobBytes(repo, cd, m["config"].value("size", int64_t(-1))));
    config = json::parse(body, nullptr, false);
    if (config.is_discarded() || !config.is_object())
      return Error(Errc::kCorrupt, repo + ":" + SignatureTag(manifest) + ": bad config");
    for (const auto& l : m["layers"])
      if (l.value("digest", "") == Digest::Of(signature.payload).str() && l.contains("annotations") &&
          l["annotations"].value(std::string(kSignatureAnnotation), "") == signature.signature_b64)
        return Ok();  // already there
  } else {
    m = {{"schemaVersion", 2}, {"mediaType", "application/vnd.oci.image.manifest.v1+json"},
         {"layers", json::array()}};
  }
  KILN_TRY(Upload(client, repo, signature.payload));
  Digest pd = Digest::Of(signature.payload);
  m["layers"].push_back({{"mediaType", kSimpleSigning},
                         {"digest", pd.str()},
                         {"size", signature.payload.size()},
                         {"annotations", {{std::string(kSignatureAnnotation), signature.signature_b64}}}});
  config["rootfs"]["diff_ids"].push_back(pd.str());
  std::string cbody = config.dump();
  KILN_TRY(Upload(client, repo, cbody));
  m["config"] = {{"mediaType", "application/vnd.oci.image.config.v1+json"},
                 {"digest", Digest::Of(cbody).str()},
                 {"size", cbody.size()}};
  auto put = client.PutManifest(repo, SignatureTag(manifest), "application/vnd.oci.image.manifest.v1+json", m.dump());
  if (!put)
    return std::move(put).error().WithContext("storing the signature " + repo + ":" + SignatureTag(manifest));
  return Ok();
}

}  // namespace kiln::registry
