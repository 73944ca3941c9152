// Training-step throughput of the score networks: objective_sum with its parameter gradient,
// float32, batch 256, hidden {128, 128, 128}, SiLU, for (d, k) = (2, 2), (5, 10), (10, 10) and
// both model kinds; and, as the yardstick, the single-precision matrix-product peak on this
// machine for products of the same shapes.
//
// Counters: samples/s (items_per_second) and GFLOP/s of the matrix products, counted
// analytically by fsbi::nn::objective_flops (formula in docs/score-network.md).
//
//   BM_TrainingStep/<kind>/<objective>/<d>/<k>/0          objective_sum, one thread (CPU time)
//   BM_TrainingStepParallel/<kind>/<objective>/<d>/<k>/<threads>/<block>
//                                 objective_sum_parallel, 1 or 2 threads (wall time), blocks of
//                                 64 samples (the trainer's step) or 128
//   BM_MatmulPeak[Parallel]/<cols>/<threads>  C = A·B, A 128×128, B 128×cols, one per thread,
//                                 through nn::gemm (the training step's back end)
//   BM_MatmulEigen/<cols>          the same as a plain Eigen product expression, one thread
// kind: 0 vector, 1 energy; objective: 0 ibp, 1 sliced, 2 latent.
//
// Run: build/bench/training_step [--benchmark_repetitions=5 --benchmark_report_aggregates_only]
// The machine is shared: take the best of several runs.
#include "nn/gemm.hpp"
#include "nn/score_network.hpp"

#include "fsbi/random.hpp"
#include "fsbi/version.hpp"

#include <benchmark/benchmark.h>
#include <tbb/global_control.h>
#include <tbb/parallel_for.h>

#include <cmath>
#include <vector>

namespace {

using fsbi::nn::Activation;
using fsbi::nn::Architecture;
using fsbi::nn::BatchInputs;
using fsbi::nn::Mat;
using fsbi::nn::ModelKind;
using fsbi::nn::Objective;
using fsbi::nn::ScoreNetwork;
using fsbi::nn::Vec;

constexpr Eigen::Index kBatch = 256;

Mat<float> normal(std::uint64_t index, Eigen::Index rows, Eigen::Index cols) {
  fsbi::CounterRng rng(7, fsbi::Stream::test, index);
  Mat<float> m(rows, cols);
  for (Eigen::Index i = 0; i < m.size(); ++i) m.data()[i] = static_cast<float>(rng.normal());
  return m;
}

BatchInputs<float> make_batch(int d, int k) {
  BatchInputs<float> b;
  const Mat<float> u = normal(1, d, kBatch);
  const auto t = (u.array() / 2).tanh();
  const float r3 = std::sqrt(3.0f);
  b.z = (r3 * t).matrix();
  b.dz = (r3 / 2 * (1 - t.square())).matrix();
  b.d2z = (-r3 / 2 * t * (1 - t.square())).matrix();
  b.x = normal(2, k, kBatch);
  b.prior_score = -u;
  b.probe = normal(3, d, kBatch).array().sign().matrix();
  b.target = normal(4, d, kBatch);
  return b;
}

void BM_TrainingStep(benchmark::State& state) {
  const auto kind = static_cast<ModelKind>(state.range(0));
  const auto objective = static_cast<Objective>(state.range(1));
  Architecture arch;
  arch.kind = kind;
  arch.theta_dim = static_cast<int>(state.range(2));
  arch.x_dim = static_cast<int>(state.range(3));
  arch.hidden = {128, 128, 128};
  arch.activation = Activation::silu;
  const int threads = static_cast<int>(state.range(4));
  const Eigen::Index block = state.range(5);
  ScoreNetwork<float> net(arch);
  net.initialize(1);
  const BatchInputs<float> batch = make_batch(arch.theta_dim, arch.x_dim);
  Vec<float> grad;
  tbb::global_control limit(tbb::global_control::max_allowed_parallelism, std::max(threads, 1));
  for (auto _ : state) {
    const float v = threads == 0 ? net.objective_sum(batch, objective, &grad)
                                 : static_cast<float>(net.objective_sum_parallel(batch, objective, &grad, block));
    benchmark::DoNotOptimize(v);
    benchmark::DoNotOptimize(grad.data());
  }
  state.SetItemsProcessed(state.iterations() * kBatch);
  state.counters["GFLOP/s"] = benchmark::Counter(
      fsbi::nn::objective_flops(arch, objective, kBatch, true) * 1e-9,
      benchmark::Counter::kIsIterationInvariantRate);
  state.counters["MFLOP/sample"] =
      fsbi::nn::objective_flops(arch, objective, kBatch, true) / kBatch * 1e-6;
  state.SetLabel(std::string(fsbi::nn::to_string(kind)) + " " +
                 std::string(fsbi::nn::to_string(objective)));
}

// Single-threaded objective_sum: rates per CPU time of the calling thread, which on a shared
// machine is closer to what the code does than wall time.
void SingleThreadArgs(benchmark::internal::Benchmark* b) {
  b->ArgNames({"kind", "obj", "d", "k", "threads", "block"});
  for (int kind : {0, 1})
    for (auto [d, k] : {std::pair{2, 2}, std::pair{5, 10}, std::pair{10, 10}})
      b->Args({kind, static_cast<int>(Objective::ibp), d, k, 0, 0});
  // The other objectives, for comparison.
  for (int kind : {0, 1})
    for (Objective o : {Objective::sliced, Objective::latent})
      b->Args({kind, static_cast<int>(o), 5, 10, 0, 0});
}
BENCHMARK(BM_TrainingStep)->Apply(SingleThreadArgs)->MinTime(0.5);

// objective_sum_parallel on 1 and 2 threads: wall-clock rates (worker threads' CPU time is not
// counted by the benchmark library).
void ParallelArgs(benchmark::internal::Benchmark* b) {
  b->ArgNames({"kind", "obj", "d", "k", "threads", "block"});
  for (int block : {64, 128})
    for (int kind : {0, 1})
      for (auto [d, k] : {std::pair{2, 2}, std::pair{5, 10}, std::pair{10, 10}})
        for (int threads : {1, 2}) b->Args({kind, static_cast<int>(Objective::ibp), d, k, threads, block});
}
BENCHMARK(BM_TrainingStep)->Name("BM_TrainingStepParallel")->Apply(ParallelArgs)->UseRealTime()->MinTime(0.5);

// The matrix-product peak on this machine at the shapes of a 128-wide layer, C = A·B with A
// 128×128 and B 128×cols: what the GFLOP/s above should be compared with. BM_MatmulPeak goes
// through nn::gemm, i.e. the back end the training step uses (fsbi::matrix_product_backend:
// libxsmm or Eigen's kernel), with each thread running its own product; BM_MatmulEigen is a
// plain Eigen product expression on one thread, for reference.
void BM_MatmulPeak(benchmark::State& state) {
  const Eigen::Index cols = state.range(0);
  const int threads = static_cast<int>(state.range(1));
  tbb::global_control limit(tbb::global_control::max_allowed_parallelism, threads);
  std::vector<Mat<float>> A, B, C;
  std::vector<fsbi::nn::GemmBuffers<float>> buffers(static_cast<std::size_t>(threads));
  for (int t = 0; t < threads; ++t) {
    A.push_back(normal(10 + t, 128, 128));
    B.push_back(normal(20 + t, 128, cols));
    C.emplace_back(128, cols);
  }
  auto product = [&](int t) {
    const auto k = static_cast<std::size_t>(t);
    fsbi::nn::gemm(buffers[k], C[k], fsbi::nn::op_n(A[k]), fsbi::nn::op_n(B[k]), false);
  };
  for (auto _ : state) {
    if (threads == 1) {
      product(0);
    } else {
      tbb::parallel_for(0, threads, product);
    }
    benchmark::DoNotOptimize(C[0].data());
  }
  state.counters["GFLOP/s"] = benchmark::Counter(2.0 * 128 * 128 * double(cols) * threads * 1e-9,
                                                 benchmark::Counter::kIsIterationInvariantRate);
  state.SetLabel(fsbi::matrix_product_backend);
}
void BM_MatmulEigen(benchmark::State& state) {
  const Eigen::Index cols = state.range(0);
  const Mat<float> A = normal(10, 128, 128), B = normal(20, 128, cols);
  Mat<float> C(128, cols);
  for (auto _ : state) {
    C.noalias() = A * B;
    benchmark::DoNotOptimize(C.data());
  }
  state.counters["GFLOP/s"] = benchmark::Counter(2.0 * 128 * 128 * double(cols) * 1e-9,
                                                 benchmark::Counter::kIsIterationInvariantRate);
}
BENCHMARK(BM_MatmulPeak)->ArgNames({"cols", "threads"})->ArgsProduct({{256, 768, 2816}, {1}})->MinTime(0.5);
BENCHMARK(BM_MatmulPeak)
    ->Name("BM_MatmulPeakParallel")
    ->ArgNames({"cols", "threads"})
    ->ArgsProduct({{256, 768, 2816}, {2}})
    ->UseRealTime()
    ->MinTime(0.5);
BENCHMARK(BM_MatmulEigen)->ArgNames({"cols"})->Arg(256)->Arg(768)->Arg(2816)->MinTime(0.5);

}  // namespace

BENCHMARK_MAIN();
