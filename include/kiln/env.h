// Environment variables that kiln's own processes pass to each other. Here,
// in the base module, so that every module may name them without depending
// on the module that sets them.
#pragma once

namespace kiln {

/// Set by the sandbox module in the process it re-executes inside kiln's
/// user namespace (EnterUserNamespace, kiln/sandbox.h). Its value is the host
/// uid kiln was started as ("0" for real root). The store and the registry
/// read it to unpack layer directories only where builds and runs use them.
inline constexpr const char kUserNsMarkerEnv[] = "KILN_STARTED_IN_USERNS";

}  // namespace kiln
