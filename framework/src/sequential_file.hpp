// A sequential run's /rounds group (docs/file-format.md#rounds): each round's proposal, the rows of
// /simulations it simulated, and its model, copied from the run's stage files.
#pragma once

#include "fsbi/sequential.hpp"
#include "h5/h5.hpp"

#include <string>

namespace fsbi {

void write_rounds(h5::File& run_file, const std::string& prefix, const SequentialReport& report);

}  // namespace fsbi
