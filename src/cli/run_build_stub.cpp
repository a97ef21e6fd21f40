// Placeholder for the build engine: the integrator replaces this file with
// one that calls engine::Build for each graph of the request.
#include "cli/build_request.h"

namespace kiln::cli {

int RunBuild(const BuildRequest& /*request*/, Context& /*ctx*/) {
  return ReportError(Error(Errc::kUnsupported, "build execution is not implemented yet"));
}

}  // namespace kiln::cli
