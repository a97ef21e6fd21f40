// The spec the parent (spawn.cpp) sends to the kiln-sandbox helper
// (init.cpp) over a pipe, and the status messages the helper sends back.
// Internal to src/sandbox; no allocation-heavy or exception-throwing code, so
// the helper stays small.
//
// Spec pipe (helper fd 3): u32 length, then `length` bytes of fields:
//   u32 (little endian) or string (u32 length + bytes) or string list
//   (u32 count + strings), in the order of EncodeSpec. Later, with a private
//   network, one byte 'G' ("go on") once the network helper is attached.
// Status pipe (helper fd 4): lines "<tag><text>\n":
//   E<msg>       set-up failed (the helper exits 125)
//   F<code> <msg> execve failed; the process exited with <code> (126/127)
//   N            the network namespace exists; attach slirp4netns/pasta to
//                the helper's pid and answer 'G' on the spec pipe
//   C<path>      a mount stub was created at <path> (relative to the rootfs);
//                the parent removes it after the run if still empty
//   D<driver> <userxattr>  the rootfs driver used
//   W<status>    the process's wait status (from pid 1 of the sandbox)
//   P<pid>       pid 1 of the sandbox, in the parent's pid namespace
//                (SandboxSpec::on_started, for kiln run)
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "kiln/sandbox.h"

namespace kiln::sandbox {

inline constexpr int kSpecFd = 3;
inline constexpr int kStatusFd = 4;

/// What the helper needs beyond SandboxSpec: files the parent prepared.
struct HelperSpec {
  SandboxSpec spec;
  std::string new_root;        // empty directory to mount the rootfs on
  std::string hosts_file;      // host paths of the generated /etc files ("" = none)
  std::string resolv_file;
  std::string hostname_file;
  int32_t parent_pid = 0;      // to detect the parent's death (PDEATHSIG race)
  bool in_userns = false;      // try overlay `userxattr` first
};

/// Passes `fd` with SCM_RIGHTS (and one data byte) on the socket `sock`
/// (the helper's pty master to the parent). False with errno on failure.
bool SendFd(int sock, int fd);
/// Receives one fd sent by SendFd() (O_CLOEXEC), or -1 with errno (EPROTO
/// when the message carries no single fd).
int ReceiveFd(int sock);

std::string EncodeSpec(const HelperSpec& h);
/// False on a malformed payload.
bool DecodeSpec(const std::string& data, HelperSpec* out);

}  // namespace kiln::sandbox
