#include "test_support.hpp"

#include <gtest/gtest.h>

#include <fstream>
#include <sstream>

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <numeric>
#include <array>
#include <cstdio>
#include <cstdlib>
#include <random>
#include <stdexcept>
#include <system_error>
#include <thread>

extern char** environ;

namespace fsbi::test {

TempDir::TempDir() {
  std::string tmpl = (std::filesystem::temp_directory_path() / "fsbi-test-XXXXXX").string();
  if (!mkdtemp(tmpl.data())) throw std::system_error(errno, std::generic_category(), "mkdtemp");
  path_ = tmpl;
}

TempDir::~TempDir() {
  std::error_code ec;
  std::filesystem::remove_all(path_, ec);
}

CommandResult run(const std::vector<std::string>& argv, const std::vector<std::string>& env) {
  int out_pipe[2], err_pipe[2];
  if (pipe(out_pipe) != 0 || pipe(err_pipe) != 0)
    throw std::system_error(errno, std::generic_category(), "pipe");
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_adddup2(&actions, out_pipe[1], 1);
  posix_spawn_file_actions_adddup2(&actions, err_pipe[1], 2);
  posix_spawn_file_actions_addclose(&actions, out_pipe[0]);
  posix_spawn_file_actions_addclose(&actions, err_pipe[0]);
  posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0);

  std::vector<std::string> env_strings;
  for (char** e = environ; *e; ++e) env_strings.emplace_back(*e);
  for (const auto& kv : env) {
    const auto key = kv.substr(0, kv.find('=') + 1);
    std::erase_if(env_strings, [&](const std::string& s) { return s.rfind(key, 0) == 0; });
    env_strings.push_back(kv);
  }
  std::vector<char*> envp, args;
  for (auto& s : env_strings) envp.push_back(s.data());
  envp.push_back(nullptr);
  std::vector<std::string> argv_copy = argv;
  for (auto& s : argv_copy) args.push_back(s.data());
  args.push_back(nullptr);

  pid_t pid = 0;
  const int rc = posix_spawn(&pid, args[0], &actions, nullptr, args.data(), envp.data());
  posix_spawn_file_actions_destroy(&actions);
  close(out_pipe[1]);
  close(err_pipe[1]);
  if (rc != 0) {
    close(out_pipe[0]);
    close(err_pipe[0]);
    throw std::system_error(rc, std::generic_category(), "posix_spawn " + argv.at(0));
  }
  CommandResult result;
  std::array<pollfd, 2> fds{pollfd{out_pipe[0], POLLIN, 0}, pollfd{err_pipe[0], POLLIN, 0}};
  std::array<std::string*, 2> sinks{&result.out, &result.err};
  int open_fds = 2;
  char buf[65536];
  while (open_fds > 0) {
    if (poll(fds.data(), fds.size(), -1) < 0) {
      if (errno == EINTR) continue;
      break;
    }
    for (std::size_t i = 0; i < fds.size(); ++i) {
      if (fds[i].fd < 0 || !(fds[i].revents & (POLLIN | POLLHUP | POLLERR))) continue;
      const ssize_t n = read(fds[i].fd, buf, sizeof buf);
      if (n > 0) {
        sinks[i]->append(buf, static_cast<std::size_t>(n));
      } else {
        close(fds[i].fd);
        fds[i].fd = -1;
        --open_fds;
      }
    }
  }
  int status = 0;
  while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {
  }
  result.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
  return result;
}

std::string cli_path() { return FSBI_TEST_CLI; }
std::string bundled_plugin_dir() { return FSBI_TEST_PLUGIN_DIR; }
std::string fixture_plugin(const std::string& name) {
  return std::string(FSBI_TEST_FIXTURE_DIR) + "/" + name + ".so";
}
std::string shared_dir() { return FSBI_TEST_SHARED_DIR; }

CommandResult run_fsbi(const std::vector<std::string>& args, const std::vector<std::string>& env) {
  std::vector<std::string> argv{cli_path()};
  argv.insert(argv.end(), args.begin(), args.end());
  std::vector<std::string> full_env{"FSBI_PLUGIN_PATH="};
  full_env.insert(full_env.end(), env.begin(), env.end());
  return run(argv, full_env);
}

SimulationData simulate_gaussian_linear(const std::string& dir, const std::string& name,
                                        const std::string& prior_spec, std::uint64_t n, std::uint64_t seed,
                                        const SimulatorOptions& options) {
  return simulate("gaussian_linear", dir, name, prior_spec, n, seed, options);
}

SimulationData simulate(const std::string& simulator, const std::string& dir, const std::string& name,
                        const std::string& prior_spec, std::uint64_t n, std::uint64_t seed,
                        const SimulatorOptions& options) {
  auto sim = open_simulator(simulator, options, {bundled_plugin_dir()});
  auto prior = parse_prior(prior_spec.empty() ? *sim->default_prior() : prior_spec, sim->parameter_dim());
  SimulationSettings st;
  st.num_simulations = n;
  st.seed = seed;
  st.progress = ProgressMode::quiet;
  const std::string path = dir + "/" + name;
  run_simulations(*sim, *prior, "test", st, path);
  return read_simulations(path);
}

pid_t spawn_fsbi(const std::vector<std::string>& args) {
  std::vector<std::string> argv{cli_path()};
  argv.insert(argv.end(), args.begin(), args.end());
  std::vector<char*> a;
  for (auto& s : argv) a.push_back(s.data());
  a.push_back(nullptr);
  pid_t pid = 0;
  EXPECT_EQ(0, posix_spawn(&pid, a[0], nullptr, nullptr, a.data(), environ)) << "cannot start " << a[0];
  return pid;
}

bool kill_when(pid_t pid, const std::function<bool()>& ready, std::chrono::milliseconds after,
               std::chrono::seconds timeout) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  while (!ready() && std::chrono::steady_clock::now() < deadline)
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  std::this_thread::sleep_for(after);
  kill(pid, SIGKILL);
  int status = 0;
  waitpid(pid, &status, 0);
  return WIFSIGNALED(status);
}

bool kill_once_exists(pid_t pid, const std::string& path, std::chrono::milliseconds after,
                      std::chrono::seconds timeout) {
  return kill_when(pid, [&] { return std::filesystem::exists(path); }, after, timeout);
}

std::uint64_t announce_seed(const std::string& what, std::uint64_t seed) {
  std::printf("[seed] %s = %llu\n", what.c_str(), static_cast<unsigned long long>(seed));
  return seed;
}

std::vector<double> read_csv_row(const std::string& path) {
  std::ifstream in(path);
  EXPECT_TRUE(in) << "cannot open " << path;
  std::string header, line;
  std::getline(in, header);
  std::getline(in, line);
  std::vector<double> out;
  std::stringstream ss(line);
  for (std::string cell; std::getline(ss, cell, ',');) out.push_back(std::stod(cell));
  return out;
}

std::vector<double> simulate_at(const Simulator& sim, std::uint64_t seed, const std::vector<double>& theta,
                                std::size_t n, std::uint64_t index_begin) {
  const auto d = static_cast<std::size_t>(sim.parameter_dim()), k = static_cast<std::size_t>(sim.data_dim());
  EXPECT_EQ(theta.size(), d) << "theta for simulator '" << sim.name() << "'";
  std::vector<std::uint64_t> index(n);
  std::iota(index.begin(), index.end(), index_begin);
  std::vector<std::uint32_t> attempt(n, 0);
  std::vector<double> thetas(d * n), x(k * n);
  for (std::size_t i = 0; i < n; ++i) std::copy(theta.begin(), theta.end(), thetas.begin() + static_cast<std::ptrdiff_t>(d * i));
  std::vector<std::uint8_t> row_ok(n, 7);
  const auto res = sim.create_instance()->simulate(seed, index, attempt, thetas, x, row_ok);
  EXPECT_FALSE(res.call_failed) << res.first_error;
  EXPECT_EQ(std::count(row_ok.begin(), row_ok.end(), 1), static_cast<std::ptrdiff_t>(n)) << res.first_error;
  return x;
}

Eigen::MatrixXd gaussian_linear_score(const Eigen::MatrixXd& theta, const Eigen::MatrixXd& x) {
  return (x - theta) / 0.1;
}

double relative_score_error(const ScoreModel& model, const Eigen::MatrixXd& theta, const Eigen::MatrixXd& x,
                            const ExactScore& exact) {
  const Eigen::MatrixXd truth = exact(theta, x);
  return (model.score(theta, x) - truth).squaredNorm() / truth.squaredNorm();
}

double relative_score_error(const ScoreModel& model, const SimulationData& pairs, const ExactScore& exact) {
  const Eigen::Index d = pairs.theta.cols(), k = pairs.x.cols(), n = pairs.theta.rows();
  return relative_score_error(model, Eigen::Map<const Eigen::MatrixXd>(pairs.theta.data(), d, n),
                              Eigen::Map<const Eigen::MatrixXd>(pairs.x.data(), k, n), exact);
}

double expect_score_matches_central_differences(const Simulator& sim, const std::vector<double>& theta,
                                                const std::vector<double>& x,
                                                const std::function<double(const std::vector<double>&)>& log_lik,
                                                DifferenceStep step, double rel_tol, double floor) {
  std::vector<double> score(theta.size());
  sim.likelihood_score(theta, x, score);
  double worst = 0;
  for (std::size_t k = 0; k < theta.size(); ++k) {
    const double h = step.relative ? step.size * std::abs(theta[k]) : step.size;
    std::vector<double> plus = theta, minus = theta;
    plus[k] += h;
    minus[k] -= h;
    const double cd = (log_lik(plus) - log_lik(minus)) / (2 * h);
    const double scale = std::max(floor, std::abs(cd));
    EXPECT_NEAR(score[k], cd, rel_tol * scale) << sim.name() << ": score component " << k + 1 << " at theta_"
                                               << k + 1 << " = " << theta[k];
    worst = std::max(worst, std::abs(score[k] - cd) / scale);
    std::printf("  d/dtheta_%zu at %.4g: plugin %.9g, central difference %.9g\n", k + 1, theta[k], score[k], cd);
  }
  return worst;
}

}  // namespace fsbi::test
