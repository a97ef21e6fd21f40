// Work a command leaves for after its caller has the answer: `kiln run
// --rm` removes the container's record and upper directory once the shell
// has the exit status (docs/run.md, "Start-up cost").
#pragma once

#include <functional>

namespace kiln {

/// Queues `work` to run after the command when a caller waits for the
/// answer (SetCallerAnswerFd), else runs it at once. FinishDeferredWork()
/// runs the queue; `work` must leave the store consistent if it never runs (kiln
/// killed): what it removes is already out of sight and swept later.
void DeferAfterAnswer(std::function<void()> work);

/// The write end of a pipe to the process that waits for this one (the
/// parent outside kiln's user namespace, EnterUserNamespace): it exits
/// with the status written there, without waiting for this process.
void SetCallerAnswerFd(int fd);

/// Called by main() with the command's exit status. With work queued and a
/// waiting parent: stdio goes to /dev/null, the process leaves the
/// terminal's session (no Ctrl-C meant for the shell's next command), the
/// status goes to the parent, which exits with it at once, and the work
/// runs. Without a parent (kiln already in its user namespace, chroot
/// isolation) the work runs before kiln exits, as before. Returns the status.
int FinishDeferredWork(int exit_code);

}  // namespace kiln
