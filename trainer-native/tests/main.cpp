#include <cstdio>
#include <cstring>

#include "check.h"

namespace check {
std::vector<Case>& registry() {
  static std::vector<Case> cases;
  return cases;
}

std::vector<Child>& children() {
  static std::vector<Child> list;
  return list;
}

double rel_error(const std::vector<double>& a, const std::vector<double>& b) {
  double diff = 0.0, ref = 0.0;
  for (size_t i = 0; i < a.size(); ++i) {
    diff += (a[i] - b[i]) * (a[i] - b[i]);
    ref += b[i] * b[i];
  }
  return std::sqrt(diff) / std::max(std::sqrt(ref), 1e-30);
}
}  // namespace check

// Usage: smolstage_tests [substring] — runs the tests whose name contains the substring.
//        smolstage_tests --child NAME ARGS... — runs a registered child entry point instead.
int main(int argc, char** argv) {
  if (argc > 2 && std::strcmp(argv[1], "--child") == 0) {
    for (const auto& c : check::children())
      if (std::strcmp(c.name, argv[2]) == 0) {
        try {
          return c.fn(std::vector<std::string>(argv + 3, argv + argc));
        } catch (const std::exception& e) {
          std::fprintf(stderr, "child %s: %s\n", argv[2], e.what());
          return 1;
        }
      }
    std::fprintf(stderr, "unknown child %s\n", argv[2]);
    return 2;
  }
  int failed = 0, ran = 0;
  for (const auto& c : check::registry()) {
    if (argc > 1 && !std::strstr(c.name, argv[1])) continue;
    ++ran;
    try {
      c.fn();
      std::printf("ok   %s\n", c.name);
    } catch (const std::exception& e) {
      ++failed;
      std::printf("FAIL %s\n     %s\n", c.name, e.what());
    }
    std::fflush(stdout);
  }
  std::printf("%d tests, %d failed\n", ran, failed);
  return failed == 0 && ran > 0 ? 0 : 1;
}
