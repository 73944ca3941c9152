// nn::gemm against Eigen's own product, for every operand layout, with and without accumulation,
// at shapes that exercise the libxsmm back end's partial tiles (rows > 128, columns > 64,
// depth > 256, and column blocks of larger matrices) and the degenerate ones.
#include "gcc12_avx512_warnings.hpp"  // first: before any Eigen header
#include "nn/gemm.hpp"

#include <gtest/gtest.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <tuple>

namespace fsbi::nn {
namespace {

template <class T>
using M = Eigen::Matrix<T, Eigen::Dynamic, Eigen::Dynamic>;

template <class T>
void check_all_layouts(Eigen::Index m, Eigen::Index n, Eigen::Index k, double rel_tol) {
  std::srand(7);  // Eigen's Random uses std::rand
  GemmBuffers<T> buffers;
  // Operands stored with an extra leading row and column so that the blocks used have an outer
  // stride larger than their row count, as the workspace's column blocks do.
  const M<T> a_n = M<T>::Random(m + 3, k + 1), a_t = M<T>::Random(k + 3, m + 1);
  const M<T> b_n = M<T>::Random(k + 3, n + 1), b_t = M<T>::Random(n + 3, k + 1);
  const auto A_n = a_n.block(1, 1, m, k), A_t = a_t.block(1, 1, k, m);
  const auto B_n = b_n.block(1, 1, k, n), B_t = b_t.block(1, 1, n, k);
  double worst = 0;
  for (bool ta : {false, true}) {
    for (bool tb : {false, true}) {
      const M<T> opA = ta ? M<T>(A_t.transpose()) : M<T>(A_n);
      const M<T> opB = tb ? M<T>(B_t.transpose()) : M<T>(B_n);
      const M<T> expected_product = opA * opB;
      for (bool accumulate : {false, true}) {
        M<T> storage = M<T>::Random(m + 2, n + 1);
        const M<T> storage_before = storage;
        auto C = storage.block(1, 0, m, n);
        const M<T> before = C;
        const GemmOperand<T> A = ta ? op_t(A_t) : op_n(A_n);
        const GemmOperand<T> B = tb ? op_t(B_t) : op_n(B_n);
        gemm(buffers, C, A, B, accumulate);
        const M<T> expected = accumulate ? M<T>(before + expected_product) : expected_product;
        double err = 0;  // max-norm error relative to max(1, max |expected|); 0 for an empty C
        if (m * n > 0) {
          const double scale = std::max<double>(1.0, static_cast<double>(expected.cwiseAbs().maxCoeff()));
          err = static_cast<double>((M<T>(C) - expected).cwiseAbs().maxCoeff()) / scale;
        }
        worst = std::max(worst, err);
        EXPECT_LE(err, rel_tol) << m << " x " << n << " x " << k << (ta ? " A^T" : " A") << (tb ? " B^T" : " B")
                                << (accumulate ? " accumulate" : "");
        // The storage around the block is untouched: the rows above and below, the column after.
        EXPECT_EQ(storage.row(0), storage_before.row(0));
        EXPECT_EQ(storage.row(m + 1), storage_before.row(m + 1));
        EXPECT_EQ(storage.col(n), storage_before.col(n));
      }
    }
  }
  std::printf("gemm %s %ld x %ld x %ld: worst relative error %.2e (bound %.0e)\n", sizeof(T) == 4 ? "float" : "double",
              static_cast<long>(m), static_cast<long>(n), static_cast<long>(k), worst, rel_tol);
}

class GemmShapes : public ::testing::TestWithParam<std::tuple<int, int, int>> {};

TEST_P(GemmShapes, MatchesEigensProductInEveryLayout) {
  const auto [m, n, k] = GetParam();
  // float: k terms of size ≤ 1, each rounded to 2^-24 relative, against a max-norm scale ≥ 1.
  check_all_layouts<float>(m, n, k, 4e-6 * std::max(1, k / 16));
  check_all_layouts<double>(m, n, k, 1e-13 * std::max(1, k / 16));
}

INSTANTIATE_TEST_SUITE_P(Tiles, GemmShapes,
                         ::testing::Values(std::tuple{1, 1, 1}, std::tuple{5, 3, 15}, std::tuple{128, 64, 128},
                                           std::tuple{130, 70, 300}, std::tuple{256, 129, 257},
                                           std::tuple{17, 200, 600}, std::tuple{3, 0, 4}, std::tuple{4, 3, 0}));

}  // namespace
}  // namespace fsbi::nn
