#pragma once

#include <new>
#include <sstream>
#include <string>
#include <utility>

namespace pydqn {

// An allocation that failed, saying which argument asked for how many bytes: a bare std::bad_alloc
// reaches Python as "MemoryError: std::bad_alloc", which names neither. A std::bad_alloc, so that
// pybind11 raises it as MemoryError with this message.
class MemoryError : public std::bad_alloc {
 public:
  template <typename... Parts>
  explicit MemoryError(const Parts&... parts) {
    std::ostringstream text;
    (text << ... << parts);
    message_ = std::move(text).str();
  }
  const char* what() const noexcept override { return message_.c_str(); }

 private:
  std::string message_;
};

}  // namespace pydqn
