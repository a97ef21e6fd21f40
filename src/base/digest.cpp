#include "kiln/digest.h"

#include <openssl/crypto.h>
#include <openssl/evp.h>

namespace kiln {

namespace {

// SHA-256, fetched once. kiln needs nothing else from libcrypto on its hot
// paths, so the first use initialises OpenSSL without the config file, the
// error strings and the legacy all-algorithm tables: the default
// initialisation cost ~2 ms of every process start (every `kiln run`). TLS
// is not affected: libcurl brings its own libcrypto (src/registry).
const EVP_MD* Sha256Md() {
  static const EVP_MD* md = [] {
    OPENSSL_init_crypto(OPENSSL_INIT_NO_LOAD_CONFIG | OPENSSL_INIT_NO_ADD_ALL_CIPHERS |
                            OPENSSL_INIT_NO_ADD_ALL_DIGESTS | OPENSSL_INIT_NO_LOAD_CRYPTO_STRINGS,
                        nullptr);
    const EVP_MD* fetched = EVP_MD_fetch(nullptr, "SHA256", nullptr);
    return fetched ? fetched : EVP_sha256();
  }();
  return md;
}

bool IsLowerHex(std::string_view s) {
  for (char c : s)
    if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f')))
      return false;
  return true;
}

}  // namespace

std::string HexEncode(const unsigned char* data, size_t len) {
  static const char kHex[] = "0123456789abcdef";
  std::string out(len * 2, '0');
  for (size_t i = 0; i < len; ++i) {
    out[2 * i] = kHex[data[i] >> 4];
    out[2 * i + 1] = kHex[data[i] & 15];
  }
  return out;
}

Expected<Digest> Digest::Parse(std::string_view text) {
  auto colon = text.find(':');
  if (colon == std::string_view::npos)
    return Error(Errc::kInvalidInput, "invalid digest \"" + std::string(text) + "\": missing algorithm");
  std::string_view algo = text.substr(0, colon);
  std::string_view hex = text.substr(colon + 1);
  size_t want = algo == "sha256" ? 64 : algo == "sha512" ? 128 : 0;
  if (want == 0)
    return Error(Errc::kInvalidInput,
                 "invalid digest \"" + std::string(text) + "\": unsupported algorithm");
  if (hex.size() != want || !IsLowerHex(hex))
    return Error(Errc::kInvalidInput, "invalid digest \"" + std::string(text) + "\"");
  Digest d;
  d.algo_ = std::string(algo);
  d.hex_ = std::string(hex);
  return d;
}

Digest Digest::FromSha256Bytes(const unsigned char* bytes) {
  Digest d;
  d.algo_ = "sha256";
  d.hex_ = HexEncode(bytes, 32);
  return d;
}

Digest Digest::Of(std::string_view data) {
  Sha256 h;
  h.Update(data);
  return h.Finish();
}

struct Sha256::Impl {
  EVP_MD_CTX* ctx = nullptr;
  Impl() : ctx(EVP_MD_CTX_new()) { EVP_DigestInit_ex(ctx, Sha256Md(), nullptr); }
  ~Impl() { EVP_MD_CTX_free(ctx); }
};

Sha256::Sha256() : impl_(std::make_unique<Impl>()) {}
Sha256::~Sha256() = default;
Sha256::Sha256(Sha256&&) noexcept = default;
Sha256& Sha256::operator=(Sha256&&) noexcept = default;

void Sha256::Update(const void* data, size_t len) {
  EVP_DigestUpdate(impl_->ctx, data, len);
  bytes_ += len;
}

Digest Sha256::Finish() {
  unsigned char md[32];
  unsigned int n = 0;
  EVP_DigestFinal_ex(impl_->ctx, md, &n);
  EVP_DigestInit_ex(impl_->ctx, Sha256Md(), nullptr);
  bytes_ = 0;
  return Digest::FromSha256Bytes(md);
}

}  // namespace kiln
