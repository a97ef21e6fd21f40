// kiln-bench-layer: generate a benchmark tree, pack it, unpack it, print
// throughput. Driven by bench/layer.sh (which adds /usr/bin/time -v and
// buildah beside it).
//
//   kiln-bench-layer gen DIR [SMALL_FILES] [BIG_MB]
//   kiln-bench-layer pack DIR OUT gzip|zstd|none [THREADS]
//   kiln-bench-layer unpack LAYER DIR
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include "kiln/fs.h"
#include "kiln/layer.h"

namespace {

using kiln::layer::Compression;

double Now() {
  return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

uint64_t g_state = 0x9e3779b97f4a7c15ULL;
uint64_t Next() {  // xorshift64*
  g_state ^= g_state >> 12;
  g_state ^= g_state << 25;
  g_state ^= g_state >> 27;
  return g_state * 2685821657736338717ULL;
}

// Half-compressible: each 64 KiB block is 32 KiB of random bytes and 32 KiB
// of repetitive text.
void FillHalf(std::string* buf) {
  static const char kText[] = "the quick brown fox jumps over the lazy dog 0123456789\n";
  for (size_t off = 0; off < buf->size(); off += 65536) {
    size_t n = std::min<size_t>(65536, buf->size() - off);
    size_t half = n / 2;
    for (size_t i = 0; i + 8 <= half; i += 8) {
      uint64_t r = Next();
      std::memcpy(buf->data() + off + i, &r, 8);
    }
    for (size_t i = half; i < n; ++i)
      (*buf)[off + i] = kText[(i + off / 65536) % (sizeof kText - 1)];
  }
}

int Gen(const std::string& dir, int small_files, int big_mb) {
  if (!kiln::MakeDirs(dir))
    return 1;
  std::string text;
  for (int i = 0; i < small_files; ++i) {
    std::string sub = dir + "/small/d" + std::to_string(i / 100);
    if (i % 100 == 0 && !kiln::MakeDirs(sub))
      return 1;
    size_t size = 512 + Next() % 8192;
    text.assign(size, '\0');
    for (size_t k = 0; k < size; ++k)
      text[k] = static_cast<char>('a' + (Next() % 4 == 0 ? Next() % 26 : k % 7));
    if (!kiln::WriteFileAtomic(sub + "/f" + std::to_string(i) + ".txt", text))
      return 1;
  }
  if (!kiln::MakeDirs(dir + "/big"))
    return 1;
  const int kChunkMb = 16;
  std::string chunk(size_t(kChunkMb) << 20, '\0');
  for (int i = 0; i < big_mb / kChunkMb; ++i) {
    FillHalf(&chunk);
    if (!kiln::WriteFileAtomic(dir + "/big/blob" + std::to_string(i) + ".bin", chunk))
      return 1;
  }
  return 0;
}

int Pack(const std::string& dir, const std::string& out, const std::string& comp, int threads) {
  kiln::layer::PackOptions opt;
  opt.compression = comp == "gzip" ? Compression::kGzip : comp == "zstd" ? Compression::kZstd : Compression::kNone;
  opt.threads = threads;
  kiln::UniqueFd fd(::open(out.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644));
  if (!fd) {
    std::perror(out.c_str());
    return 1;
  }
  double t0 = Now();
  auto info = kiln::layer::PackDirectory(dir, fd.get(), opt);
  double dt = Now() - t0;
  if (!info) {
    std::fprintf(stderr, "pack: %s\n", info.error().message().c_str());
    return 1;
  }
  std::printf("pack %s: %.1f MB tar -> %.1f MB in %.2f s = %.0f MB/s (uncompressed)  digest %s\n", comp.c_str(),
              double(info->uncompressed_size) / 1e6, double(info->size) / 1e6, dt,
              double(info->uncompressed_size) / 1e6 / dt, info->digest.str().c_str());
  return 0;
}

int Unpack(const std::string& layer, const std::string& dir) {
  kiln::UniqueFd fd(::open(layer.c_str(), O_RDONLY | O_CLOEXEC));
  if (!fd || !kiln::MakeDirs(dir)) {
    std::perror(layer.c_str());
    return 1;
  }
  double t0 = Now();
  auto st = kiln::layer::UnpackLayer(fd.get(), dir, {});
  double dt = Now() - t0;
  if (!st) {
    std::fprintf(stderr, "unpack: %s\n", st.error().message().c_str());
    return 1;
  }
  std::printf("unpack %s: %.1f MB tar, %lld entries in %.2f s = %.0f MB/s (uncompressed)\n",
              kiln::layer::CompressionName(st->compression), double(st->uncompressed_size) / 1e6,
              static_cast<long long>(st->entries), dt, double(st->uncompressed_size) / 1e6 / dt);
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  std::vector<std::string> args(argv + 1, argv + argc);
  if (args.size() >= 2 && args[0] == "gen")
    return Gen(args[1], args.size() > 2 ? std::atoi(args[2].c_str()) : 10000,
               args.size() > 3 ? std::atoi(args[3].c_str()) : 256);
  if (args.size() >= 4 && args[0] == "pack")
    return Pack(args[1], args[2], args[3], args.size() > 4 ? std::atoi(args[4].c_str()) : 0);
  if (args.size() == 3 && args[0] == "unpack")
    return Unpack(args[1], args[2]);
  std::fprintf(stderr,
               "usage: kiln-bench-layer gen DIR [SMALL_FILES] [BIG_MB]\n"
               "       kiln-bench-layer pack DIR OUT gzip|zstd|none [THREADS]\n"
               "       kiln-bench-layer unpack LAYER DIR\n");
  return 2;
}
