#pragma once
// A small stand-in for std::expected (GCC 12 has none in C++20): the member names
// match so the switch later is mechanical.
#include <stdexcept>
#include <string>
#include <utility>
#include <variant>

namespace mailguard {

// What went wrong, for the code that handles it: `code` picks the reaction (the D-Bus
// adaptor maps it onto a named error), `sysErrno` keeps the errno a system call gave
// (0 when none), `message` says it to a person: "Failed to <verb> '<object>': <reason>".
enum class Errc {
  Failed,           // anything else: the operation could not be done
  InvalidArgument,  // the caller's input is wrong; retrying the same call cannot help
  NotFound,         // the thing named does not exist (or no longer)
  NotAuthorized,    // the caller may not do this
  Pending,          // not known yet: work on it has started; ask again when told
};

struct Error {
  std::string message;
  Errc code = Errc::Failed;
  int sysErrno = 0;
};

template <class T>
class [[nodiscard]] Result {
 public:
  Result(T value)
      : v_(std::in_place_index<0>, std::move(value)) {}  // NOLINT(google-explicit-constructor)
  Result(Error error)
      : v_(std::in_place_index<1>, std::move(error)) {}  // NOLINT(google-explicit-constructor)

  [[nodiscard]] bool has_value() const noexcept {
    return v_.index() == 0;
  }  // NOLINT(readability-identifier-naming)
  explicit operator bool() const noexcept { return has_value(); }

  T& value() & {
    check();
    return std::get<0>(v_);
  }
  const T& value() const& {
    check();
    return std::get<0>(v_);
  }
  T&& value() && {
    check();
    return std::get<0>(std::move(v_));
  }
  T* operator->() { return &value(); }
  const T* operator->() const { return &value(); }
  T& operator*() & { return value(); }
  const T& operator*() const& { return value(); }

  [[nodiscard]] const Error& error() const { return std::get<1>(v_); }

 private:
  void check() const {
    if (!has_value()) throw std::logic_error("Result has no value: " + std::get<1>(v_).message);
  }
  std::variant<T, Error> v_;
};

template <>
class [[nodiscard]] Result<void> {
 public:
  Result() = default;
  Result(Error error)
      : error_(std::move(error)), ok_(false) {}  // NOLINT(google-explicit-constructor)
  [[nodiscard]] bool has_value() const noexcept {
    return ok_;
  }  // NOLINT(readability-identifier-naming)
  explicit operator bool() const noexcept { return ok_; }
  void value() const {
    if (!ok_) throw std::logic_error("Result has no value: " + error_.message);
  }
  [[nodiscard]] const Error& error() const { return error_; }

 private:
  Error error_;
  bool ok_ = true;
};

inline Error makeError(std::string message, Errc code = Errc::Failed) {
  return Error{std::move(message), code, 0};
}
inline Error invalidArgument(std::string message) {
  return makeError(std::move(message), Errc::InvalidArgument);
}
inline Error notFound(std::string message) { return makeError(std::move(message), Errc::NotFound); }
// A failed system call: the errno travels beside the message, which should name it.
inline Error systemError(std::string message, int err) {
  return Error{std::move(message), Errc::Failed, err};
}

}  // namespace mailguard
