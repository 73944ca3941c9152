// C (+)= op(A)·op(B) for the score networks' batched products.
//
// Two back ends, chosen at build time:
//
// - libxsmm (Debian's libxsmm-dev, FSBI_NN_LIBXSMM): just-in-time generated kernels for the
//   CPU at hand, called on tiles of at most 128 rows × 64 columns × 256 depth that work on the
//   operands where they lie (no packing). On the 2-core AVX-512 VM they run the 128 × 128 ×
//   (6·64) products of a training step at ~195 GFLOP/s per core against ~120 for Eigen's kernel,
//   and at 115 against 84 on a Zen 4 host, whose AVX-512 units are half width (bench/README.md,
//   "Training step throughput"). libxsmm 1.17 generates no kernel with a transposed
//   left operand, so op(A) = Aᵀ (always a weight matrix here, at most a few hundred square) is
//   first copied transposed into the caller's buffer — a negligible cost next to the product.
// - Eigen's own GEMM kernel, with packing buffers that persist in the caller's workspace. For
//   dynamic sizes every Eigen product expression allocates its packing buffers (kc·nc floats,
//   ~1.5 MB for a 128 × 2816 tangent block) on the heap and frees them on return; above glibc's
//   mmap threshold each call then page-faults the buffer in again, ~25 % of a training step
//   (docs/score-network.md, "Performance"). Eigen's internal GEMM driver takes the buffers from a
//   level3_blocking object, so we hand it one whose buffers live as long as the workspace. This
//   uses Eigen's internal (undocumented, but unchanged through the 3.4 series) API; any other
//   Eigen version falls back to the ordinary product expression.
//
// Either back end computes each element of C with a fixed order of operations for given shapes,
// so results do not depend on the thread count (each thread owns its workspace).
#pragma once

#include <Eigen/Core>

#include <algorithm>
#include <type_traits>

#if defined(FSBI_NN_LIBXSMM)
#include <libxsmm.h>
#endif

namespace fsbi::nn {

// A matrix operand: its data, storage (column-major with outer stride ld), and whether it
// enters the product transposed. rows/cols are of op(X).
template <class T>
struct GemmOperand {
  const T* data;
  Eigen::Index rows, cols, ld;
  bool transposed;
};

// Plain operand (a Matrix, Map or column block: contiguous columns).
template <class M>
GemmOperand<typename M::Scalar> op_n(const M& m) {
  return {m.data(), m.rows(), m.cols(), m.outerStride(), false};
}
// Transposed operand.
template <class M>
GemmOperand<typename M::Scalar> op_t(const M& m) {
  return {m.data(), m.cols(), m.rows(), m.outerStride(), true};
}

#if EIGEN_VERSION_AT_LEAST(3, 4, 0) && !EIGEN_VERSION_AT_LEAST(3, 4, 90)
#define FSBI_NN_EIGEN_INTERNAL_GEMM 1

template <class T>
class EigenGemmBuffers : public Eigen::internal::level3_blocking<T, T> {
 public:
  // Block sizes as Eigen's own product would choose them, buffers grown (never shrunk) to fit.
  void prepare(Eigen::Index rows, Eigen::Index cols, Eigen::Index depth) {
    this->m_mc = rows;
    this->m_nc = cols;
    this->m_kc = depth;
    Eigen::internal::computeProductBlockingSizes<T, T, 1>(this->m_kc, this->m_mc, this->m_nc, Eigen::Index(1));
    const Eigen::Index a = this->m_mc * this->m_kc, b = this->m_kc * this->m_nc;
    if (a_.size() < a) a_.resize(a);
    if (b_.size() < b) b_.resize(b);
    this->m_blockA = a_.data();
    this->m_blockB = b_.data();
  }

 private:
  Eigen::Matrix<T, Eigen::Dynamic, 1> a_, b_;  // aligned to EIGEN_DEFAULT_ALIGN_BYTES
};

// C = op(A)·op(B) (accumulate = false) or C += op(A)·op(B). C: a column-major block with unit
// inner stride; must not alias A or B.
template <class T, class Dst>
void eigen_gemm(EigenGemmBuffers<T>& buffers, Dst&& C, const GemmOperand<T>& A, const GemmOperand<T>& B,
                bool accumulate) {
  using Eigen::ColMajor;
  using Eigen::RowMajor;
  using Eigen::Index;
  eigen_assert(C.rows() == A.rows && C.cols() == B.cols && A.cols == B.rows);
  if (!accumulate) C.setZero();
  const Index m = A.rows, n = B.cols, k = A.cols;
  if (m == 0 || n == 0 || k == 0) return;
  buffers.prepare(m, n, k);
  T* c = C.data();
  const Index ldc = C.outerStride();
  auto run = [&](auto lhs_order, auto rhs_order) {
    Eigen::internal::general_matrix_matrix_product<Index, T, decltype(lhs_order)::value, false, T,
                                                   decltype(rhs_order)::value, false, ColMajor, 1>::
        run(m, n, k, A.data, A.ld, B.data, B.ld, c, 1, ldc, T(1), buffers, nullptr);
  };
  using CM = std::integral_constant<int, ColMajor>;
  using RM = std::integral_constant<int, RowMajor>;
  if (!A.transposed && !B.transposed) run(CM{}, CM{});
  else if (A.transposed && !B.transposed) run(RM{}, CM{});
  else if (!A.transposed && B.transposed) run(CM{}, RM{});
  else run(RM{}, RM{});
}

#else

template <class T>
class EigenGemmBuffers {};

template <class T, class Dst>
void eigen_gemm(EigenGemmBuffers<T>&, Dst&& C, const GemmOperand<T>& A, const GemmOperand<T>& B, bool accumulate) {
  using Eigen::Index;
  using CMap = Eigen::Map<const Eigen::Matrix<T, Eigen::Dynamic, Eigen::Dynamic>, 0, Eigen::OuterStride<>>;
  const CMap a(A.data, A.transposed ? A.cols : A.rows, A.transposed ? A.rows : A.cols, Eigen::OuterStride<>(A.ld));
  const CMap b(B.data, B.transposed ? B.cols : B.rows, B.transposed ? B.rows : B.cols, Eigen::OuterStride<>(B.ld));
  if (!accumulate) C.setZero();
  if (A.transposed && B.transposed) C.noalias() += a.transpose() * b.transpose();
  else if (A.transposed) C.noalias() += a.transpose() * b;
  else if (B.transposed) C.noalias() += a * b.transpose();
  else C.noalias() += a * b;
}

#endif

// Per-workspace state of the products: Eigen's packing buffers and (libxsmm) the transposed copy
// of a transposed left operand.
template <class T>
struct GemmBuffers {
  EigenGemmBuffers<T> eigen;
  Eigen::Matrix<T, Eigen::Dynamic, Eigen::Dynamic> transposed_lhs;
};

#if defined(FSBI_NN_LIBXSMM)

namespace detail {
// C (+)= op(A)·B or op(A)·Bᵀ over tiles. a: op(A) column-major with leading dimension lda.
// Returns false (C untouched) if libxsmm has no kernel for a tile shape.
template <class T>
bool xsmm_gemm(T* c, Eigen::Index ldc, Eigen::Index m, Eigen::Index n, Eigen::Index k, const T* a,
               Eigen::Index lda, const GemmOperand<T>& B, bool accumulate) {
  using Eigen::Index;
  using Kernel = libxsmm_mmfunction<T>;
  constexpr Index mt_max = 128, nt_max = 64, kt_max = 256;
  const int flags = B.transposed ? LIBXSMM_GEMM_FLAG_TRANS_B : LIBXSMM_GEMM_FLAG_NONE;
  // Tile extents along each dimension: [0] the full tile, [1] the partial last one (0: none).
  const Index ms[2] = {std::min(m, mt_max), m > mt_max ? m % mt_max : 0};
  const Index ns[2] = {std::min(n, nt_max), n > nt_max ? n % nt_max : 0};
  const Index ks[2] = {std::min(k, kt_max), k > kt_max ? k % kt_max : 0};
  // The kernels of every tile shape, found before C is touched so that a missing one can still
  // fall back to Eigen: `first` for the first depth tile (β = 0 unless accumulating), `rest`
  // (β = 1) after it.
  Kernel first[2][2][2], rest[2][2][2];
  for (int i = 0; i < 2; ++i)
    for (int j = 0; j < 2; ++j)
      for (int l = 0; l < 2; ++l) {
        if (ms[i] == 0 || ns[j] == 0 || ks[l] == 0) continue;
        auto make = [&](T beta) {
          return Kernel(flags, static_cast<libxsmm_blasint>(ms[i]), static_cast<libxsmm_blasint>(ns[j]),
                        static_cast<libxsmm_blasint>(ks[l]), static_cast<libxsmm_blasint>(lda),
                        static_cast<libxsmm_blasint>(B.ld), static_cast<libxsmm_blasint>(ldc), T(1), beta);
        };
        rest[i][j][l] = make(T(1));
        first[i][j][l] = accumulate ? rest[i][j][l] : make(T(0));
        if (!first[i][j][l] || !rest[i][j][l]) return false;
      }
  for (Index j0 = 0; j0 < n; j0 += nt_max) {
    const int j = j0 > 0 && n - j0 < nt_max ? 1 : 0;  // the partial last tile
    for (Index i0 = 0; i0 < m; i0 += mt_max) {
      const int i = i0 > 0 && m - i0 < mt_max ? 1 : 0;
      for (Index k0 = 0; k0 < k; k0 += kt_max) {
        const int l = k0 > 0 && k - k0 < kt_max ? 1 : 0;
        // op(B)'s block (k0.., j0..): B is k × n (ld B.ld), or n × k when transposed.
        const T* b = B.transposed ? B.data + j0 + k0 * B.ld : B.data + k0 + j0 * B.ld;
        (k0 == 0 ? first : rest)[i][j][l](a + i0 + k0 * lda, b, c + i0 + j0 * ldc);
      }
    }
  }
  return true;
}
}  // namespace detail
#endif

// C = op(A)·op(B) (accumulate = false) or C += op(A)·op(B). C: a column-major block with unit
// inner stride; must not alias A or B.
template <class T, class Dst>
void gemm(GemmBuffers<T>& buffers, Dst&& C, const GemmOperand<T>& A, const GemmOperand<T>& B,
          bool accumulate) {
  eigen_assert(C.rows() == A.rows && C.cols() == B.cols && A.cols == B.rows);
#if defined(FSBI_NN_LIBXSMM)
  const Eigen::Index m = A.rows, n = B.cols, k = A.cols;
  if (m == 0 || n == 0) return;
  if (k == 0) {
    if (!accumulate) C.setZero();
    return;
  }
  const T* a = A.data;
  Eigen::Index lda = A.ld;
  if (A.transposed) {
    using Stored = Eigen::Map<const Eigen::Matrix<T, Eigen::Dynamic, Eigen::Dynamic>, 0, Eigen::OuterStride<>>;
    buffers.transposed_lhs = Stored(A.data, k, m, Eigen::OuterStride<>(A.ld)).transpose();
    a = buffers.transposed_lhs.data();
    lda = m;
  }
  if (detail::xsmm_gemm(C.data(), C.outerStride(), m, n, k, a, lda, B, accumulate)) return;
#endif
  eigen_gemm(buffers.eigen, std::forward<Dst>(C), A, B, accumulate);
}

}  // namespace fsbi::nn
