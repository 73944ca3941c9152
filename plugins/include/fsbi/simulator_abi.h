/*
 * fsbi simulator plugin ABI — pure C11, stable, versioned.
 *
 * A simulator plugin is a shared library that exports exactly one symbol: the constant,
 * statically initialised object
 *
 *     const fsbi_plugin_entry fsbi_simulator_entry;
 *
 * Being data rather than a function, the host reads `abi_version` before calling anything and
 * rejects a plugin built for another ABI with a message instead of a crash.
 *
 * Rules of the boundary (they are what keeps plugins built with other compilers, standard
 * libraries or languages loadable):
 *  - only fixed-width integers, double, `const char*` (UTF-8, NUL-terminated) and fixed-size
 *    buffers cross it; no C++ types, no exceptions;
 *  - every call returns an fsbi_status; on failure the callee writes a one-line, human-readable
 *    explanation into the caller-provided fsbi_message;
 *  - shipped structs never change. New features are extensions looked up by a string id of the
 *    form "fsbi.<name>/<rev>" through get_extension(); a changed extension gets a new <rev>;
 *  - the host owns parallelism: a plugin must not start threads of its own. The host calls one
 *    instance from one thread at a time and different instances from different threads;
 *  - all randomness comes from the host's per-simulation streams (fsbi_rng), so a run is a pure
 *    function of (run seed, simulation index) whatever the thread count or batch size.
 *
 * Most authors do not write against this header directly: <fsbi/sdk.hpp> turns one C++
 * class into this ABI with one macro. See docs/plugin-guide.md.
 */
#ifndef FSBI_SIMULATOR_ABI_H
#define FSBI_SIMULATOR_ABI_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Incremented on any incompatible change of the structs below. The host loads a plugin only if
 * its entry's abi_version equals the host's FSBI_ABI_VERSION. */
#define FSBI_ABI_VERSION 1u

/* Name of the single exported symbol, for dlsym(). */
#define FSBI_ENTRY_SYMBOL "fsbi_simulator_entry"

/* ---- status and messages ------------------------------------------------------------------- */

typedef int32_t fsbi_status;
#define FSBI_OK 0                 /* success */
#define FSBI_ERROR 1              /* the call failed; the message says why */
#define FSBI_INVALID_OPTION 2     /* create(): an option is unknown or has a bad value */
#define FSBI_SIMULATION_FAILED 3  /* row status: this simulation failed (message says why) */

#define FSBI_MESSAGE_CAPACITY 512

/* Caller-allocated, callee-filled. Always NUL-terminated by the writer; truncated if longer. */
typedef struct fsbi_message {
  char text[FSBI_MESSAGE_CAPACITY];
} fsbi_message;

/* ---- host services ------------------------------------------------------------------------- */

#define FSBI_LOG_DEBUG 0
#define FSBI_LOG_INFO 1
#define FSBI_LOG_WARNING 2
#define FSBI_LOG_ERROR 3

/* Services the host hands to a plugin, so a plugin links against nothing of fsbi's.
 * Lives at least as long as every simulator created with it. */
typedef struct fsbi_host {
  uint32_t abi_version; /* = FSBI_ABI_VERSION of the host */
  void* host_data;      /* opaque to the plugin */
  /* Writes one line to fsbi's log. Thread-safe: may be called from any thread. */
  void (*log)(const struct fsbi_host* self, int32_t level, const char* message);
} fsbi_host;

/* A random stream owned by the host: one per simulation, a pure function of
 * (run seed, simulation index, attempt). Calls on one stream come from one thread. */
typedef struct fsbi_rng fsbi_rng;
typedef struct fsbi_rng_api {
  uint64_t (*next_u64)(fsbi_rng* self);                   /* uniform on [0, 2^64) */
  double (*uniform)(fsbi_rng* self);                      /* uniform on the open (0, 1) */
  double (*normal)(fsbi_rng* self);                       /* standard normal */
  void (*fill_uniform)(fsbi_rng* self, double* out, uint64_t n); /* n x uniform() */
  void (*fill_normal)(fsbi_rng* self, double* out, uint64_t n);  /* n x normal() */
} fsbi_rng_api;
struct fsbi_rng {
  const fsbi_rng_api* api;
  void* state; /* opaque to the plugin */
};

/* ---- the configured simulator -------------------------------------------------------------- */

/* A simulator option as given by the user (`--sim-opt key=value`). */
typedef struct fsbi_option {
  const char* key;
  const char* value;
} fsbi_option;

/* Metadata of one configuration of a simulator (dimensions may depend on the options).
 * Owned by the simulator; valid until its destroy(). */
typedef struct fsbi_simulator_info {
  uint32_t parameter_dim;               /* d: length of θ */
  uint32_t data_dim;                    /* k: length of x */
  const char* const* parameter_names;   /* d names */
  const char* const* data_names;        /* k names */
  const char* default_prior;            /* prior spec (docs/priors.md), or NULL for none */
} fsbi_simulator_info;

typedef struct fsbi_simulator fsbi_simulator;
struct fsbi_simulator {
  void* impl; /* opaque to the host */

  /* Metadata. Any thread; the pointer stays valid until destroy(). */
  const fsbi_simulator_info* (*info)(const fsbi_simulator* self);

  /* Creates a per-thread instance (scratch state). Any thread; must be thread-safe. */
  fsbi_status (*create_instance)(const fsbi_simulator* self, void** instance,
                                 fsbi_message* error);
  /* Destroys an instance made by create_instance. Any thread; never concurrently with a
   * simulate() on the same instance. */
  void (*destroy_instance)(const fsbi_simulator* self, void* instance);

  /* Simulates n data sets.
   *   theta      n x d, row-major, read-only
   *   x          n x k, row-major, written by the plugin
   *   rng        n streams; rng[i] is the stream of row i
   *   row_status n entries, written: FSBI_OK or FSBI_SIMULATION_FAILED per row
   *   error      message of the first failed row (or of the whole call)
   * Returns FSBI_OK when the call ran (individual rows may still have failed), FSBI_ERROR when
   * the whole batch failed. One thread per instance at a time; instances run concurrently. */
  fsbi_status (*simulate)(const fsbi_simulator* self, void* instance, uint64_t n,
                          const double* theta, double* x, fsbi_rng* rng,
                          fsbi_status* row_status, fsbi_message* error);

  /* Optional capability by id ("fsbi.<name>/<rev>"), or NULL if not supported. Any thread. */
  const void* (*get_extension)(const fsbi_simulator* self, const char* id);

  /* Frees the simulator. Called once, after every instance is destroyed. */
  void (*destroy)(fsbi_simulator* self);
};

/* ---- the exported entry -------------------------------------------------------------------- */

typedef struct fsbi_plugin_entry {
  uint32_t abi_version;     /* FSBI_ABI_VERSION the plugin was built for. Always first. */
  const char* name;         /* simulator name, e.g. "two_moons": [a-z0-9_]+ */
  const char* version;      /* the simulator's own version, e.g. "1.0.0" */
  const char* description;  /* one line */
  const char* options_help; /* accepted options, one per line ("dim=INT  ..."), or NULL */

  /* Configures the simulator with the user's options. Validates every option; an unknown key
   * or a bad value returns FSBI_INVALID_OPTION with a message naming the option and the fix.
   * Called from the host's main thread. */
  fsbi_status (*create)(const fsbi_host* host, const fsbi_option* options, uint32_t n_options,
                        fsbi_simulator** out, fsbi_message* error);
} fsbi_plugin_entry;

/* ---- extensions ---------------------------------------------------------------------------- */

/* "fsbi.likelihood-score/1": the analytic score ∇θ log p(x|θ), for simulators that know it
 * (used by tests and benchmarks to measure a learned score). */
#define FSBI_EXT_LIKELIHOOD_SCORE "fsbi.likelihood-score/1"
typedef struct fsbi_ext_likelihood_score {
  /* theta n x d, x n x k, score n x d (written). Any thread. */
  fsbi_status (*score)(const fsbi_simulator* self, uint64_t n, const double* theta,
                       const double* x, double* score, fsbi_message* error);
} fsbi_ext_likelihood_score;

#ifdef __cplusplus
} /* extern "C" */
#endif

#endif /* FSBI_SIMULATOR_ABI_H */
