// Checks of an output path made before any work starts, so that a long run does not fail at its
// end for a name the user could have fixed at once.
#pragma once

#include <string>

namespace fsbi {

// The folder a file at `path` would be written into: usable (also for a bare file name),
// missing, or a path that exists but is not a folder.
enum class OutputFolder { usable, missing, not_a_folder };
OutputFolder output_folder(const std::string& path);

// What is wrong with writing `output` (empty if nothing): it exists and overwrite is false ("run.h5
// already exists; choose another --output or pass --overwrite"), or its folder is missing or is
// not a folder ("out/run.h5: the folder 'out' does not exist; create it or choose another
// --output").
std::string output_path_problem(const std::string& output, bool overwrite);

}  // namespace fsbi
