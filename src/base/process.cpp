#include "kiln/process.h"

#include <signal.h>

namespace kiln {

void InitSpawnAttr(posix_spawnattr_t* attr, short extra_flags) {
  posix_spawnattr_init(attr);
  sigset_t none;
  sigset_t all;
  sigemptyset(&none);
  sigfillset(&all);
  posix_spawnattr_setsigmask(attr, &none);
  posix_spawnattr_setsigdefault(attr, &all);
  posix_spawnattr_setflags(attr, static_cast<short>(POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF | extra_flags));
}

}  // namespace kiln
