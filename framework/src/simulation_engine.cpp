// The simulation engine: a three-stage oneTBB pipeline
//   in-order source of slot ranges → parallel prior draw + simulate → in-order HDF5 writer.
// Only the writer touches HDF5 (one global lock serialises every HDF5 call anyway).
#include "fsbi/simulation.hpp"

#include "crash_context.hpp"
#include "fsbi/version.hpp"
#include "h5/h5.hpp"
#include "output_path.hpp"
#include "simulation_file.hpp"

#include <fcntl.h>
#include <fmt/format.h>
#include <oneapi/tbb/enumerable_thread_specific.h>
#include <oneapi/tbb/global_control.h>
#include <oneapi/tbb/info.h>
#include <oneapi/tbb/parallel_pipeline.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <filesystem>
#include <memory>
#include <mutex>
#include <unordered_map>

namespace fsbi {
namespace fs = std::filesystem;

std::string_view to_string(FailurePolicy p) {
  switch (p) {
    case FailurePolicy::abort: return "abort";
    case FailurePolicy::drop: return "drop";
    case FailurePolicy::redraw: return "redraw";
  }
  return "?";
}

FailurePolicy parse_failure_policy(std::string_view s) {
  if (s == "abort") return FailurePolicy::abort;
  if (s == "drop") return FailurePolicy::drop;
  if (s == "redraw") return FailurePolicy::redraw;
  throw std::invalid_argument(fmt::format("--on-failure '{}': use abort, drop or redraw", s));
}

std::string partial_path(const std::string& output) { return output + ".partial"; }

namespace {

// One pipeline item: a contiguous range of simulation slots and what became of them.
struct Batch {
  std::uint64_t first = 0, count = 0;
  // Kept rows (slot order), ready for the writer.
  std::vector<double> theta, x;
  std::vector<std::int64_t> index;
  std::vector<std::int32_t> attempt;
  std::vector<FailureRecord> failures;  // slot order, attempts in order
};

// The batches between the pipeline's stages, owned here rather than by the pipeline: a pipeline
// cancelled by an exception (a simulator failure under --on-failure abort, a failed write) does
// not destroy the items it still holds, which leaked them for every aborted run of a program that
// goes on (AddressSanitizer's leak check on `fsbi simulate --on-failure abort`). Whichever way
// the run ends, whatever is left is freed with this registry.
class BatchesInFlight {
 public:
  Batch* open(std::uint64_t first, std::uint64_t count) {
    auto b = std::make_unique<Batch>();
    b->first = first;
    b->count = count;
    Batch* raw = b.get();
    const std::lock_guard lock(mutex_);
    batches_.emplace(raw, std::move(b));
    return raw;
  }
  void close(Batch* b) {
    std::unique_ptr<Batch> done;  // freed outside the lock
    const std::lock_guard lock(mutex_);
    auto it = batches_.find(b);
    done = std::move(it->second);
    batches_.erase(it);
  }

 private:
  std::mutex mutex_;
  std::unordered_map<const Batch*, std::unique_ptr<Batch>> batches_;
};

std::string format_theta(std::span<const double> theta) {
  std::string s = "(";
  for (std::size_t i = 0; i < theta.size(); ++i) s += fmt::format("{}{:.6g}", i ? ", " : "", theta[i]);
  return s + ")";
}

std::uint64_t failure_budget(const SimulationSettings& s) {
  if (s.on_failure == FailurePolicy::abort) return 0;
  return static_cast<std::uint64_t>(std::floor(s.max_failure_rate * static_cast<double>(s.num_simulations)));
}

std::uint64_t automatic_batch_size(std::uint64_t n, int threads) {
  // Enough items for ~4 tokens per thread to balance, large enough to amortise the writer's
  // per-call HDF5 cost.
  const std::uint64_t per = n / (static_cast<std::uint64_t>(threads) * 64 + 1);
  return std::clamp<std::uint64_t>(per, 16, 4096);
}

void fsync_path(const std::string& path) {
  const int fd = ::open(path.c_str(), O_RDONLY);
  if (fd >= 0) {
    ::fsync(fd);
    ::close(fd);
  }
}

// Simulates one batch on the calling worker thread.
void simulate_batch(Batch& b, const Simulator& sim, SimulatorInstance& inst, const Prior& prior,
                    const SimulationSettings& st) {
  const std::size_t d = sim.parameter_dim(), k = sim.data_dim(), n = b.count;
  std::vector<std::uint64_t> idx(n);
  std::vector<std::uint32_t> att(n, 0);
  std::vector<double> theta(n * d), x(n * k);
  std::vector<std::uint8_t> ok(n);
  for (std::size_t i = 0; i < n; ++i) {
    idx[i] = b.first + i;
    CounterRng rng(st.seed, Stream::prior, idx[i], 0);
    prior.sample(rng, {theta.data() + i * d, d});
  }
  const SimulateResult res = inst.simulate(st.seed, idx, att, theta, x, ok);

  b.theta.reserve(n * d);
  b.x.reserve(n * k);
  b.index.reserve(n);
  b.attempt.reserve(n);
  for (std::size_t i = 0; i < n; ++i) {
    if (ok[i]) {
      b.theta.insert(b.theta.end(), theta.begin() + i * d, theta.begin() + (i + 1) * d);
      b.x.insert(b.x.end(), x.begin() + i * k, x.begin() + (i + 1) * k);
      b.index.push_back(static_cast<std::int64_t>(idx[i]));
      b.attempt.push_back(0);
      continue;
    }
    // A failed slot: record the failure with its own message (a row alone reproduces exactly:
    // same stream), then redraw if asked.
    std::uint32_t a = 0;
    std::vector<double> th(theta.begin() + i * d, theta.begin() + (i + 1) * d), xi(k);
    std::uint8_t row_ok = 0;
    std::string msg = res.call_failed ? res.first_error : std::string();
    for (;;) {
      if (msg.empty()) {
        const std::uint64_t one_idx = idx[i];
        const SimulateResult r1 = inst.simulate(st.seed, {&one_idx, 1}, {&a, 1}, th, xi, {&row_ok, 1});
        msg = row_ok ? "failed in a batch but not alone (the simulator depends on its batch)"
                     : r1.first_error;
      }
      b.failures.push_back({idx[i], a, th, msg});
      if (st.on_failure != FailurePolicy::redraw || a + 1 >= st.max_attempts) break;
      ++a;
      CounterRng rng(st.seed, Stream::prior, idx[i], a);
      prior.sample(rng, th);
      const std::uint64_t one_idx = idx[i];
      const SimulateResult r2 = inst.simulate(st.seed, {&one_idx, 1}, {&a, 1}, th, xi, {&row_ok, 1});
      if (row_ok) {
        b.theta.insert(b.theta.end(), th.begin(), th.end());
        b.x.insert(b.x.end(), xi.begin(), xi.end());
        b.index.push_back(static_cast<std::int64_t>(idx[i]));
        b.attempt.push_back(static_cast<std::int32_t>(a));
        break;
      }
      msg = r2.first_error;
    }
  }
}

}  // namespace

RunDescription describe_run(const Simulator& simulator, const Prior& prior, const std::string& prior_source,
                            const SimulationSettings& st) {
  RunDescription desc;
  desc.simulator_name = simulator.name();
  desc.simulator_version = simulator.version();
  desc.simulator_options = format_simulator_options(simulator.options());
  desc.simulator_path = simulator.plugin().path();
  desc.prior = prior.spec();
  desc.prior_source = prior_source;
  desc.seed = st.seed;
  desc.requested = st.num_simulations;
  desc.on_failure = std::string(to_string(st.on_failure));
  desc.max_failure_rate = st.max_failure_rate;
  desc.max_attempts = st.max_attempts;
  desc.parameter_names = simulator.parameter_names();
  desc.data_names = simulator.data_names();
  return desc;
}

SimulationReport run_simulations(const Simulator& simulator, const Prior& prior,
                                 const std::string& prior_source,
                                 const SimulationSettings& settings, const std::string& output) {
  const SimulationSettings& st = settings;
  if (st.num_simulations == 0)
    throw SimulationError("--num-simulations must be at least 1");
  if (prior.dim() != simulator.parameter_dim())
    throw SimulationError(fmt::format("prior {} has {} dimensions but simulator '{}' has {} parameters",
                                      prior.spec(), prior.dim(), simulator.name(),
                                      simulator.parameter_dim()));
  if (!(st.max_failure_rate >= 0 && st.max_failure_rate <= 1))
    throw SimulationError(fmt::format("--max-failure-rate {} must be between 0 and 1", st.max_failure_rate));
  if (st.max_attempts == 0) throw SimulationError("--max-attempts must be at least 1");
  if (output.empty()) throw SimulationError("no output file given (--output FILE)");

  const std::string partial = partial_path(output);
  if (const std::string problem = output_path_problem(output, st.overwrite); !problem.empty())
    throw SimulationError(problem);
  std::error_code ec;

  const RunDescription desc = describe_run(simulator, prior, prior_source, st);
  const std::uint64_t budget = failure_budget(st);

  std::unique_ptr<SimulationWriter> writer;
  if (st.resume) {
    if (!fs::exists(partial, ec))
      throw SimulationError(fmt::format(
          "--resume: there is no interrupted run to continue ({} does not exist); run without --resume",
          partial));
    writer = SimulationWriter::reopen(partial, desc);
  } else {
    if (fs::exists(partial, ec))
      throw SimulationError(fmt::format(
          "{} exists: an earlier run writing {} was interrupted; continue it with --resume (same "
          "settings) or delete {}",
          partial, output, partial));
    writer = SimulationWriter::create(partial, desc, budget + 1);
  }

  const int threads = st.threads > 0 ? st.threads : tbb::info::default_concurrency();
  tbb::global_control limit(tbb::global_control::max_allowed_parallelism,
                            static_cast<std::size_t>(threads));
  const std::uint64_t batch = st.batch_size ? st.batch_size : automatic_batch_size(st.num_simulations, threads);

  SimulationReport report;
  report.output = output;
  report.requested = st.num_simulations;
  report.resumed_from = writer->progress().next_index;

  ProgressReporter progress("simulating", "sim", st.num_simulations, st.progress);
  progress.set_resumed_from(report.resumed_from);
  CrashContext::set(partial, writer->progress().rows);

  tbb::enumerable_thread_specific<std::unique_ptr<SimulatorInstance>> instances;
  std::uint64_t next = writer->progress().next_index;
  const std::uint64_t end = st.num_simulations;

  BatchesInFlight batches;
  auto source = tbb::make_filter<void, Batch*>(
      tbb::filter_mode::serial_in_order, [&](tbb::flow_control& fc) -> Batch* {
        if (next >= end) {
          fc.stop();
          return nullptr;
        }
        Batch* b = batches.open(next, std::min(batch, end - next));
        next += b->count;
        return b;
      });
  auto work = tbb::make_filter<Batch*, Batch*>(
      tbb::filter_mode::parallel, [&](Batch* b) {
        auto& inst = instances.local();
        if (!inst) inst = simulator.create_instance();
        simulate_batch(*b, simulator, *inst, prior, st);
        return b;
      });
  auto sink = tbb::make_filter<Batch*, void>(
      tbb::filter_mode::serial_in_order, [&](Batch* b) {
        writer->append(b->theta, b->x, b->index, b->attempt);
        for (const auto& f : b->failures) {
          writer->add_failure(f);  // capacity budget + 1: the record that aborts is kept
          if (writer->progress().failed > budget) {
            writer->set_next_index(f.index);  // resume restarts at the failing slot
            writer->checkpoint();
            CrashContext::set(partial, writer->progress().rows);
            const auto& p = writer->progress();
            std::string why =
                st.on_failure == FailurePolicy::abort
                    ? std::string("--on-failure abort stops at the first failure")
                    : fmt::format("{} failures exceed the budget of {} (--max-failure-rate {} of {} simulations)",
                                  p.failed, budget, st.max_failure_rate, st.num_simulations);
            throw SimulationAborted(fmt::format(
                "simulator '{}' failed at θ = {} (simulation {}, attempt {}): {}. Run stopped: {}. "
                "The {} rows simulated so far are kept in {}. Failures that depend on θ change the "
                "effective prior and bias score matching (docs/simulation.md#failures): fix the "
                "simulator or narrow the prior, or, if failures are acceptable, raise "
                "--max-failure-rate or choose --on-failure redraw",
                simulator.name(), format_theta(f.theta), f.index, f.attempt, f.message, why, p.rows,
                partial));
          }
        }
        writer->set_next_index(b->first + b->count);
        if (writer->checkpoint_due()) {
          writer->checkpoint();
          CrashContext::set(partial, writer->progress().rows);
        }
        const auto& p = writer->progress();
        progress.update(p.next_index, p.failed ? fmt::format("{} failed", p.failed) : std::string());
        batches.close(b);
      });

  try {
    tbb::parallel_pipeline(static_cast<std::size_t>(threads) * 4, source & work & sink);
  } catch (...) {
    // Whatever stopped the run, what was written stays readable and resumable.
    try {
      writer->checkpoint();
      writer->close_unfinished();
    } catch (...) {
    }
    CrashContext::clear();
    throw;
  }
  instances.clear();

  const SimulationProgress p = writer->progress();
  writer->finish();
  writer.reset();
  fsync_path(partial);
  fs::rename(partial, output, ec);
  if (ec)
    throw SimulationError(fmt::format("cannot rename {} to {}: {}", partial, output, ec.message()));
  if (const auto parent = fs::absolute(output).parent_path(); !parent.empty()) fsync_path(parent.string());
  CrashContext::clear();

  report.rows = p.rows;
  report.failed = p.failed;
  report.redrawn = p.redrawn;
  report.seconds = progress.elapsed_seconds();
  progress.finish(p.failed ? fmt::format("{} failed", p.failed) : std::string());
  return report;
}

}  // namespace fsbi
