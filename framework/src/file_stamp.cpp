#include "file_stamp.hpp"

#include "fsbi/version.hpp"

namespace fsbi {

void stamp_fsbi_file(h5::File& file) {
  if (file.has_attribute("fsbi_format")) return;
  file.set_attribute("fsbi_format", "fsbi");
  file.set_attribute("fsbi_format_version", static_cast<std::int64_t>(file_format_version));
  file.set_attribute("fsbi_version", version_string);
  file.set_attribute("hdf5_version", h5::hdf5_version());
}

}  // namespace fsbi
