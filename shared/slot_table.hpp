// The pool-wide cap on open streams: a table of slots in a shared file mapping.
//
// A slot is free (tag 0) or holds its owner's tag, (owner index + 1) << 32 | generation, set and
// cleared by one compare-and-swap, so admission is exact across threads and processes without a
// lock. An owner is one worker process; it proves it is alive by holding an OFD byte-range lock
// on its own byte of the file for its whole life. The kernel drops that lock the instant the
// process dies, even on SIGKILL, so a slot whose owner byte is unlocked (or whose generation is
// stale) belongs to the dead and may be reclaimed. docs/stream-slots.md explains the invariant.
#pragma once

#include <sys/types.h>

#include <atomic>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <utility>

#include "shared_file.hpp"

namespace codex {

class SlotTable;

// One admitted stream. Move-only; releasing twice, or after a move, does nothing.
class StreamSlot {
 public:
  StreamSlot() = default;
  StreamSlot(SlotTable* table, uint32_t index, uint32_t before, uint32_t after)
      : table_(table), index_(index), before_(before), after_(after) {}
  StreamSlot(StreamSlot&& other) noexcept;
  StreamSlot& operator=(StreamSlot&& other) noexcept;
  StreamSlot(const StreamSlot&) = delete;
  StreamSlot& operator=(const StreamSlot&) = delete;
  ~StreamSlot() { release(); }

  bool held() const { return table_ != nullptr; }
  uint32_t index() const { return index_; }
  uint32_t before() const { return before_; }
  uint32_t after() const { return after_; }

  // Records the child's process group so a supervisor can kill it if this worker dies.
  void setChildGroup(pid_t pgid);
  // Returns the open-stream counts just before and after the release ({0, 0} when not held).
  std::pair<uint32_t, uint32_t> release();

 private:
  SlotTable* table_ = nullptr;
  uint32_t index_ = 0;
  uint32_t before_ = 0;
  uint32_t after_ = 0;
};

struct AcquireOutcome {
  std::optional<StreamSlot> slot;  // empty: the cap is reached
  uint32_t open_before = 0;        // streams open across the pool before this attempt
  uint32_t open_after = 0;
};

class SlotTable {
 public:
  static constexpr uint32_t kCapacity = 16384;
  static constexpr uint32_t kMaxOwners = 1024;

  // Creates the file or attaches to an existing one. Fails with a message (never silently
  // reinitialises) when the file holds another layout.
  static std::optional<std::string> open(const std::string& path, SlotTable& table);

  SlotTable() = default;
  SlotTable(const SlotTable&) = delete;
  SlotTable& operator=(const SlotTable&) = delete;

  // Takes an owner index for this process: required before acquire(). Returns an error text.
  std::optional<std::string> registerOwner();
  int ownerIndex() const { return owner_; }

  AcquireOutcome acquire(uint32_t limit, std::string_view request_id);
  uint32_t openCount() const;

  // Frees every slot whose owner is dead, killing the child groups recorded in them.
  uint32_t reclaimDead();
  // Frees the slots of a worker the supervisor has just reaped.
  uint32_t reclaimProcess(pid_t pid);

  std::string dumpJson() const;
  const std::string& path() const { return file_.path(); }

 private:
  friend class StreamSlot;
  struct Layout;

  bool ownerAlive(uint32_t owner, uint32_t generation) const;
  bool tryReclaim(uint32_t index, uint64_t tag);
  void releaseSlot(uint32_t index);
  void raiseHighWater(uint32_t limit);

  SharedFile file_;
  Layout* layout_ = nullptr;
  int owner_ = -1;
  uint64_t tag_ = 0;
};

}  // namespace codex
