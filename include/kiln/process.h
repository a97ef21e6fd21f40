// Starting helper processes with posix_spawn (safe in a multithreaded
// process): the attributes every kiln child gets.
#pragma once

#include <spawn.h>

namespace kiln {

/// Initialises `attr` so that the child starts with no signal blocked and
/// every signal at its default action (kiln blocks and handles some), plus
/// `extra_flags` (e.g. POSIX_SPAWN_SETSID). The caller destroys it.
void InitSpawnAttr(posix_spawnattr_t* attr, short extra_flags = 0);

}  // namespace kiln
