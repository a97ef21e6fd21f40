// Digest ("sha256:<64 hex>") and a streaming SHA-256 hasher.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>

#include "kiln/error.h"

namespace kiln {

/// A validated content digest. Only sha256 is produced; sha512 is accepted
/// when parsing so that foreign manifests can be read. A Digest that exists
/// is always well-formed, so its hex part is safe to use in a path or URL.
class Digest {
 public:
  Digest() = default;  // empty; valid() is false

  /// Parses "algo:hex"; rejects anything that is not sha256 (64 lower-case
  /// hex) or sha512 (128 lower-case hex).
  static Expected<Digest> Parse(std::string_view text);
  /// Builds a sha256 digest from 32 raw bytes.
  static Digest FromSha256Bytes(const unsigned char* bytes);
  /// SHA-256 of a whole buffer.
  static Digest Of(std::string_view data);

  bool valid() const { return !algo_.empty(); }
  const std::string& algorithm() const { return algo_; }
  const std::string& hex() const { return hex_; }
  std::string str() const { return algo_ + ":" + hex_; }

  friend bool operator==(const Digest& a, const Digest& b) = default;
  friend auto operator<=>(const Digest& a, const Digest& b) = default;

 private:
  std::string algo_;
  std::string hex_;
};

/// Incremental SHA-256 (OpenSSL EVP). Not copyable.
class Sha256 {
 public:
  Sha256();
  ~Sha256();
  Sha256(const Sha256&) = delete;
  Sha256& operator=(const Sha256&) = delete;
  Sha256(Sha256&&) noexcept;
  Sha256& operator=(Sha256&&) noexcept;

  void Update(const void* data, size_t len);
  void Update(std::string_view data) { Update(data.data(), data.size()); }
  /// Finishes and returns the digest; the hasher is reset afterwards.
  Digest Finish();
  uint64_t bytes() const { return bytes_; }

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
  uint64_t bytes_ = 0;
};

/// Hex of raw bytes, lower case.
std::string HexEncode(const unsigned char* data, size_t len);

}  // namespace kiln
