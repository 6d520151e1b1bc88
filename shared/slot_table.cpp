// Shared stream slots; see slot_table.hpp for the design and docs/stream-slots.md for the
// invariant an operator can check.
#include "slot_table.hpp"

#include <fcntl.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstring>
#include <random>

#include <fmt/format.h>

#include "json_writer.hpp"

namespace codex {
namespace {

constexpr uint64_t kMagic = 0x53544f4c53584443;  // "CDXSLOTS"
constexpr uint32_t kLayoutVersion = 1;
// Owner liveness locks sit past the end of the mapping, above the creation lock; OFD locks need
// no backing bytes.
constexpr int64_t kOwnerLockBase = SharedFile::kInitLockOffset + 1;
constexpr size_t kRequestIdWords = 5;

int64_t nowMs() {
  using namespace std::chrono;
  return duration_cast<milliseconds>(system_clock::now().time_since_epoch()).count();
}

uint32_t ownerOf(uint64_t tag) {
  return static_cast<uint32_t>(tag >> 32) - 1;
}
uint32_t generationOf(uint64_t tag) {
  return static_cast<uint32_t>(tag);
}

}  // namespace

struct SlotTable::Layout {
  struct Owner {
    std::atomic<uint32_t> generation;
    std::atomic<int32_t> pid;
  };
  struct Slot {
    std::atomic<uint64_t> tag;
    std::atomic<int32_t> child_pgid;
    std::atomic<int64_t> acquired_ms;
    // Informational only: read racily by dumps, so kept in atomic words.
    std::atomic<uint64_t> request_id[kRequestIdWords];
  };

  SharedFileHeader header;
  std::atomic<uint32_t> high_water;  // largest limit any acquirer used: slots above are never set
  Owner owners[kMaxOwners];
  Slot slots[kCapacity];
};

// Only printable ASCII is kept, so the 40-byte cut never splits a UTF-8 character in dumps.
void storeRequestId(std::atomic<uint64_t> (&words)[kRequestIdWords], std::string_view request_id) {
  char text[kRequestIdWords * 8] = {};

  for (size_t i = 0; i < sizeof(text) && i < request_id.size(); ++i) {
    auto byte = static_cast<unsigned char>(request_id[i]);
    text[i] = (byte < 0x20 || byte > 0x7e) ? '?' : static_cast<char>(byte);
  }
  for (size_t w = 0; w < kRequestIdWords; ++w) {
    uint64_t word = 0;
    memcpy(&word, text + w * 8, 8);
    words[w].store(word, std::memory_order_relaxed);
  }
}

static_assert(std::atomic<uint64_t>::is_always_lock_free, "slot tags need lock-free atomics");

std::optional<std::string> SlotTable::open(const std::string& path, SlotTable& table) {
  auto error = SharedFile::open(
      path, "slot table", kMagic, kLayoutVersion, sizeof(Layout), [](void*) {}, table.file_);
  if (!error) {
    table.layout_ = static_cast<Layout*>(table.file_.memory());
  }
  return error;
}

std::optional<std::string> SlotTable::registerOwner() {
  for (uint32_t i = 0; i < kMaxOwners; ++i) {
    if (lockByte(file_.fd(), F_WRLCK, kOwnerLockBase + i, F_OFD_SETLK) != 0) {
      continue;  // held by a live process
    }
    auto& owner = layout_->owners[i];
    uint32_t generation = owner.generation.fetch_add(1) + 1;

    owner.pid.store(getpid());
    owner_ = static_cast<int>(i);
    tag_ = (uint64_t{i + 1} << 32) | generation;
    return std::nullopt;
  }
  return fmt::format("slot table {}: all {} owner entries are held by live processes", path(),
                     kMaxOwners);
}

void SlotTable::raiseHighWater(uint32_t limit) {
  uint32_t seen = layout_->high_water.load();

  while (seen < limit && !layout_->high_water.compare_exchange_weak(seen, limit)) {
  }
}

uint32_t SlotTable::openCount() const {
  uint32_t bound = layout_->high_water.load();
  uint32_t open = 0;

  for (uint32_t i = 0; i < bound; ++i) {
    open += layout_->slots[i].tag.load(std::memory_order_relaxed) != 0;
  }
  return open;
}

AcquireOutcome SlotTable::acquire(uint32_t limit, std::string_view request_id) {
  thread_local std::minstd_rand rng{std::random_device{}()};
  AcquireOutcome outcome;

  if (limit == 0 || tag_ == 0) {
    return outcome;  // a disabled guard or an unregistered process admits nothing here
  }
  limit = std::min(limit, kCapacity);
  raiseHighWater(limit);
  outcome.open_before = openCount();
  // Two passes: the second runs only if reclaiming the dead freed something.
  for (int pass = 0; pass < 2; ++pass) {
    uint32_t start = rng() % limit;
    for (uint32_t k = 0; k < limit; ++k) {
      uint32_t index = (start + k) % limit;
      uint64_t expected = 0;
      auto& slot = layout_->slots[index];

      if (slot.tag.load(std::memory_order_relaxed) != 0 ||
          !slot.tag.compare_exchange_strong(expected, tag_)) {
        continue;
      }
      slot.child_pgid.store(0);
      slot.acquired_ms.store(nowMs());
      storeRequestId(slot.request_id, request_id);
      outcome.open_after = openCount();
      outcome.slot.emplace(this, index, outcome.open_before, outcome.open_after);
      return outcome;
    }
    if (pass == 0 && reclaimDead() == 0) {
      break;
    }
  }
  outcome.open_before = outcome.open_after = openCount();
  return outcome;
}

void SlotTable::releaseSlot(uint32_t index) {
  uint64_t expected = tag_;

  layout_->slots[index].child_pgid.store(0);
  layout_->slots[index].tag.compare_exchange_strong(expected, 0);
}

bool SlotTable::ownerAlive(uint32_t owner, uint32_t generation) const {
  if (owner >= kMaxOwners) {
    return false;
  }
  if (layout_->owners[owner].generation.load() != generation) {
    return false;  // the index has been taken over since this tag was written
  }
  if (static_cast<int>(owner) == owner_) {
    return true;  // our own lock never conflicts with our own probe
  }
  struct flock probe {};
  probe.l_type = F_WRLCK;
  probe.l_whence = SEEK_SET;
  probe.l_start = kOwnerLockBase + owner;
  probe.l_len = 1;
  if (fcntl(file_.fd(), F_OFD_GETLK, &probe) != 0) {
    return true;  // cannot tell: never free a slot on doubt
  }
  return probe.l_type != F_UNLCK;
}

bool SlotTable::tryReclaim(uint32_t index, uint64_t tag) {
  auto& slot = layout_->slots[index];
  int32_t pgid = slot.child_pgid.load();

  // Cleared while the dead tag still guards the slot, so no later holder inherits the group.
  slot.child_pgid.compare_exchange_strong(pgid, 0);
  if (!slot.tag.compare_exchange_strong(tag, 0)) {
    return false;
  }
  if (pgid > 0) {
    kill(-pgid, SIGKILL);  // the dead owner can no longer stop its child
  }
  return true;
}

uint32_t SlotTable::reclaimDead() {
  uint32_t bound = layout_->high_water.load();
  uint32_t freed = 0;

  for (uint32_t i = 0; i < bound; ++i) {
    uint64_t tag = layout_->slots[i].tag.load();
    if (tag != 0 && !ownerAlive(ownerOf(tag), generationOf(tag)) && tryReclaim(i, tag)) {
      ++freed;
    }
  }
  return freed;
}

uint32_t SlotTable::reclaimProcess(pid_t pid) {
  uint32_t bound = layout_->high_water.load();
  uint32_t freed = 0;

  for (uint32_t i = 0; i < bound; ++i) {
    uint64_t tag = layout_->slots[i].tag.load();
    uint32_t owner = ownerOf(tag);
    // The pid only narrows the search; the lock decides, so a reused pid frees nothing.
    bool theirs = tag != 0 && owner < kMaxOwners && layout_->owners[owner].pid.load() == pid &&
                  !ownerAlive(owner, generationOf(tag));

    if (theirs && tryReclaim(i, tag)) {
      ++freed;
    }
  }
  return freed;
}

std::string SlotTable::dumpJson() const {
  JsonWriter w;
  int64_t now = nowMs();
  uint32_t bound = layout_->high_water.load();

  w.beginObject().field("path", path()).field("layout_version", int64_t{kLayoutVersion});
  w.field("capacity", int64_t{kCapacity}).field("high_water", int64_t{bound});
  w.field("open", int64_t{openCount()});
  w.key("slots").beginArray();
  for (uint32_t i = 0; i < bound; ++i) {
    const auto& slot = layout_->slots[i];
    uint64_t tag = slot.tag.load();
    if (tag == 0) {
      continue;
    }
    char id[kRequestIdWords * 8 + 1] = {};
    for (size_t k = 0; k < kRequestIdWords; ++k) {
      uint64_t word = slot.request_id[k].load(std::memory_order_relaxed);
      memcpy(id + k * 8, &word, 8);
    }
    uint32_t owner = ownerOf(tag);
    w.beginObject().field("slot", int64_t{i}).field("owner", int64_t{owner});
    w.field("generation", int64_t{generationOf(tag)});
    w.field("worker_pid", int64_t{owner < kMaxOwners ? layout_->owners[owner].pid.load() : 0});
    w.field("owner_alive", ownerAlive(owner, generationOf(tag)));
    w.field("child_pgid", int64_t{slot.child_pgid.load()});
    w.field("age_ms", now - slot.acquired_ms.load()).field("request_id", std::string_view(id));
    w.endObject();
  }
  w.endArray().endObject();
  return w.take();
}

StreamSlot::StreamSlot(StreamSlot&& other) noexcept
    : table_(other.table_), index_(other.index_), before_(other.before_), after_(other.after_) {
  other.table_ = nullptr;
}

StreamSlot& StreamSlot::operator=(StreamSlot&& other) noexcept {
  if (this != &other) {
    release();
    table_ = other.table_;
    index_ = other.index_;
    before_ = other.before_;
    after_ = other.after_;
    other.table_ = nullptr;
  }
  return *this;
}

void StreamSlot::setChildGroup(pid_t pgid) {
  if (table_ != nullptr) {
    table_->layout_->slots[index_].child_pgid.store(pgid);
  }
}

std::pair<uint32_t, uint32_t> StreamSlot::release() {
  if (table_ == nullptr) {
    return {0, 0};
  }
  SlotTable* table = table_;
  uint32_t before = table->openCount();

  table_ = nullptr;
  table->releaseSlot(index_);
  return {before, table->openCount()};
}

}  // namespace codex
