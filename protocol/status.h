// Status and Result<T>: cheap success, named error constructors, [[nodiscard]].
// Errors carry a SQLSTATE so that a failure deep in parsing or routing can be sent to the
// client as an ErrorResponse without translation. No exceptions on the data plane.
#pragma once

#include <optional>
#include <string>
#include <utility>
#include <variant>

namespace pgtenant {

class [[nodiscard]] Status {
 public:
  Status() = default;  // OK
  static Status Ok() { return Status(); }
  static Status Error(std::string sqlstate, std::string message) {
    return Status(std::move(sqlstate), std::move(message));
  }
  // Shorthands for the SQLSTATEs of docs/reference.md section 3.
  static Status ProtocolViolation(std::string m) { return Error("08P01", std::move(m)); }
  static Status InvalidParameter(std::string m) { return Error("22023", std::move(m)); }
  static Status InvalidAuthorization(std::string m) { return Error("28000", std::move(m)); }
  static Status InsufficientPrivilege(std::string m) { return Error("42501", std::move(m)); }
  static Status ActiveTransaction(std::string m) { return Error("25001", std::move(m)); }
  static Status AuthFailed(std::string m) { return Error("28P01", std::move(m)); }

  bool ok() const { return sqlstate_.empty(); }
  const std::string& sqlstate() const { return sqlstate_; }
  const std::string& message() const { return message_; }
  std::string ToString() const { return ok() ? "OK" : sqlstate_ + ": " + message_; }

 private:
  Status(std::string sqlstate, std::string message)
      : sqlstate_(std::move(sqlstate)), message_(std::move(message)) {}
  std::string sqlstate_;
  std::string message_;
};

template <typename T>
class [[nodiscard]] Result {
 public:
  Result(T value) : value_(std::move(value)) {}          // NOLINT: implicit by design
  Result(Status status) : status_(std::move(status)) {}  // NOLINT: REQUIRES: !status.ok()
  bool ok() const { return value_.has_value(); }
  const Status& status() const { return status_; }
  T& value() & { return *value_; }
  const T& value() const& { return *value_; }
  T&& value() && { return std::move(*value_); }
  T* operator->() { return &*value_; }
  const T* operator->() const { return &*value_; }
  T& operator*() { return *value_; }
  const T& operator*() const { return *value_; }

 private:
  std::optional<T> value_;
  Status status_;
};

}  // namespace pgtenant
