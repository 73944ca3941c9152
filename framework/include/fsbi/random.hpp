// Counter-based randomness: every random number fsbi uses is a pure function of
// (run seed, stream, simulation index, attempt, draw number).
//
// The generator is Random123's Philox4x64-10 with key (seed, stream) and counter
// (index, attempt, block, 0). Nothing depends on which thread asks or in what order streams are
// created, so a run gives the same numbers for any thread count, batch size, shard split or
// resume. Each variate consumes a fixed number of raw draws (uniform: one 64-bit word; normal:
// Box–Muller on two words, both results used in turn), never a rejection loop whose length
// varies, and never <random>'s distributions (whose sequences differ between standard libraries).
#pragma once

#include <Random123/philox.h>

#include <array>
#include <cstdint>
#include <span>

namespace fsbi {

// Independent purposes get independent streams, so e.g. adding a draw to the prior never
// shifts the simulator's numbers.
enum class Stream : std::uint64_t {
  prior = 1,      // θ drawn from the prior for a simulation slot
  simulator = 2,  // the simulator's own randomness (handed to the plugin)
  training = 3,   // shuffling, validation split, weight initialisation, sliced directions
  sampling = 4,   // posterior samplers
  local = 5,      // local Fisher score matching proposals
  proposal = 6,   // sequential rounds: initialising the Gaussian-mixture fit (k-means++)
  test = 99,      // tests
};

class CounterRng {
 public:
  CounterRng(std::uint64_t seed, Stream stream, std::uint64_t index, std::uint64_t attempt = 0)
      : key_{{seed, static_cast<std::uint64_t>(stream)}}, ctr_{{index, attempt, 0, 0}} {}

  // Uniform on [0, 2^64).
  std::uint64_t next_u64() {
    if (used_ == 4) refill();
    return block_.v[used_++];
  }

  // Uniform on the open interval (0, 1), never 0 or 1: one raw word mapped by unit_interval().
  double uniform() { return unit_interval(next_u64()); }

  // The map from a raw word to (0, 1): its top 52 bits k give (k + 1/2)·2^-52, the centre of
  // the k-th of 2^52 equal cells. k + 1/2 < 2^52 needs 53 significant bits, so every step is
  // exact: the result lies in [2^-53, 1 - 2^-53] and the distribution is symmetric about 1/2.
  // (With 53 bits, k + 1/2 would need 54 and round to even, sending the top word to exactly 1.)
  static constexpr double unit_interval(std::uint64_t word) {
    return (static_cast<double>(word >> 12) + 0.5) * 0x1.0p-52;
  }

  double uniform(double low, double high) { return low + (high - low) * uniform(); }

  // Standard normal by Box–Muller; the pair's second value is returned by the next call.
  double normal();

  void fill_uniform(std::span<double> out) {
    for (double& v : out) v = uniform();
  }
  void fill_normal(std::span<double> out) {
    for (double& v : out) v = normal();
  }

 private:
  void refill() {
    block_ = r123::Philox4x64()(ctr_, key_);
    ++ctr_.v[2];
    used_ = 0;
  }

  r123::Philox4x64::key_type key_;
  r123::Philox4x64::ctr_type ctr_;
  r123::Philox4x64::ctr_type block_{};
  unsigned used_ = 4;
  bool has_spare_ = false;
  double spare_ = 0.0;
};

}  // namespace fsbi
