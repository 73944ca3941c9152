#include "simulation_file.hpp"

#include "file_stamp.hpp"

#include "fsbi/simulation.hpp"
#include "fsbi/version.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <filesystem>

namespace fsbi {

namespace {

constexpr double checkpoint_interval_seconds = 0.5;
constexpr std::size_t target_chunk_bytes = std::size_t{1} << 20;

// One chunk height for all row datasets (theta, x, index, attempt), so the writer fills their
// chunks in step; about 1 MiB for the widest of them.
std::uint64_t chunk_rows_for(std::size_t widest, std::uint64_t capacity) {
  const std::uint64_t rows = std::max<std::uint64_t>(64, target_chunk_bytes / (8 * std::max<std::size_t>(widest, 1)));
  return std::max<std::uint64_t>(1, std::min(rows, capacity));
}

h5::DatasetOptions preallocated(std::size_t cols, std::uint64_t chunk_rows) {
  h5::DatasetOptions o;
  o.chunk_rows = chunk_rows;
  o.allocate_early = true;
  // Room for the chunk being filled plus one being evicted.
  o.chunk_cache_bytes = 3 * o.chunk_rows * cols * 8 + 4096;
  return o;
}

void write_description(h5::Group& g, const RunDescription& d) {
  g.set_attribute("simulator_name", d.simulator_name);
  g.set_attribute("simulator_version", d.simulator_version);
  g.set_attribute("simulator_options", d.simulator_options);
  g.set_attribute("simulator_path", d.simulator_path);
  g.set_attribute("prior", d.prior);
  g.set_attribute("prior_source", d.prior_source);
  g.set_attribute("seed", d.seed);
  g.set_attribute("num_requested", static_cast<std::int64_t>(d.requested));
  g.set_attribute("failure_policy", d.on_failure);
  g.set_attribute("max_failure_rate", d.max_failure_rate);
  g.set_attribute("max_attempts", static_cast<std::int64_t>(d.max_attempts));
  g.set_attribute("parameter_names", d.parameter_names);
  g.set_attribute("data_names", d.data_names);
}

}  // namespace

std::unique_ptr<SimulationWriter> SimulationWriter::create(const std::string& path,
                                                           const RunDescription& desc,
                                                           std::uint64_t failure_capacity) {
  std::unique_ptr<SimulationWriter> w(new SimulationWriter());
  w->d_ = desc.parameter_names.size();
  w->k_ = desc.data_names.size();
  w->failure_capacity_ = failure_capacity;
  w->file_ = h5::File::create(path);
  stamp_fsbi_file(w->file_);
  w->group_ = w->file_.create_group("simulations");
  write_description(w->group_, desc);
  w->group_.set_attribute("status", "running");
  const std::uint64_t n = desc.requested, fc = failure_capacity;
  const std::uint64_t rows_chunk = chunk_rows_for(std::max(w->d_, w->k_), n);
  const std::uint64_t fail_chunk = chunk_rows_for(std::max<std::size_t>(w->d_, 32), fc);
  w->group_.create_dataset("theta", h5::DType::f64, {n, w->d_}, preallocated(w->d_, rows_chunk));
  w->group_.create_dataset("x", h5::DType::f64, {n, w->k_}, preallocated(w->k_, rows_chunk));
  w->group_.create_dataset("index", h5::DType::i64, {n}, preallocated(1, rows_chunk));
  w->group_.create_dataset("attempt", h5::DType::i32, {n}, preallocated(1, rows_chunk));
  h5::Group failures = w->group_.create_group("failures");
  failures.create_dataset("index", h5::DType::i64, {fc}, preallocated(1, fail_chunk));
  failures.create_dataset("attempt", h5::DType::i32, {fc}, preallocated(1, fail_chunk));
  failures.create_dataset("theta", h5::DType::f64, {fc, w->d_}, preallocated(w->d_, fail_chunk));
  failures.create_string_dataset("message", fc, failure_message_width, preallocated(32, fail_chunk));
  h5::DatasetOptions state_opts;
  state_opts.allocate_early = true;  // contiguous, fixed: a raw 4-value record
  w->group_.create_dataset("resume_state", h5::DType::i64, {4}, state_opts);
  w->open_datasets();
  w->chunk_rows_ = rows_chunk;
  w->write_progress();
  // The one metadata flush of the run; from here on only raw data is written.
  w->file_.flush();
  w->last_checkpoint_ = std::chrono::steady_clock::now();
  return w;
}

std::unique_ptr<SimulationWriter> SimulationWriter::reopen(const std::string& path,
                                                           const RunDescription& desc) {
  std::unique_ptr<SimulationWriter> w(new SimulationWriter());
  w->file_ = h5::File::open(path, h5::Access::read_write);
  if (!w->file_.exists("simulations"))
    throw SimulationError(fmt::format("{}: not an fsbi simulation file (no /simulations group)", path));
  w->group_ = w->file_.open_group("simulations");
  h5::Group& g = w->group_;
  if (g.attribute_string("status") != "running")
    throw SimulationError(fmt::format("{}: status is '{}', not an interrupted run; nothing to resume",
                                      path, g.attribute_string("status")));
  // Every setting that determines the rows must match.
  std::vector<std::string> diffs;
  auto check = [&](const char* what, const std::string& stored, const std::string& now) {
    if (stored != now) diffs.push_back(fmt::format("{} was '{}', now '{}'", what, stored, now));
  };
  check("simulator", g.attribute_string("simulator_name"), desc.simulator_name);
  check("simulator version", g.attribute_string("simulator_version"), desc.simulator_version);
  check("--sim-opt", g.attribute_string("simulator_options"), desc.simulator_options);
  check("prior", g.attribute_string("prior"), desc.prior);
  check("--seed", std::to_string(g.attribute_uint("seed")), std::to_string(desc.seed));
  check("--num-simulations", std::to_string(g.attribute_int("num_requested")), std::to_string(desc.requested));
  check("--on-failure", g.attribute_string("failure_policy"), desc.on_failure);
  check("--max-failure-rate", fmt::format("{}", g.attribute_double("max_failure_rate")),
        fmt::format("{}", desc.max_failure_rate));
  check("--max-attempts", std::to_string(g.attribute_int("max_attempts")), std::to_string(desc.max_attempts));
  if (!diffs.empty()) {
    std::string all;
    for (const auto& s : diffs) all += (all.empty() ? "" : "; ") + s;
    throw SimulationError(fmt::format(
        "{}: cannot resume with different settings ({}); rerun with the original settings, or "
        "delete the file to start over",
        path, all));
  }
  w->d_ = desc.parameter_names.size();
  w->k_ = desc.data_names.size();
  w->open_datasets();
  w->failure_capacity_ = w->f_index_.shape().at(0);
  w->chunk_rows_ = chunk_rows_for(std::max(w->d_, w->k_), desc.requested);
  std::vector<std::int64_t> s(4);
  w->state_.read_rows(0, 4, s);
  w->progress_ = {static_cast<std::uint64_t>(s[0]), static_cast<std::uint64_t>(s[1]),
                  static_cast<std::uint64_t>(s[2]), static_cast<std::uint64_t>(s[3])};
  w->buffer_.first_row = w->progress_.rows;
  w->last_checkpoint_ = std::chrono::steady_clock::now();
  return w;
}

void SimulationWriter::open_datasets() {
  theta_ = group_.open_dataset("theta");
  x_ = group_.open_dataset("x");
  index_ = group_.open_dataset("index");
  attempt_ = group_.open_dataset("attempt");
  state_ = group_.open_dataset("resume_state");
  f_index_ = group_.open_dataset("failures/index");
  f_attempt_ = group_.open_dataset("failures/attempt");
  f_theta_ = group_.open_dataset("failures/theta");
  f_message_ = group_.open_dataset("failures/message");
}

void SimulationWriter::append(std::span<const double> theta, std::span<const double> x,
                              std::span<const std::int64_t> index,
                              std::span<const std::int32_t> attempt) {
  const std::uint64_t n = index.size();
  std::uint64_t done = 0;
  while (done < n) {
    // Fill up to the end of the current chunk, then hand the whole chunk to HDF5.
    const std::uint64_t chunk_end = (buffer_.first_row / chunk_rows_ + 1) * chunk_rows_;
    const std::uint64_t take = std::min(n - done, chunk_end - (buffer_.first_row + buffer_.rows));
    buffer_.theta.insert(buffer_.theta.end(), theta.begin() + done * d_, theta.begin() + (done + take) * d_);
    buffer_.x.insert(buffer_.x.end(), x.begin() + done * k_, x.begin() + (done + take) * k_);
    buffer_.index.insert(buffer_.index.end(), index.begin() + done, index.begin() + done + take);
    buffer_.attempt.insert(buffer_.attempt.end(), attempt.begin() + done, attempt.begin() + done + take);
    buffer_.rows += take;
    done += take;
    if (buffer_.first_row + buffer_.rows == chunk_end) {
      write_buffer();
      buffer_.first_row = chunk_end;
      buffer_.rows = 0;
      buffer_.theta.clear();
      buffer_.x.clear();
      buffer_.index.clear();
      buffer_.attempt.clear();
    }
  }
  progress_.rows += n;
  for (auto a : attempt)
    if (a > 0) ++progress_.redrawn;
}

void SimulationWriter::write_buffer() {
  if (buffer_.rows == 0) return;
  const std::uint64_t r = buffer_.first_row, n = buffer_.rows;
  theta_.write_rows(r, n, buffer_.theta);
  x_.write_rows(r, n, buffer_.x);
  index_.write_rows(r, n, buffer_.index);
  attempt_.write_rows(r, n, buffer_.attempt);
}

void SimulationWriter::add_failure(const FailureRecord& f) {
  const std::uint64_t r = progress_.failed;
  if (r >= failure_capacity_) return;  // cannot happen: the run aborts at capacity
  const std::int64_t idx = static_cast<std::int64_t>(f.index);
  const std::int32_t att = static_cast<std::int32_t>(f.attempt);
  f_index_.write_rows(r, 1, std::span<const std::int64_t>(&idx, 1));
  f_attempt_.write_rows(r, 1, std::span<const std::int32_t>(&att, 1));
  f_theta_.write_rows(r, 1, f.theta);
  std::string msg = f.message.substr(0, failure_message_width - 1);
  f_message_.write_string_rows(r, std::span<const std::string>(&msg, 1));
  ++progress_.failed;
}

bool SimulationWriter::checkpoint_due() const {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - last_checkpoint_).count() >=
         checkpoint_interval_seconds;
}

void SimulationWriter::write_progress() {
  const std::int64_t s[4] = {static_cast<std::int64_t>(progress_.next_index),
                             static_cast<std::int64_t>(progress_.rows),
                             static_cast<std::int64_t>(progress_.failed),
                             static_cast<std::int64_t>(progress_.redrawn)};
  state_.write_rows(0, 4, std::span<const std::int64_t>(s, 4));
}

void SimulationWriter::checkpoint() {
  // Rows first, then the record that counts them: a kill between the two only loses rows that
  // the resumed run writes again. A partly filled chunk is written now and again when full.
  write_buffer();
  for (h5::Dataset* ds : {&theta_, &x_, &index_, &attempt_, &f_index_, &f_attempt_, &f_theta_, &f_message_})
    ds->flush();
  write_progress();
  state_.flush();
  last_checkpoint_ = std::chrono::steady_clock::now();
}

void SimulationWriter::close_unfinished() {
  checkpoint();
  for (h5::Dataset* ds : {&theta_, &x_, &index_, &attempt_, &state_, &f_index_, &f_attempt_, &f_theta_, &f_message_})
    *ds = h5::Dataset();
  group_ = h5::Group();
  file_.close();
}

void SimulationWriter::finish() {
  checkpoint();
  theta_.set_extent_rows(progress_.rows);
  x_.set_extent_rows(progress_.rows);
  index_.set_extent_rows(progress_.rows);
  attempt_.set_extent_rows(progress_.rows);
  f_index_.set_extent_rows(progress_.failed);
  f_attempt_.set_extent_rows(progress_.failed);
  f_theta_.set_extent_rows(progress_.failed);
  f_message_.set_extent_rows(progress_.failed);
  const auto requested = group_.attribute_int("num_requested");
  group_.set_attribute("num_rows", static_cast<std::int64_t>(progress_.rows));
  group_.set_attribute("num_failed", static_cast<std::int64_t>(progress_.failed));
  group_.set_attribute("num_redrawn", static_cast<std::int64_t>(progress_.redrawn));
  group_.set_attribute("failure_rate", requested > 0 ? static_cast<double>(progress_.failed) /
                                                           static_cast<double>(requested)
                                                     : 0.0);
  group_.set_attribute("status", "complete");
  close_unfinished();
}

// ---- reading -----------------------------------------------------------------------------------

SimulationData read_simulations(const std::string& path) {
  h5::File file = [&] {
    try {
      return h5::File::open(path);
    } catch (const h5::Error& e) {
      throw SimulationError(e.what());
    }
  }();
  if (!file.exists("simulations"))
    throw SimulationError(fmt::format(
        "{}: not an fsbi simulation file (no /simulations group); make one with `fsbi simulate`", path));
  try {
    h5::Group g = file.open_group("simulations");
    SimulationData out;
    out.status = g.attribute_string("status");
    out.simulator_name = g.attribute_string("simulator_name");
    out.simulator_version = g.attribute_string("simulator_version");
    out.simulator_options = g.attribute_string("simulator_options");
    out.prior = g.attribute_string("prior");
    if (g.has_attribute("prior_source")) out.prior_source = g.attribute_string("prior_source");
    out.seed = g.attribute_uint("seed");
    out.requested = static_cast<std::uint64_t>(g.attribute_int("num_requested"));
    out.parameter_names = g.attribute_strings("parameter_names");
    out.data_names = g.attribute_strings("data_names");
    std::vector<std::int64_t> state(4);
    g.open_dataset("resume_state").read_rows(0, 4, state);
    const std::uint64_t rows = static_cast<std::uint64_t>(state[1]);
    out.failed = static_cast<std::uint64_t>(state[2]);
    const std::size_t d = out.parameter_names.size(), k = out.data_names.size();
    h5::Dataset th = g.open_dataset("theta"), xs = g.open_dataset("x");
    if (th.shape().size() != 2 || th.shape()[1] != d || xs.shape().size() != 2 || xs.shape()[1] != k ||
        th.shape()[0] < rows || xs.shape()[0] < rows)
      throw SimulationError(fmt::format("{}: /simulations/theta or /x has a shape that does not match "
                                        "its {} parameter and {} data names",
                                        path, d, k));
    out.theta.resize(static_cast<Eigen::Index>(rows), static_cast<Eigen::Index>(d));
    out.x.resize(static_cast<Eigen::Index>(rows), static_cast<Eigen::Index>(k));
    out.index.resize(rows);
    if (rows > 0) {
      th.read_rows(0, rows, {out.theta.data(), rows * d});
      xs.read_rows(0, rows, {out.x.data(), rows * k});
      g.open_dataset("index").read_rows(0, rows, out.index);
    }
    return out;
  } catch (const h5::Error& e) {
    throw SimulationError(fmt::format("{}: malformed simulation file: {}", path, e.what()));
  }
}

}  // namespace fsbi
