// Status and StatusOr<T>: the error currency at every module edge.
//
// Contract: a function that can fail on input (files, user parameters, requests) returns
// Status or StatusOr<T>; it never throws across a module edge and never aborts the process.
// Messages are complete sentences a user can act on ("gguf: tensor 'blk.3.ffn_up.weight'
// data [offset 1234, size 5678] extends past end of file (size 4096)").
#pragma once

#include <cassert>
#include <optional>
#include <string>
#include <utility>
#include <variant>

namespace inferd {

enum class StatusCode {
  kOk = 0,
  kInvalidArgument,    // bad parameter or malformed input from a user
  kNotFound,           // file, key, tensor or model missing
  kOutOfRange,         // a value outside what the format or model allows
  kDataLoss,           // corrupt or truncated file
  kUnimplemented,      // valid input we do not support (architecture, tensor type)
  kResourceExhausted,  // memory, KV blocks, queue full
  kFailedPrecondition,
  kAborted,
  kUnavailable,
  kInternal,
};

const char* StatusCodeName(StatusCode code);

class [[nodiscard]] Status {
 public:
  Status() = default;
  Status(StatusCode code, std::string message) : code_(code), message_(std::move(message)) {}
  static Status OK() { return Status(); }

  bool ok() const { return code_ == StatusCode::kOk; }
  StatusCode code() const { return code_; }
  const std::string& message() const { return message_; }
  std::string ToString() const;

 private:
  StatusCode code_ = StatusCode::kOk;
  std::string message_;
};

inline Status InvalidArgument(std::string m) { return {StatusCode::kInvalidArgument, std::move(m)}; }
inline Status NotFound(std::string m) { return {StatusCode::kNotFound, std::move(m)}; }
inline Status OutOfRange(std::string m) { return {StatusCode::kOutOfRange, std::move(m)}; }
inline Status DataLoss(std::string m) { return {StatusCode::kDataLoss, std::move(m)}; }
inline Status Unimplemented(std::string m) { return {StatusCode::kUnimplemented, std::move(m)}; }
inline Status ResourceExhausted(std::string m) { return {StatusCode::kResourceExhausted, std::move(m)}; }
inline Status FailedPrecondition(std::string m) { return {StatusCode::kFailedPrecondition, std::move(m)}; }
inline Status Internal(std::string m) { return {StatusCode::kInternal, std::move(m)}; }

// Holds either a value or a non-OK Status.
template <typename T>
class [[nodiscard]] StatusOr {
 public:
  StatusOr(Status status) : status_(std::move(status)) { assert(!status_.ok()); }  // NOLINT
  StatusOr(T value) : value_(std::move(value)) {}                                   // NOLINT

  bool ok() const { return status_.ok(); }
  const Status& status() const { return status_; }
  T& value() & { assert(ok()); return *value_; }
  const T& value() const& { assert(ok()); return *value_; }
  T&& value() && { assert(ok()); return std::move(*value_); }
  T& operator*() & { return value(); }
  const T& operator*() const& { return value(); }
  T* operator->() { return &value(); }
  const T* operator->() const { return &value(); }

 private:
  Status status_;
  std::optional<T> value_;
};

}  // namespace inferd

#define INFERD_CONCAT_INNER_(a, b) a##b
#define INFERD_CONCAT_(a, b) INFERD_CONCAT_INNER_(a, b)

// Returns the Status from the enclosing function if `expr` is not OK.
#define INFERD_RETURN_IF_ERROR(expr)              \
  do {                                            \
    ::inferd::Status status_macro_ = (expr);      \
    if (!status_macro_.ok()) return status_macro_; \
  } while (0)

// `lhs = value of expr` or return its Status. lhs may declare a variable: `auto x`.
#define INFERD_ASSIGN_OR_RETURN(lhs, expr) \
  INFERD_ASSIGN_OR_RETURN_IMPL_(INFERD_CONCAT_(statusor_macro_, __LINE__), lhs, expr)
#define INFERD_ASSIGN_OR_RETURN_IMPL_(tmp, lhs, expr) \
  auto tmp = (expr);                                  \
  if (!tmp.ok()) return tmp.status();                 \
  lhs = std::move(tmp).value()
