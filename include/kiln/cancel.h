// Cancellation: SIGINT and SIGTERM stop a command at its next safe point
// (docs/store.md "Cancellation").
//
// main() installs the handlers for the commands that honour them. The first
// signal only sets a process-wide flag and makes CancelFd() readable; the
// command notices it where stopping is safe (between steps, in a transfer's
// progress callback, in the loops that copy or remove), unwinds as for any
// error (RAII removes its temporary files and releases its locks), and
// main() prints one line and exits 128+signal. A second signal exits at once
// (not a copy of the first: the same signal within 250 ms, as a
// process-group kill delivers it twice through kiln's user-namespace parent,
// unless it came from the terminal).
#pragma once

#include <string_view>

#include "kiln/error.h"

namespace kiln {

/// Installs the SIGINT/SIGTERM handlers. `command` names the command in the
/// message ("kiln: pull cancelled by SIGINT"). Call once, from main().
void InstallCancelHandlers(std::string_view command);

/// True once SIGINT or SIGTERM arrived (or RequestCancel was called).
bool Cancelled();

/// The signal that cancelled the command (SIGINT, SIGTERM), 0 if none.
int CancelSignal();

/// A descriptor that becomes readable, and stays so, once cancelled: add it
/// to the poll() of a blocking loop. -1 before InstallCancelHandlers.
int CancelFd();

/// Async-signal-safe: marks the process cancelled by `sig` (for a command's
/// own handler that takes SIGINT/SIGTERM over, e.g. `kiln run`'s forwarder
/// before the container exists).
void RequestCancel(int sig);

/// At a safe point: kCancelled ("cancelled") once cancelled, else Ok.
Status CheckCancelled();

/// Prints "kiln: COMMAND cancelled by SIGxxx" on stderr once and returns
/// the exit status 128+signal.
int ReportCancelled();

/// How long a cancelled command lets a child process (a RUN step) exit after
/// SIGTERM before it sends SIGKILL.
inline constexpr int kCancelGraceMs = 2000;

}  // namespace kiln
