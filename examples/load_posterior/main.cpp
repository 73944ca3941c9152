// Loads a posterior (a run file from `fsbi run`, or a model file) and draws samples for an
// observation:   load_posterior run.h5 observation.csv [num_samples]
#include <fsbi/posterior.hpp>

#include <cstdio>
#include <cstdlib>

int main(int argc, char** argv) {
  if (argc < 3) return std::fprintf(stderr, "usage: %s RUN.h5 OBSERVATION.csv [N]\n", argv[0]), 2;
  try {
    auto post = fsbi::Posterior::load(argv[1]);
    auto obs = fsbi::read_table(argv[2], post.model().x_dim(), "observation", "the model's data dimension");
    fsbi::PosteriorOptions options;
    options.sampler.method = post.model().is_energy() ? fsbi::SamplerMethod::mala : fsbi::SamplerMethod::ula;
    auto draws = post.sample(obs, argc > 3 ? std::atoi(argv[3]) : 1000, options);
    for (Eigen::Index j = 0; j < draws.theta.cols(); ++j)
      std::printf("%s: mean %.4f\n", draws.parameter_names[j].c_str(), draws.theta.col(j).mean());
  } catch (const std::exception& e) {
    return std::fprintf(stderr, "error: %s\n", e.what()), 1;
  }
}
