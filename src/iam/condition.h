// IAM Conditions: the subset of CEL Moat evaluates (README.md lists it).
//
//   attributes   request.time (timestamp), resource.name, resource.type, resource.service
//                (strings)
//   literals     'single' or "double" quoted strings (escapes \\ \' \" only), true, false,
//                timestamp("RFC 3339")
//   operators    == != on strings, timestamps and booleans; < <= > >= on timestamps;
//                s.startsWith(t), s.endsWith(t); && || ! and parentheses
//
// An expression is compiled once, when a policy is *set* (Compile rejects anything outside
// the subset with an error naming the unsupported part) and when a snapshot is built; the
// compiled form is evaluated without parsing or allocation. Evaluation follows CEL's
// error-absorbing logic (`true || error` is true, `false && error` is false); an erroring
// condition never grants. An attribute that is absent for the resource (an empty
// resource.type, say) is an evaluation error.
//
// Limits: at most 12,800 bytes (kMaxExpressionBytes), at most 12 `&&`/`||` operators,
// nesting at most 32 deep.
//
// Thread-safety: a CompiledCondition is immutable after Compile; Evaluate is const and safe
// from any thread.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "common/clock.h"
#include "common/error.h"

namespace moat::iam {

inline constexpr size_t kMaxExpressionBytes = 12'800;
inline constexpr int kMaxLogicalOperators = 12;

// The request attributes a condition can read. Views must outlive the Evaluate call.
struct ConditionContext {
  TimePoint request_time;
  std::string_view resource_name;
  std::string_view resource_type;     // e.g. "run.googleapis.com/Service"
  std::string_view resource_service;  // e.g. "run.googleapis.com"
};

enum class ConditionResult { kFalse, kTrue, kError };

std::string_view ConditionResultName(ConditionResult r);  // "false", "true", "error"

class CompiledCondition {
 public:
  // Errors (INVALID_ARGUMENT):
  //   "condition expression `E` uses `X`, which Moat does not support; supported: …"
  //   "condition expression `E` is not valid: …" (syntax or type errors, bad timestamps)
  //   "condition expression is longer than 12800 bytes", too many logical operators.
  static Result<CompiledCondition> Compile(std::string_view expression);

  ConditionResult Evaluate(const ConditionContext& ctx) const;
  const std::string& expression() const { return expression_; }

  enum class Op : uint8_t {
    kBool,
    kString,
    kTimestamp,  // literals
    kRequestTime,
    kResourceName,
    kResourceType,
    kResourceService,  // attributes
    kNot,
    kAnd,
    kOr,
    kEq,
    kNe,
    kLt,
    kLe,
    kGt,
    kGe,
    kStartsWith,
    kEndsWith,
  };
  enum class Type : uint8_t { kBool, kString, kTimestamp };
  struct Node {
    Op op;
    Type type;
    bool bool_value = false;
    int32_t lhs = -1;
    int32_t rhs = -1;
    std::string string_value;
    TimePoint time_value{};
  };

 private:
  struct Value;
  Value Eval(int32_t node, const ConditionContext& ctx) const;

  std::string expression_;
  std::vector<Node> nodes_;
  int32_t root_ = -1;
  friend class ConditionParser;
};

}  // namespace moat::iam
