// Include first (before any Eigen header) in files whose Eigen code GCC 12 inlines into its
// AVX-512 intrinsics: GCC 12 then reports a false (maybe-)uninitialized `__Y` inside its own
// intrinsics headers under -march=native (GCC PR 105593, fixed in GCC 13). The location is the
// compiler's header, so only a pragma in force before the first Eigen include silences it.
#pragma once

#if defined(__GNUC__) && !defined(__clang__) && __GNUC__ < 13
#pragma GCC diagnostic ignored "-Wuninitialized"
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#endif
