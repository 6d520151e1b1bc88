// Tests for the shared stream slot table: exact admission in one process, refusal of files with
// another layout, reclaiming the slots of owners killed with SIGKILL, and mutual exclusion among
// many processes that are killed at random while they hold slots.
#include "slot_table.hpp"

#include <fcntl.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <new>
#include <random>
#include <string>
#include <vector>

#include <doctest/doctest.h>
#include <simdjson.h>

namespace codex {
namespace {

using Clock = std::chrono::steady_clock;
using std::chrono::milliseconds;

// The header's first fields, as slot_table.cpp lays them out: magic (8 bytes), then
// layout_version (4 bytes).
constexpr off_t kMagicOffset = 0;
constexpr off_t kVersionOffset = 8;

// A fresh directory under /tmp, removed with everything in it when the test ends.
class TempDir {
 public:
  TempDir() {
    char name[] = "/tmp/slot-table-test-XXXXXX";

    REQUIRE(mkdtemp(name) != nullptr);
    path_ = name;
  }
  ~TempDir() {
    std::error_code ec;
    std::filesystem::remove_all(path_, ec);
  }

  std::string file(const std::string& name) const { return path_ + "/" + name; }

 private:
  std::string path_;
};

void sleepFor(std::chrono::microseconds step) {
  timespec ts = {0, static_cast<long>(step.count()) * 1000};

  nanosleep(&ts, nullptr);
}

// The state letter of /proc/<pid>/stat, or 0 when the process is gone.
char processState(pid_t pid) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/stat");
  std::string line;

  if (!std::getline(in, line)) {
    return 0;
  }
  size_t paren = line.rfind(')');  // the command name may itself hold spaces or parens
  if (paren == std::string::npos || paren + 2 >= line.size()) {
    return 0;
  }
  return line[paren + 2];
}

bool running(pid_t pid) {
  char state = processState(pid);

  return state != 0 && state != 'Z' && state != 'X';
}

// True if `pid` is still running after `grace`. A SIGKILLed process drops its OFD locks in
// exit_files(), slightly before it becomes a zombie, so a slot can be reclaimed from a process
// that /proc still shows as running for a moment.
bool runningAfter(pid_t pid, milliseconds grace) {
  auto deadline = Clock::now() + grace;

  while (running(pid)) {
    if (Clock::now() >= deadline) {
      return true;
    }
    sleepFor(milliseconds(1));
  }
  return false;
}

// Reaps `pid`, polling until `limit`; false if it has not exited by then.
bool reapWithin(pid_t pid, milliseconds limit, int& status) {
  auto deadline = Clock::now() + limit;

  for (;;) {
    pid_t done = waitpid(pid, &status, WNOHANG);
    if (done == pid) {
      return true;
    }
    if (done < 0 || Clock::now() >= deadline) {
      return false;
    }
    sleepFor(milliseconds(1));
  }
}

bool killedBySigkill(int status) {
  return WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL;
}

// Kills and reaps whatever it still holds when a test ends, passed or failed.
class ProcessGuard {
 public:
  ~ProcessGuard() {
    for (pid_t pid : pids_) {
      kill(pid, SIGKILL);
      waitpid(pid, nullptr, 0);
    }
  }

  void watch(pid_t pid) { pids_.push_back(pid); }
  void forget(pid_t pid) { pids_.erase(std::remove(pids_.begin(), pids_.end(), pid), pids_.end()); }

 private:
  std::vector<pid_t> pids_;
};

// Makes this process the reaper of its orphaned descendants for one test, so a grandchild whose
// parent was killed can be waited for here.
class SubreaperScope {
 public:
  SubreaperScope() {
    prctl(PR_GET_CHILD_SUBREAPER, &previous_);
    REQUIRE(prctl(PR_SET_CHILD_SUBREAPER, 1) == 0);
  }
  ~SubreaperScope() { prctl(PR_SET_CHILD_SUBREAPER, previous_); }

 private:
  int previous_ = 0;
};

void openTable(const std::string& path, SlotTable& table) {
  auto error = SlotTable::open(path, table);

  REQUIRE_MESSAGE(!error, *error);
}

void openOwner(const std::string& path, SlotTable& table) {
  openTable(path, table);

  auto error = table.registerOwner();
  REQUIRE_MESSAGE(!error, *error);
}

StreamSlot take(SlotTable& table, uint32_t limit) {
  auto outcome = table.acquire(limit, "test");

  REQUIRE(outcome.slot.has_value());
  return std::move(*outcome.slot);
}

std::pair<uint32_t, uint32_t> counts(uint32_t before, uint32_t after) {
  return {before, after};
}

}  // namespace

TEST_SUITE_BEGIN("slot table");

TEST_CASE("a limit of four admits exactly four streams, counting them before and after") {
  TempDir dir;
  SlotTable table;
  openOwner(dir.file("streams.shm"), table);
  std::vector<StreamSlot> held;

  for (uint32_t i = 0; i < 4; ++i) {
    auto outcome = table.acquire(4, "req");
    REQUIRE(outcome.slot.has_value());
    CHECK(outcome.open_before == i);
    CHECK(outcome.open_after == i + 1);
    CHECK(outcome.slot->before() == i);
    CHECK(outcome.slot->after() == i + 1);
    held.push_back(std::move(*outcome.slot));
  }

  auto fifth = table.acquire(4, "req");
  CHECK_FALSE(fifth.slot.has_value());
  CHECK(fifth.open_before == 4);
  CHECK(fifth.open_after == 4);
  CHECK(table.openCount() == 4);
}

TEST_CASE("releasing one of four streams admits exactly one more") {
  TempDir dir;
  SlotTable table;
  openOwner(dir.file("streams.shm"), table);
  std::vector<StreamSlot> held;
  for (int i = 0; i < 4; ++i) {
    held.push_back(take(table, 4));
  }

  CHECK(held[1].release() == counts(4, 3));
  CHECK(table.openCount() == 3);

  auto again = table.acquire(4, "req");
  REQUIRE(again.slot.has_value());
  CHECK(again.open_before == 3);
  CHECK(again.open_after == 4);
  CHECK(again.slot->index() == held[1].index());  // the only free slot under the limit

  CHECK_FALSE(table.acquire(4, "req").slot.has_value());
  CHECK(table.openCount() == 4);
}

TEST_CASE("releasing a stream twice, or destroying it after release, frees nothing more") {
  TempDir dir;
  SlotTable table;
  openOwner(dir.file("streams.shm"), table);
  StreamSlot other = take(table, 2);
  StreamSlot retaken;

  {
    StreamSlot first = take(table, 2);
    CHECK(first.release() == counts(2, 1));
    CHECK_FALSE(first.held());

    // Every slot of a process carries the same tag, so a second release of `first` would free
    // the slot just taken again at the same index.
    retaken = take(table, 2);
    CHECK(retaken.index() == first.index());
    CHECK(first.release() == counts(0, 0));
    CHECK(table.openCount() == 2);
  }  // `first` is destroyed after its release

  CHECK(retaken.held());
  CHECK(table.openCount() == 2);
  CHECK_FALSE(table.acquire(2, "req").slot.has_value());
}

TEST_CASE("moving a stream transfers ownership and the moved-from object frees nothing") {
  TempDir dir;
  SlotTable table;
  openOwner(dir.file("streams.shm"), table);
  StreamSlot a = take(table, 2);
  StreamSlot b = take(table, 2);
  uint32_t b_index = b.index();

  SUBCASE("move-assign releases the target's old slot and takes the source's") {
    a = std::move(b);
    CHECK(table.openCount() == 1);
    CHECK(a.held());
    CHECK(a.index() == b_index);
    CHECK_FALSE(b.held());
    CHECK(b.release() == counts(0, 0));
    CHECK(table.openCount() == 1);
  }

  SUBCASE("move-construct leaves the source holding nothing") {
    {
      StreamSlot c(std::move(b));
      CHECK(c.held());
      CHECK(c.index() == b_index);
      CHECK_FALSE(b.held());
      CHECK(b.release() == counts(0, 0));
      CHECK(table.openCount() == 2);
    }
    CHECK(table.openCount() == 1);

    // Retake the index `b` pointed at; destroying the moved-from `b` must not free it.
    StreamSlot d = take(table, 2);
    CHECK(d.index() == b_index);
    { StreamSlot moved_from = std::move(b); }
    CHECK(table.openCount() == 2);
  }
}

TEST_CASE("a process that has not registered as an owner is admitted nowhere") {
  TempDir dir;
  SlotTable table;
  openTable(dir.file("streams.shm"), table);

  auto outcome = table.acquire(4, "req");
  CHECK_FALSE(outcome.slot.has_value());
  CHECK(table.ownerIndex() == -1);
  CHECK(table.openCount() == 0);
}

TEST_CASE("a limit of zero admits nothing") {
  TempDir dir;
  SlotTable table;
  openOwner(dir.file("streams.shm"), table);

  CHECK_FALSE(table.acquire(0, "req").slot.has_value());
  CHECK(table.openCount() == 0);

  StreamSlot held = take(table, 4);
  CHECK_FALSE(table.acquire(0, "req").slot.has_value());
  CHECK(table.openCount() == 1);
}

TEST_CASE("a second open of the same file attaches to the same slots") {
  TempDir dir;
  std::string path = dir.file("streams.shm");
  SlotTable first;
  openOwner(path, first);
  StreamSlot a = take(first, 4);
  StreamSlot b = take(first, 4);

  SlotTable second;
  openOwner(path, second);
  CHECK(second.openCount() == 2);
  CHECK(second.ownerIndex() != first.ownerIndex());

  StreamSlot c = take(second, 4);
  CHECK(first.openCount() == 3);
}

TEST_CASE("a file of the wrong size is refused with its path named, and left untouched") {
  TempDir dir;
  std::string path = dir.file("streams.shm");
  std::string contents(4096, 'x');
  {
    std::ofstream out(path, std::ios::binary);
    out << contents;
  }

  SlotTable table;
  auto error = SlotTable::open(path, table);
  REQUIRE(error.has_value());
  CHECK(error->find(path) != std::string::npos);

  std::ifstream in(path, std::ios::binary);
  std::string after((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  CHECK(after == contents);
}

TEST_CASE("a file with a corrupted magic or layout version is refused with its path named") {
  TempDir dir;
  std::string path = dir.file("streams.shm");
  {
    SlotTable creator;
    openTable(path, creator);
  }
  off_t offset = 0;
  SUBCASE("magic") {
    offset = kMagicOffset;
  }
  SUBCASE("layout version") {
    offset = kVersionOffset;
  }

  int fd = ::open(path.c_str(), O_RDWR | O_CLOEXEC);
  REQUIRE(fd >= 0);
  unsigned char byte = 0;
  REQUIRE(pread(fd, &byte, 1, offset) == 1);
  byte ^= 0x5a;
  REQUIRE(pwrite(fd, &byte, 1, offset) == 1);

  SlotTable table;
  auto error = SlotTable::open(path, table);
  REQUIRE(error.has_value());
  CHECK(error->find(path) != std::string::npos);

  unsigned char now = 0;  // still corrupted: never silently reinitialised
  REQUIRE(pread(fd, &now, 1, offset) == 1);
  CHECK(now == byte);
  close(fd);
}

namespace {

// A worker that took slots and was then killed, with the child it had started.
struct DoomedOwner {
  pid_t worker = -1;
  pid_t child = -1;
};

[[noreturn]] void runDoomedWorker(const std::string& path, uint32_t limit, int slots,
                                  int ready_fd) {
  // The child is forked before the table is opened. A fork that does not exec would share the
  // table's open file description and keep this owner's liveness lock after the worker dies;
  // real children exec, and the table's descriptor is O_CLOEXEC.
  pid_t child = fork();
  if (child == 0) {
    close(ready_fd);
    setpgid(0, 0);
    for (;;) {
      ::pause();
    }
  }
  setpgid(child, child);  // also here, so the group exists before anyone can signal it

  SlotTable table;
  std::vector<StreamSlot> held;
  bool ok = !SlotTable::open(path, table) && !table.registerOwner();
  for (int i = 0; ok && i < slots; ++i) {
    auto outcome = table.acquire(limit, "doomed-request");
    ok = outcome.slot.has_value();
    if (ok) {
      held.push_back(std::move(*outcome.slot));
    }
  }
  if (ok) {
    held.front().setChildGroup(child);  // stored before the pipe write announces readiness
  }
  if (!ok || write(ready_fd, &child, sizeof child) != sizeof child) {
    kill(child, SIGKILL);
    _exit(2);
  }
  for (;;) {
    ::pause();
  }
}

// Starts a worker holding `slots` of `limit` slots, the first of them recording the process
// group of a child that waits forever, and returns once all of that is in the table.
DoomedOwner startDoomedOwner(const std::string& path, uint32_t limit, int slots,
                             ProcessGuard& guard) {
  int ready[2];
  REQUIRE(pipe2(ready, O_CLOEXEC) == 0);
  DoomedOwner doomed;

  doomed.worker = fork();
  REQUIRE(doomed.worker >= 0);
  if (doomed.worker == 0) {
    close(ready[0]);
    runDoomedWorker(path, limit, slots, ready[1]);
  }
  guard.watch(doomed.worker);
  close(ready[1]);

  ssize_t got = read(ready[0], &doomed.child, sizeof doomed.child);
  close(ready[0]);
  REQUIRE(got == static_cast<ssize_t>(sizeof doomed.child));
  guard.watch(doomed.child);
  return doomed;
}

void killWorker(DoomedOwner& doomed, ProcessGuard& guard) {
  int status = 0;

  REQUIRE(kill(doomed.worker, SIGKILL) == 0);
  REQUIRE(waitpid(doomed.worker, &status, 0) == doomed.worker);
  guard.forget(doomed.worker);
  CHECK(killedBySigkill(status));
}

// The child was orphaned when its worker died; SubreaperScope made this process its parent.
void checkChildKilled(const DoomedOwner& doomed, ProcessGuard& guard) {
  int status = 0;

  REQUIRE_MESSAGE(reapWithin(doomed.child, milliseconds(5000), status),
                  "the dead worker's child group was not killed");
  guard.forget(doomed.child);
  CHECK(killedBySigkill(status));
}

simdjson::dom::element parseDump(const SlotTable& table, simdjson::dom::parser& parser) {
  std::string json = table.dumpJson();
  simdjson::dom::element doc;

  REQUIRE_MESSAGE(parser.parse(json).get(doc) == simdjson::SUCCESS, json);
  return doc;
}

// The owner index recorded in the first held slot, as the dump shows it.
int64_t firstSlotOwner(const SlotTable& table) {
  simdjson::dom::parser parser;
  simdjson::dom::array slots;

  REQUIRE(parseDump(table, parser)["slots"].get_array().get(slots) == simdjson::SUCCESS);
  REQUIRE(slots.size() > 0);
  return int64_t(slots.at(0)["owner"]);
}

// Takes all four slots, three of them held by a dead owner: the second acquire finds the table
// full and has to reclaim them.
void takeAllFourOverDeadOwner(SlotTable& table) {
  std::vector<AcquireOutcome> outcomes;

  for (int i = 0; i < 4; ++i) {
    outcomes.push_back(table.acquire(4, "survivor"));
    REQUIRE(outcomes.back().slot.has_value());
  }

  CHECK(outcomes[0].open_before == 3);  // the one slot the dead owner left free
  CHECK(outcomes[1].open_before == 4);  // full: this acquire reclaimed the dead owner's three
  CHECK(outcomes[1].open_after == 2);
  CHECK(table.openCount() == 4);
  CHECK_FALSE(table.acquire(4, "extra").slot.has_value());
}

}  // namespace

TEST_CASE(
    "an owner killed by SIGKILL loses its slots to the next acquire that finds the "
    "table full, and its child group is killed") {
  TempDir dir;
  std::string path = dir.file("streams.shm");
  SubreaperScope subreaper;
  ProcessGuard guard;
  SlotTable table;
  openOwner(path, table);  // registered first, so the doomed worker gets another owner index
  DoomedOwner doomed = startDoomedOwner(path, 4, 3, guard);
  CHECK(table.openCount() == 3);

  killWorker(doomed, guard);
  takeAllFourOverDeadOwner(table);
  checkChildKilled(doomed, guard);
}

TEST_CASE("an owner that took over a dead owner's index still reclaims that owner's slots") {
  TempDir dir;
  std::string path = dir.file("streams.shm");
  SubreaperScope subreaper;
  ProcessGuard guard;
  DoomedOwner doomed = startDoomedOwner(path, 4, 3, guard);
  killWorker(doomed, guard);

  // The dead owner's lock byte is free again, so registering takes its index with a new
  // generation: the respawned worker of a pool whose supervisor did not sweep.
  SlotTable table;
  openOwner(path, table);
  REQUIRE(table.ownerIndex() == firstSlotOwner(table));
  takeAllFourOverDeadOwner(table);
  checkChildKilled(doomed, guard);
}

TEST_CASE("a supervisor frees a reaped worker's slots with reclaimProcess and kills its child") {
  TempDir dir;
  std::string path = dir.file("streams.shm");
  SubreaperScope subreaper;
  ProcessGuard guard;
  SlotTable supervisor;  // opened before the fork and never registered, as in worker/supervisor
  openTable(path, supervisor);
  DoomedOwner doomed = startDoomedOwner(path, 4, 3, guard);
  CHECK(supervisor.openCount() == 3);

  killWorker(doomed, guard);
  CHECK(supervisor.reclaimProcess(doomed.worker) == 3);
  CHECK(supervisor.openCount() == 0);
  checkChildKilled(doomed, guard);
}

TEST_CASE("reclaimProcess leaves a live owner's slots alone even when its pid matches") {
  TempDir dir;
  std::string path = dir.file("streams.shm");
  SlotTable worker;
  openOwner(path, worker);
  StreamSlot held = take(worker, 4);

  // The pid of a reaped worker can also be the pid of a live owner: pools in other PID
  // namespaces share the file, and pids are reused. This live owner stands in for such a worker;
  // its liveness lock, not its pid, must decide.
  SlotTable supervisor;
  openTable(path, supervisor);
  CHECK(supervisor.reclaimProcess(getpid()) == 0);
  CHECK(supervisor.openCount() == 1);
  CHECK(held.release() == counts(1, 0));
}

namespace {

constexpr uint32_t kStressLimit = 5;
constexpr int kStressWorkers = 12;
constexpr int kStressIterations = 3000;
constexpr int kStressKills = 40;
constexpr uint64_t kAttemptsBetweenKills = 1500;

// Shared by the test and every worker through one anonymous mapping made before the forks.
struct StressBoard {
  std::atomic<int32_t> occupant[SlotTable::kCapacity];
  std::atomic<uint64_t> attempts;
  std::atomic<uint64_t> admitted;
  std::atomic<uint64_t> takeovers;  // a slot found still marked by a dead holder
  std::atomic<uint32_t> violations;
  std::atomic<int32_t> violator;
};

// Marks the slot as ours and checks that no live process had it; a dead holder is fine, since
// its slot was reclaimed. Unmarks it before the release, so a live holder is never found.
void occupy(StressBoard& board, uint32_t index, int32_t me) {
  int32_t previous = board.occupant[index].exchange(me);

  if (previous != 0 && runningAfter(previous, milliseconds(1000))) {
    board.violations.fetch_add(1);
    board.violator.store(previous);
  } else if (previous != 0) {
    board.takeovers.fetch_add(1);
  }
  sched_yield();  // hold it across a reschedule, as a stream holds its slot for a while
  int32_t expected = me;
  board.occupant[index].compare_exchange_strong(expected, 0);
}

[[noreturn]] void runStressWorker(const std::string& path, StressBoard& board) {
  SlotTable table;

  if (SlotTable::open(path, table) || table.registerOwner()) {
    _exit(2);
  }
  int32_t me = getpid();
  // A violation ends every worker's loop: each one found has already cost a second of polling.
  for (int i = 0; i < kStressIterations && board.violations.load() == 0; ++i) {
    auto outcome = table.acquire(kStressLimit, "stress");
    board.attempts.fetch_add(1, std::memory_order_relaxed);
    if (!outcome.slot) {
      sched_yield();  // the 429 path: let a holder run
      continue;
    }
    board.admitted.fetch_add(1, std::memory_order_relaxed);
    occupy(board, outcome.slot->index(), me);
    outcome.slot->release();
  }
  _exit(0);
}

struct StressTally {
  int kills = 0;
  int finished = 0;
  int failed = 0;
};

// The worker processes of the stress test: a fixed number alive at any time, replaced when they
// are killed or run out of iterations, until the kills are done.
class StressPool {
 public:
  StressPool(std::string path, StressBoard& board) : path_(std::move(path)), board_(board) {}

  void start(int count) {
    for (int i = 0; i < count; ++i) {
      workers_.push_back(spawn());
    }
  }

  // Half the victims are chosen among the workers the board shows holding a slot, so that many
  // kills land inside the critical section; the rest anywhere in their loop.
  void killOne(std::mt19937& rng) {
    size_t victim = pickVictim(rng);
    int status = 0;

    kill(workers_[victim], SIGKILL);
    REQUIRE(waitpid(workers_[victim], &status, 0) == workers_[victim]);
    settle(victim, status, true);
  }

  void replaceFinished() {
    for (size_t i = 0; i < workers_.size(); ++i) {
      int status = 0;
      if (waitpid(workers_[i], &status, WNOHANG) == workers_[i]) {
        settle(i, status, true);
      }
    }
  }

  // Lets every worker run out of iterations; true if all did within `limit`.
  bool drain(milliseconds limit) {
    auto deadline = Clock::now() + limit;

    for (size_t i = 0; i < workers_.size(); ++i) {
      int status = 0;
      auto left = std::chrono::duration_cast<milliseconds>(deadline - Clock::now());
      if (!reapWithin(workers_[i], std::max(left, milliseconds(0)), status)) {
        return false;
      }
      settle(i, status, false);
    }
    return true;
  }

  const StressTally& tally() const { return tally_; }

 private:
  pid_t spawn() {
    pid_t pid = fork();

    REQUIRE(pid >= 0);
    if (pid == 0) {
      runStressWorker(path_, board_);
    }
    guard_.watch(pid);
    return pid;
  }

  size_t pickVictim(std::mt19937& rng) const {
    if (rng() % 2 == 0) {
      for (uint32_t i = 0; i < kStressLimit; ++i) {
        auto found = std::find(workers_.begin(), workers_.end(), board_.occupant[i].load());
        if (found != workers_.end()) {
          return static_cast<size_t>(found - workers_.begin());
        }
      }
    }
    return rng() % workers_.size();
  }

  void settle(size_t i, int status, bool replace) {
    guard_.forget(workers_[i]);
    if (killedBySigkill(status)) {
      ++tally_.kills;
    } else if (WIFEXITED(status) && WEXITSTATUS(status) == 0) {
      ++tally_.finished;
    } else {
      ++tally_.failed;
    }
    workers_[i] = replace ? spawn() : -1;
  }

  std::string path_;
  StressBoard& board_;
  ProcessGuard guard_;
  std::vector<pid_t> workers_;
  StressTally tally_;
};

// Waits until the workers have made `attempts` more acquire attempts, sampling the open count
// and replacing workers that ran out of iterations.
void awaitProgress(const StressBoard& board, uint64_t attempts, StressPool& pool,
                   const SlotTable& observer, uint32_t& max_open, Clock::time_point deadline) {
  uint64_t target = board.attempts.load() + attempts;

  while (board.attempts.load() < target && board.violations.load() == 0 &&
         Clock::now() < deadline) {
    max_open = std::max(max_open, observer.openCount());
    pool.replaceFinished();
    sleepFor(std::chrono::microseconds(200));
  }
}

}  // namespace

TEST_CASE(
    "twelve processes killed at random never share a slot, never exceed the limit, and "
    "leak nothing") {
  TempDir dir;
  std::string path = dir.file("streams.shm");
  SlotTable observer;  // reclaimDead() needs no owner index, so this handle stays unregistered
  openTable(path, observer);
  void* map =
      mmap(nullptr, sizeof(StressBoard), PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
  REQUIRE(map != MAP_FAILED);
  auto& board = *new (map) StressBoard{};
  uint32_t seed = std::random_device{}();
  INFO("kill schedule seed " << seed);
  std::mt19937 rng(seed);

  StressPool pool(path, board);
  pool.start(kStressWorkers);
  uint32_t max_open = 0;
  auto deadline = Clock::now() + std::chrono::seconds(10);
  while (pool.tally().kills < kStressKills && board.violations.load() == 0 &&
         Clock::now() < deadline) {
    awaitProgress(board, kAttemptsBetweenKills, pool, observer, max_open, deadline);
    pool.killOne(rng);
  }
  CHECK_MESSAGE(pool.drain(milliseconds(8000)), "a worker did not finish its iterations");
  uint32_t freed_at_end = observer.reclaimDead();

  const StressTally& tally = pool.tally();
  MESSAGE("stress: " << tally.kills << " kills, " << tally.finished << " workers finished, "
                     << board.attempts.load() << " attempts, " << board.admitted.load()
                     << " admitted, " << board.takeovers.load()
                     << " slots taken over from killed holders, " << freed_at_end
                     << " freed by the final reclaimDead");
  CHECK(tally.kills >= 20);
  CHECK(tally.failed == 0);
  CHECK_MESSAGE(board.violations.load() == 0,
                "a live holder was found by pid " << board.violator.load());
  CHECK(max_open <= kStressLimit);
  CHECK(observer.openCount() == 0);
  munmap(map, sizeof(StressBoard));
}

TEST_CASE("dumpJson lists a held slot with its owner, worker pid and request id") {
  TempDir dir;
  SlotTable table;
  openOwner(dir.file("streams.shm"), table);
  std::string request_id = "req-\"quoted\"-0123456789abcdefghijklmnopqrstuvwxyz";  // 50 chars
  auto outcome = table.acquire(4, request_id);
  REQUIRE(outcome.slot.has_value());

  simdjson::dom::parser parser;
  simdjson::dom::element doc = parseDump(table, parser);
  simdjson::dom::array slots;
  REQUIRE(doc["slots"].get_array().get(slots) == simdjson::SUCCESS);
  REQUIRE(slots.size() == 1);
  simdjson::dom::element slot = slots.at(0);

  CHECK(int64_t(doc["open"]) == 1);
  CHECK(int64_t(slot["slot"]) == outcome.slot->index());
  CHECK(int64_t(slot["owner"]) == table.ownerIndex());
  CHECK(int64_t(slot["worker_pid"]) == getpid());
  CHECK(std::string(std::string_view(slot["request_id"])) == request_id.substr(0, 40));
  CHECK(bool(slot["owner_alive"]));
}

TEST_CASE("dumpJson shows a killed owner's slots as not alive, with its child group") {
  TempDir dir;
  std::string path = dir.file("streams.shm");
  SubreaperScope subreaper;
  ProcessGuard guard;
  DoomedOwner doomed = startDoomedOwner(path, 4, 3, guard);
  killWorker(doomed, guard);

  SlotTable observer;
  openTable(path, observer);
  simdjson::dom::parser parser;
  simdjson::dom::array slots;
  REQUIRE(parseDump(observer, parser)["slots"].get_array().get(slots) == simdjson::SUCCESS);
  REQUIRE(slots.size() == 3);
  int groups = 0;
  for (simdjson::dom::element slot : slots) {
    CHECK(int64_t(slot["worker_pid"]) == doomed.worker);
    CHECK_FALSE(bool(slot["owner_alive"]));
    CHECK(std::string(std::string_view(slot["request_id"])) == "doomed-request");
    groups += int64_t(slot["child_pgid"]) == doomed.child;
  }
  CHECK(groups == 1);

  CHECK(observer.reclaimDead() == 3);
  checkChildKilled(doomed, guard);
}

TEST_CASE("cost of an uncontended acquire and release pair (measured, not asserted)") {
  for (uint32_t limit : {4u, 1024u}) {
    TempDir dir;
    SlotTable table;
    openOwner(dir.file("streams.shm"), table);
    constexpr int kPairs = 1000000;
    int refused = 0;

    auto start = Clock::now();
    for (int i = 0; i < kPairs; ++i) {
      auto outcome = table.acquire(limit, "bench");
      refused += !outcome.slot.has_value();
    }  // each outcome's slot is released as it goes out of scope
    auto elapsed = std::chrono::duration<double, std::nano>(Clock::now() - start).count();

    CHECK(refused == 0);
    MESSAGE("limit " << limit << ": " << elapsed / kPairs << " ns per acquire+release pair");
  }
}

TEST_SUITE_END();

}  // namespace codex
