// Shared file mapping; see shared_file.hpp.
#include "shared_file.hpp"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include <fmt/format.h>

namespace codex {
namespace {

std::optional<std::string> checkHeader(const SharedFileHeader& header, const std::string& path,
                                       std::string_view what, uint64_t magic, uint32_t version,
                                       size_t size) {
  if (header.magic == magic && header.layout_version == version && header.size == size) {
    return std::nullopt;
  }
  return fmt::format(
      "{} {} has layout version {} (this build: {}); stop every pool using it "
      "and remove the file",
      what, path, header.layout_version, version);
}

}  // namespace

int lockByte(int fd, short type, int64_t offset, int command) {
  struct flock lock {};

  lock.l_type = type;
  lock.l_whence = SEEK_SET;
  lock.l_start = offset;
  lock.l_len = 1;
  return fcntl(fd, command, &lock);
}

std::optional<std::string> SharedFile::open(const std::string& path, std::string_view what,
                                            uint64_t magic, uint32_t version, size_t size,
                                            const std::function<void(void*)>& initialise,
                                            SharedFile& file) {
  file.path_ = path;
  file.fd_ = ::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0660);
  if (file.fd_ < 0) {
    return fmt::format("cannot open {} {}: {}", what, path, strerror(errno));
  }
  if (lockByte(file.fd_, F_WRLCK, kInitLockOffset, F_OFD_SETLKW) != 0) {
    return fmt::format("cannot lock {} {}: {}", what, path, strerror(errno));
  }
  struct stat st {};
  fstat(file.fd_, &st);
  bool fresh = st.st_size == 0;
  std::optional<std::string> error;

  if (fresh && ftruncate(file.fd_, static_cast<off_t>(size)) != 0) {
    error = fmt::format("cannot size {} {}: {}", what, path, strerror(errno));
  } else if (!fresh && static_cast<size_t>(st.st_size) != size) {
    error = fmt::format(
        "{} {} is {} bytes, this build expects {}: another layout or version "
        "uses it; stop every pool using it and remove the file",
        what, path, st.st_size, size);
  }
  if (!error) {
    void* map = mmap(nullptr, size, PROT_READ | PROT_WRITE, MAP_SHARED, file.fd_, 0);
    if (map == MAP_FAILED) {
      error = fmt::format("cannot map {} {}: {}", what, path, strerror(errno));
    } else {
      file.memory_ = map;
      file.size_ = size;
    }
  }
  if (!error && fresh) {
    auto* header = static_cast<SharedFileHeader*>(file.memory_);
    header->layout_version = version;
    header->size = size;
    initialise(file.memory_);
    header->magic = magic;  // last: a torn initialisation never looks valid
  } else if (!error) {
    error = checkHeader(*static_cast<SharedFileHeader*>(file.memory_), path, what, magic, version,
                        size);
  }
  lockByte(file.fd_, F_UNLCK, kInitLockOffset, F_OFD_SETLK);
  return error;
}

SharedFile::~SharedFile() {
  if (memory_ != nullptr) {
    munmap(memory_, size_);
  }
  if (fd_ >= 0) {
    close(fd_);
  }
}

}  // namespace codex
