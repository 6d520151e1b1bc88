// codex-exec: the first program every child runs, between libuv's fork and the Codex CLI.
//
// libuv does not close inherited descriptors, and libfcgi accepts connections without
// close-on-exec, so a child could otherwise hold the listening socket or another request's
// connection. This shim closes every descriptor above stderr and asks the kernel to kill the
// child if the worker thread that spawned it dies, then replaces itself with the real binary.
//
// Usage: codex-exec <worker-pid> <binary> [args...]
#include <linux/close_range.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>

int main(int argc, char** argv) {
  if (argc < 3) {
    fprintf(stderr, "usage: codex-exec <worker-pid> <binary> [args...]\n");
    return 2;
  }

  prctl(PR_SET_PDEATHSIG, SIGKILL);
  // The worker may have died before the line above took effect.
  if (getppid() != static_cast<pid_t>(atol(argv[1]))) {
    return 1;
  }

  syscall(SYS_close_range, 3U, ~0U, 0U);
  execv(argv[2], argv + 2);
  fprintf(stderr, "spawn %s %s\n", argv[2], strerror(errno));
  return 127;
}
