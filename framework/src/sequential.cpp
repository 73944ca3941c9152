// Sequential rounds (docs/sequential.md). Data flow per round r:
//   proposal q_r (r = 1: the prior; r > 1: mixture fitted to round r−1's posterior samples)
//   → <prefix>.round<r>.simulations.h5 (θ ~ q_r, through the simulation engine)
//   → <prefix>.round<r>.pooled.h5 (every round's pairs so far; r = 1: the round's own file)
//   → <prefix>.round<r>.model.h5 (trained with ∇ log Σ_s w_s q_s in place of the prior's score).
#include "fsbi/sequential.hpp"

#include "fsbi/proposal.hpp"
#include "fsbi/transform.hpp"
#include "proposal_file.hpp"
#include "sequential_file.hpp"
#include "model_file.hpp"
#include "simulation_file.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <filesystem>

namespace fsbi {

namespace fs = std::filesystem;

namespace {

std::string stage_file(const std::string& prefix, int round, const char* stage) {
  return fmt::format("{}.round{}.{}.h5", prefix, round, stage);
}

// Round 1 uses the run seed itself, so `--rounds 1` is exactly the amortised run; later rounds
// get their own seeds (their slot indices restart at 0, and the simulator's randomness is keyed
// by seed and slot: the same seed would repeat round 1's noise).
std::uint64_t round_seed(std::uint64_t seed, int round) {
  return round == 1 ? seed : seed + 0x9E3779B97F4A7C15ULL * (0x5E9000ULL + static_cast<std::uint64_t>(round));
}

double seconds_since(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

// Writes every round's pairs so far as one complete simulation file (atomically) whose prior is
// the run's prior and whose prior_source marks it as pooled sequential data.
void write_pooled(const std::string& path, const std::vector<SimulationData>& rounds, const Simulator& sim,
                  const Prior& prior, const std::string& prior_source, const SimulationSettings& st) {
  std::uint64_t total = 0;
  for (const auto& r : rounds) total += static_cast<std::uint64_t>(r.theta.rows());
  RunDescription desc = describe_run(
      sim, prior,
      fmt::format("{} 1-{} (round 1 from the prior, {}; later rounds from proposals, see /rounds)",
                  sequential_prior_source, rounds.size(), prior_source),
      st);
  desc.requested = total;
  const std::string partial = path + ".partial";
  std::error_code ec;
  fs::remove(partial, ec);
  {
    auto w = SimulationWriter::create(partial, desc, 1);
    std::int64_t next = 0;
    for (const auto& r : rounds) {
      const auto n = static_cast<std::size_t>(r.theta.rows());
      std::vector<std::int64_t> index(n);
      for (auto& i : index) i = next++;
      const std::vector<std::int32_t> attempt(n, 0);
      w->append({r.theta.data(), static_cast<std::size_t>(r.theta.size())},
                {r.x.data(), static_cast<std::size_t>(r.x.size())}, index, attempt);
    }
    w->set_next_index(total);
    w->finish();
  }
  fs::rename(partial, path);
}

}  // namespace

std::vector<std::uint64_t> round_budgets(std::uint64_t total, const SequentialSettings& s) {
  if (s.rounds < 1 || s.rounds > max_sequential_rounds)
    throw SequentialError(fmt::format("--rounds {}: give 1 (amortised) to {}", s.rounds, max_sequential_rounds));
  if (!(s.first_round_fraction >= 0 && s.first_round_fraction < 1))
    throw SequentialError(fmt::format("--first-round-fraction {}: give a value in [0, 1) (0: equal rounds)",
                                      s.first_round_fraction));
  const auto R = static_cast<std::uint64_t>(s.rounds);
  std::vector<std::uint64_t> n(R);
  if (s.first_round_fraction == 0 || R == 1) {
    for (auto& v : n) v = total / R;
    n[0] += total % R;
  } else {
    n[0] = static_cast<std::uint64_t>(std::llround(s.first_round_fraction * static_cast<double>(total)));
    const std::uint64_t rest = total - std::min(total, n[0]);
    for (std::uint64_t r = 1; r < R; ++r) n[r] = rest / (R - 1);
    n[1] += rest % (R - 1);
  }
  for (std::uint64_t r = 0; r < R; ++r)
    if (n[r] < min_round_simulations)
      throw SequentialError(fmt::format("{} simulations over {} rounds leave round {} with {} (at least {} each): "
                                        "raise --num-simulations or lower --rounds",
                                        total, R, r + 1, n[r], min_round_simulations));
  return n;
}

std::vector<std::string> sequential_stage_files(const std::string& prefix, int rounds) {
  std::vector<std::string> out;
  for (int r = 1; r <= rounds; ++r)
    for (const char* s : {"proposal", "simulations", "pooled", "model"}) out.push_back(stage_file(prefix, r, s));
  return out;
}

SequentialReport run_sequential(const SequentialInputs& in, const std::string& prefix) {
  if (!in.simulator || !in.prior) throw SequentialError("run_sequential: no simulator or prior given");
  const Simulator& sim = *in.simulator;
  const Prior& prior = *in.prior;
  const SequentialSettings& sq = in.sequential;
  const int R = sq.rounds;
  const std::vector<std::uint64_t> budget = round_budgets(in.simulation.num_simulations, sq);
  if (sq.components < 1) throw SequentialError("--proposal-components must be at least 1");
  if (!(std::isfinite(sq.widen) && sq.widen > 0)) throw SequentialError("--proposal-widen must be positive");
  if (!(sq.defensive_fraction > 0 && sq.defensive_fraction <= 1))
    throw SequentialError("--defensive-fraction must be in (0, 1]: the prior's share keeps the proposal "
                          "positive wherever the prior is");
  if (sq.proposal_samples < 100) throw SequentialError("--proposal-samples must be at least 100");
  if (!(sq.truncated_share >= 0 && sq.truncated_share <= 1))
    throw SequentialError(fmt::format("--truncated-share {}: give a value in [0, 1] (0: the mixture alone, 1: the "
                                      "truncated prior alone)",
                                      sq.truncated_share));
  if (!(sq.truncation_quantile >= 0 && sq.truncation_quantile < 1))
    throw SequentialError(fmt::format("--truncation-quantile {}: give a value in [0, 1)", sq.truncation_quantile));
  if (in.observations.rows() < 1 || in.observations.cols() != sim.data_dim())
    throw SequentialError(fmt::format("sequential rounds need observations with {} values (simulator '{}')",
                                      sim.data_dim(), sim.name()));
  if (R > 1 && in.training.objective == "latent")
    throw SequentialError("the latent objective cannot train on pairs drawn from proposals: use --objective "
                          "ibp or sliced with --rounds");
  if (R > 1 && !in.training.unconstrained)
    throw SequentialError("sequential rounds need training in the unconstrained coordinates");
  const auto log = [&](const std::string& s) {
    if (in.log) in.log(s);
  };
  const ParameterTransform transform = ParameterTransform::for_prior(prior);
  const std::uint64_t seed = in.simulation.seed;
  std::error_code ec;

  SequentialReport report;
  std::vector<RoundProposal> proposals;
  std::vector<std::uint64_t> counts;
  std::vector<SimulationData> pairs;
  // The density the pooled θ's come from — the mixture of every round's proposal so far, weighted
  // by its pairs. It trains round r's model, weights the starts of the posterior that fits round
  // r + 1's proposal, and goes into the report; null while only the prior has been used.
  std::shared_ptr<const PooledProposal> pooled_proposal;
  for (int r = 1; r <= R; ++r) {
    RoundReport rr;
    rr.round = r;
    rr.simulations = budget[static_cast<std::size_t>(r - 1)];
    const std::string tag = fmt::format("round {}/{}", r, R);

    // The proposal.
    std::optional<GaussianMixture> mixture;
    std::optional<PriorTruncation> truncation;
    if (r > 1) {
      const std::string pfile = stage_file(prefix, r, "proposal");
      const auto t0 = std::chrono::steady_clock::now();
      if (in.resume && fs::exists(pfile, ec)) {
        log(fmt::format("{} proposal: reusing {}", tag, pfile));
        double stored_alpha = 0;
        mixture = read_proposal_file(pfile, &stored_alpha, &truncation);
        // The rounds' pairs were drawn with the stored fraction and shape: training with others
        // would use the wrong density.
        if (stored_alpha != sq.defensive_fraction)
          throw SequentialError(fmt::format("{} was made with --defensive-fraction {}, not {}: resume with the "
                                            "original settings, or delete the run's stage files to start over",
                                            pfile, stored_alpha, sq.defensive_fraction));
        // (The file holds s = 1 − share, computed as below, so equal settings compare equal.)
        const bool same_shape = truncation ? sq.truncated_share > 0 && truncation->mixture_share == 1.0 - sq.truncated_share
                                           : sq.truncated_share == 0;
        if (!same_shape)
          throw SequentialError(fmt::format("{} was made with --truncated-share {:g}, not {:g}: resume with the "
                                            "original settings, or delete the run's stage files to start over",
                                            pfile, truncation ? 1.0 - truncation->mixture_share : 0.0,
                                            sq.truncated_share));
      } else {
        log(fmt::format("{} [3/3] sampling {} draws of round {}'s posterior to fit the proposal", tag,
                        sq.proposal_samples, r - 1));
        const Posterior post = Posterior::load(stage_file(prefix, r - 1, "model"));
        PosteriorOptions po = in.posterior;
        po.sampler.seed = round_seed(seed, r);
        po.sampler.threads = in.simulation.threads;
        // Nearest starts from the pooled pairs so far, weighted back to the prior.
        po.training_proposal = pooled_proposal;
        po.sampler.method = in.sampler_method == "auto"
                                ? (post.model().is_energy() ? SamplerMethod::mala : SamplerMethod::ula)
                                : parse_sampler_method(in.sampler_method);
        const PosteriorDraws draws = post.sample(in.observations, sq.proposal_samples, po);
        const Eigen::MatrixXd u_all = transform.to_unconstrained(draws.theta.transpose());
        std::vector<Eigen::Index> keep;
        for (Eigen::Index j = 0; j < u_all.cols(); ++j)
          if (u_all.col(j).allFinite()) keep.push_back(j);
        MixtureFitSettings fs_settings;
        fs_settings.components = sq.components;
        fs_settings.seed = round_seed(seed, r);
        mixture = fit_gaussian_mixture(u_all(Eigen::all, keep), fs_settings).widened(sq.widen);
        if (sq.truncated_share > 0) {
          Eigen::RowVectorXd lg = mixture->log_density(u_all(Eigen::all, keep));
          std::sort(lg.begin(), lg.end());
          const auto at = static_cast<Eigen::Index>(sq.truncation_quantile * static_cast<double>(lg.size() - 1));
          truncation = PriorTruncation{lg[at], 1.0, 64, 1.0 - sq.truncated_share};
        }
        write_proposal_file(pfile, *mixture, sq.defensive_fraction, truncation);
      }
      rr.fit_seconds = seconds_since(t0);
    }
    proposals.push_back(mixture ? RoundProposal(in.prior, *mixture, sq.defensive_fraction, truncation)
                                : RoundProposal(in.prior));
    if (r == 1) {
      rr.proposal = "the prior " + prior.spec();
    } else if (truncation) {
      const double a = sq.defensive_fraction, s = truncation->mixture_share;
      rr.proposal = fmt::format("{:g}·prior truncated to the region of a {}-component mixture widened ×{:g} (Z = {:.3g}) "
                                "+ {:g}·that mixture + {:g}·prior",
                                (1 - a) * (1 - s), mixture->components(), sq.widen,
                                std::exp(proposals.back().truncation_log_mass()), (1 - a) * s, a);
    } else {
      rr.proposal = fmt::format("{:g}·mixture({} components, widened ×{:g}) + {:g}·prior", 1 - sq.defensive_fraction,
                                mixture->components(), sq.widen, sq.defensive_fraction);
    }

    // The simulations.
    const std::string sfile = stage_file(prefix, r, "simulations");
    {
      const auto t0 = std::chrono::steady_clock::now();
      if (in.resume && fs::exists(sfile, ec)) {
        log(fmt::format("{} [1/3] simulations: reusing {}", tag, sfile));
      } else {
        log(fmt::format("{} [1/3] simulating {} × {} from {}", tag, rr.simulations, sim.name(), rr.proposal));
        SimulationSettings st = in.simulation;
        st.num_simulations = rr.simulations;
        st.seed = round_seed(seed, r);
        st.resume = in.resume && fs::exists(partial_path(sfile), ec);
        st.overwrite = true;
        if (r == 1) {
          run_simulations(sim, prior, in.prior_source, st, sfile);
        } else {
          const ProposalPrior as_prior(proposals.back(), r);
          run_simulations(sim, as_prior, fmt::format("sequential round {} proposal", r), st, sfile);
        }
      }
      rr.simulate_seconds = seconds_since(t0);
    }
    pairs.push_back(read_simulations(sfile));
    rr.rows = static_cast<std::uint64_t>(pairs.back().theta.rows());
    if (rr.rows == 0)
      throw SequentialError(fmt::format("round {}: every simulation failed; nothing to train on", r));
    counts.push_back(rr.rows);
    if (r > 1) pooled_proposal = std::make_shared<const PooledProposal>(proposals, counts);

    // The pooled pairs and the model.
    const std::string pooled = r == 1 ? sfile : stage_file(prefix, r, "pooled");
    if (r > 1 && !(in.resume && fs::exists(pooled, ec))) write_pooled(pooled, pairs, sim, prior, in.prior_source, in.simulation);
    const std::string mfile = stage_file(prefix, r, "model");
    {
      const auto t0 = std::chrono::steady_clock::now();
      if (in.resume && fs::exists(mfile, ec)) {
        log(fmt::format("{} [2/3] model: reusing {}", tag, mfile));
      } else {
        TrainingSettings ts = in.training;
        ts.resume = in.resume && fs::exists(mfile + ".checkpoint", ec);
        ts.overwrite = true;
        if (r == 1) {
          log(fmt::format("{} [2/3] training the {} score model on {} pairs from the prior", tag, ts.model_kind,
                          rr.rows));
          train_score_model(sfile, ts, mfile);
        } else {
          const SimulationData data = read_simulations(pooled);
          const PooledProposal& q = *pooled_proposal;
          TrainingProposal tp;
          // The description names every round's proposal by fingerprint, so a checkpoint left by
          // training with other proposals is not resumed.
          tp.description = fmt::format("sequential rounds 1-{}: {}; inputs standardised on round 1", r, q.description());
          tp.score_u = [&q](const Eigen::MatrixXd& u) { return q.score_u(u); };
          // Inputs standardised on round 1's prior pairs (the pooled file holds them first): the
          // concentrated later rounds would otherwise shrink the scale, and the network would
          // meet most of the prior's support, where the posterior is still evaluated, many
          // standard units outside its data (docs/sequential.md, "Standardisation").
          tp.standardize_rows = static_cast<Eigen::Index>(counts.front());
          log(fmt::format("{} [2/3] training the {} score model on {} pooled pairs", tag, ts.model_kind,
                          data.theta.rows()));
          train_score_model(data, pooled, ts, mfile, &tp);
        }
      }
      rr.train_seconds = seconds_since(t0);
    }
    report.model = mfile;
    report.pooled = pooled;
    report.rounds.push_back(rr);
  }
  report.proposal = pooled_proposal;
  return report;
}

void write_rounds(h5::File& run_file, const std::string& prefix, const SequentialReport& report) {
  h5::Group rounds = run_file.create_group("rounds");
  rounds.set_attribute("rounds", static_cast<std::int64_t>(report.rounds.size()));
  std::int64_t first_row = 0;
  for (const RoundReport& rr : report.rounds) {
    h5::Group g = rounds.create_group(fmt::format("round_{}", rr.round));
    g.set_attribute("num_requested", static_cast<std::int64_t>(rr.simulations));
    g.set_attribute("num_rows", static_cast<std::int64_t>(rr.rows));
    // The round's pairs are rows [first_row, first_row + num_rows) of /simulations.
    g.set_attribute("first_row", first_row);
    g.set_attribute("proposal_description", rr.proposal);
    first_row += static_cast<std::int64_t>(rr.rows);
    if (rr.round > 1) {
      double defensive = 0;
      std::optional<PriorTruncation> truncation;
      const GaussianMixture mix = read_proposal_file(stage_file(prefix, rr.round, "proposal"), &defensive, &truncation);
      h5::Group p = g.create_group("proposal");
      p.set_attribute("defensive_fraction", defensive);
      if (truncation) write_prior_truncation(p, *truncation);
      write_gaussian_mixture(p, mix);
    }
    write_model_group(g, read_model(stage_file(prefix, rr.round, "model")), "model");
  }
}

}  // namespace fsbi
