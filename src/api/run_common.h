// Internal to moat_api (the run/policy/roles/audit handler files): small helpers they share —
// Google's "unknown field" check, field masks, page tokens over in-memory lists, the root
// resource's names, and resource-name helpers.
//
// Thread-safety: pure functions.
#pragma once

#include <boost/json/object.hpp>
#include <initializer_list>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "common/clock.h"
#include "common/error.h"

namespace moat::store {
class Transaction;
}

namespace moat::api {

// The root (organization-like) policy: its store key in the policies collection, and the
// resource name the IAM evaluator knows it by (iam::PolicyInputs::root_name).
inline constexpr std::string_view kRootPolicyKey = "root";
inline constexpr std::string_view kRootResource = "organizations/moat";

// INVALID_ARGUMENT with Google's wording for the first member of `o` not in `known`:
//   Invalid JSON payload received. Unknown name "x" at 'service.template': Cannot find field.
// (` at '…'` only when `path` is non-empty).
Status RejectUnknownFields(const boost::json::object& o,
                           std::initializer_list<std::string_view> known,
                           std::string_view path = "");

// Splits a FieldMask's comma-separated paths ("bindings, etag" → {"bindings","etag"}),
// trimming blanks and dropping empty entries.
std::vector<std::string> SplitMask(std::string_view mask);

// "projects/P/…" → "projects/P"; "" for names outside a project.
std::string ProjectOf(std::string_view resource);

// Page tokens over an in-memory ordered list: the decimal offset of the next item.
// "" → 0; anything else that is not an offset within [0, size] → INVALID_ARGUMENT.
Result<size_t> ParseOffsetToken(std::string_view token, size_t size);

// A page size from the query (`pageSize`): absent/0 → `default_size`, clamped to `max_size`;
// negative → INVALID_ARGUMENT.
Result<int> PageSizeParam(std::string_view text, int default_size, int max_size);

// Records the project ("projects/P" in the projects collection, {"projectId","createTime"})
// in `tx` if it is not there yet: projects exist implicitly from their first use.
Status EnsureProject(store::Transaction& tx, std::string_view project_name, TimePoint now);

}  // namespace moat::api
