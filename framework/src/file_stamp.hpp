// The root attributes every file fsbi writes carries (docs/file-format.md, "Root attributes").
#pragma once

#include "h5/h5.hpp"

namespace fsbi {

// Version of the file-format specification (docs/file-format.md) the root attributes announce.
inline constexpr int file_format_version = 1;

// Sets fsbi_format, fsbi_format_version, fsbi_version and hdf5_version on the root, unless the
// file already carries them (a run file gains groups after its simulations were written).
void stamp_fsbi_file(h5::File& file);

}  // namespace fsbi
