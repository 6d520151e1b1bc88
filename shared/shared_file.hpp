// A file mapped by every process of one or more pools: the stream slot table, the rate limiter.
//
// The first process to open it sizes and initialises it while holding an OFD lock, so two pools
// starting together never both do; later processes check that its header matches this build
// and refuse it otherwise, rather than reinterpreting another layout's bytes.
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <string_view>

namespace codex {

// Every shared layout starts with this.
struct SharedFileHeader {
  uint64_t magic;
  uint32_t layout_version;
  uint32_t reserved;
  uint64_t size;
};

class SharedFile {
 public:
  // Byte offset of the lock that serialises creation; layouts may lock bytes above it.
  static constexpr int64_t kInitLockOffset = int64_t{1} << 32;

  // `what` names the file in errors ("slot table"); `initialise` fills a new file's memory
  // (already zeroed) after the header has been written.
  static std::optional<std::string> open(const std::string& path, std::string_view what,
                                         uint64_t magic, uint32_t version, size_t size,
                                         const std::function<void(void*)>& initialise,
                                         SharedFile& file);

  SharedFile() = default;
  SharedFile(const SharedFile&) = delete;
  SharedFile& operator=(const SharedFile&) = delete;
  ~SharedFile();

  int fd() const { return fd_; }
  void* memory() const { return memory_; }
  const std::string& path() const { return path_; }

 private:
  std::string path_;
  int fd_ = -1;
  void* memory_ = nullptr;
  size_t size_ = 0;
};

// Takes (F_WRLCK), probes (F_OFD_GETLK) or drops (F_UNLCK) an OFD lock on one byte.
int lockByte(int fd, short type, int64_t offset, int command);

}  // namespace codex
