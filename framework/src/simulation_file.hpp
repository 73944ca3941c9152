// Writing the simulation file (docs/file-format.md, "/simulations").
//
// Crash safety without a journal: every dataset is created at its final capacity with all
// storage allocated up front and the metadata flushed once, so while the run writes rows the
// file's metadata never changes — a write is raw data only. The resume state (next slot, rows,
// failures) is itself a small raw dataset written after the rows it counts. A process killed at
// any point (SIGKILL included) therefore leaves a file that opens, holds every row up to its
// last checkpoint, and can be continued.
#pragma once

#include "fsbi/plugin.hpp"
#include "fsbi/prior.hpp"
#include "fsbi/simulation.hpp"
#include "h5/h5.hpp"

#include <chrono>
#include <memory>
#include <span>
#include <cstdint>
#include <string>
#include <vector>

namespace fsbi {

inline constexpr std::size_t failure_message_width = 256;

struct FailureRecord {
  std::uint64_t index = 0;
  std::uint32_t attempt = 0;
  std::vector<double> theta;
  std::string message;
};

// Everything that determines a run's rows; stored as attributes of /simulations, compared on
// resume.
struct RunDescription {
  std::string simulator_name, simulator_version, simulator_options, simulator_path;
  std::string prior, prior_source;
  std::uint64_t seed = 0, requested = 0;
  std::string on_failure;
  double max_failure_rate = 0;
  std::uint32_t max_attempts = 0;
  std::vector<std::string> parameter_names, data_names;
};

// The description of a run of `settings.num_simulations` slots of `simulator` over `prior`.
RunDescription describe_run(const Simulator& simulator, const Prior& prior, const std::string& prior_source,
                            const SimulationSettings& settings);

struct SimulationProgress {
  std::uint64_t next_index = 0;  // slots [0, next_index) are done
  std::uint64_t rows = 0;        // rows kept
  std::uint64_t failed = 0;      // failure records
  std::uint64_t redrawn = 0;     // rows kept at attempt > 0
};

class SimulationWriter {
 public:
  static std::unique_ptr<SimulationWriter> create(const std::string& path, const RunDescription& desc,
                                                  std::uint64_t failure_capacity);
  // Reopens an interrupted run's file; throws SimulationError if it was made with other settings.
  static std::unique_ptr<SimulationWriter> reopen(const std::string& path, const RunDescription& desc);

  // Appends kept rows (row-major blocks). Not yet durable: see checkpoint().
  void append(std::span<const double> theta, std::span<const double> x,
              std::span<const std::int64_t> index, std::span<const std::int32_t> attempt);
  void add_failure(const FailureRecord& f);
  void set_next_index(std::uint64_t next) { progress_.next_index = next; }

  bool checkpoint_due() const;
  // Flushes the rows, then records the progress that counts them.
  void checkpoint();
  // Closes the file as an interrupted run (status stays "running"); resumable.
  void close_unfinished();
  // Trims the datasets to what was written, records the totals, status "complete", closes.
  void finish();

  const SimulationProgress& progress() const { return progress_; }

 private:
  SimulationWriter() = default;
  void open_datasets();
  void write_progress();

  // Rows are gathered into whole chunks before they reach HDF5: a write that covers a chunk
  // exactly is one pwrite, while a partial one makes HDF5 read the chunk back first.
  struct RowBuffer {
    std::uint64_t first_row = 0;  // file row of the buffer's first row
    std::uint64_t rows = 0;
    std::vector<double> theta, x;
    std::vector<std::int64_t> index;
    std::vector<std::int32_t> attempt;
  };
  void write_buffer();

  h5::File file_;
  std::uint64_t chunk_rows_ = 1;
  RowBuffer buffer_;
  h5::Group group_;
  h5::Dataset theta_, x_, index_, attempt_, state_;
  h5::Dataset f_index_, f_attempt_, f_theta_, f_message_;
  std::size_t d_ = 0, k_ = 0;
  std::uint64_t failure_capacity_ = 0;
  SimulationProgress progress_;
  std::chrono::steady_clock::time_point last_checkpoint_;
};

}  // namespace fsbi
