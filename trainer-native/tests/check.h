// Minimal test registry: TEST(name) { CHECK(...); } — failures are counted and reported, and a
// failing check stops only its own test.
#pragma once
#include <cmath>
#include <functional>
#include <sstream>
#include <stdexcept>
#include <string>
#include <vector>

namespace check {

struct Case {
  const char* name;
  std::function<void()> fn;
};
std::vector<Case>& registry();

struct Failure : std::runtime_error {
  using std::runtime_error::runtime_error;
};

struct Register {
  Register(const char* name, std::function<void()> fn) { registry().push_back({name, std::move(fn)}); }
};

template <typename Fn>
std::string thrown_message(Fn&& fn) {
  try {
    fn();
  } catch (const std::exception& e) {
    return e.what();
  }
  return "";
}

double rel_error(const std::vector<double>& a, const std::vector<double>& b);

// Child entry points: `<binary> --child NAME ARGS...` runs one instead of the tests (the
// distributed tests start their ranks as child processes of the test binary this way).
using ChildMain = std::function<int(const std::vector<std::string>& args)>;
struct Child {
  const char* name;
  ChildMain fn;
};
std::vector<Child>& children();
struct RegisterChild {
  RegisterChild(const char* name, ChildMain fn) { children().push_back({name, std::move(fn)}); }
};

}  // namespace check

#define CHECK_CONCAT2(a, b) a##b
#define CHECK_CONCAT(a, b) CHECK_CONCAT2(a, b)
#define TEST(name)                                                                   \
  static void name();                                                                \
  static check::Register CHECK_CONCAT(register_, name)(#name, name);                 \
  static void name()

#define CHECK(cond)                                                                                    \
  do {                                                                                                 \
    if (!(cond)) {                                                                                     \
      std::ostringstream check_os;                                                                     \
      check_os << __FILE__ << ":" << __LINE__ << ": CHECK(" #cond ") failed";                          \
      throw check::Failure(check_os.str());                                                            \
    }                                                                                                  \
  } while (0)

#define CHECK_MSG(cond, msg)                                                                           \
  do {                                                                                                 \
    if (!(cond)) {                                                                                     \
      std::ostringstream check_os;                                                                     \
      check_os << __FILE__ << ":" << __LINE__ << ": CHECK(" #cond ") failed: " << msg;                 \
      throw check::Failure(check_os.str());                                                            \
    }                                                                                                  \
  } while (0)

#define CHECK_NEAR(a, b, tol)                                                                          \
  CHECK_MSG(std::fabs(static_cast<double>(a) - static_cast<double>(b)) <= (tol),                       \
            #a " = " << (a) << ", " #b " = " << (b) << ", tolerance " << (tol))

// The expression must throw, and the message must contain `fragment`.
#define CHECK_THROWS_WITH(expr, fragment)                                                              \
  do {                                                                                                 \
    const std::string check_msg = check::thrown_message([&] { expr; });                                \
    CHECK_MSG(!check_msg.empty(), #expr " did not throw");                                             \
    CHECK_MSG(check_msg.find(fragment) != std::string::npos,                                           \
              "message '" << check_msg << "' lacks '" << fragment << "'");                             \
  } while (0)
