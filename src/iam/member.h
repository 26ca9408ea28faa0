// Member (principal) strings of Google IAM allow policies: parsing, validation, and the
// canonical form used for matching.
//
// Accepted forms (GOOGLE.md §3.2):
//   allUsers, allAuthenticatedUsers,
//   user:EMAIL, serviceAccount:EMAIL, group:EMAIL, domain:DNS-NAME,
//   serviceAccount:PROJECT.svc.id.goog[NAMESPACE/KSA]      (GKE workload identity),
//   deleted:user:EMAIL?uid=DIGITS (also serviceAccount:, group:, principal://…),
//   principal://…, principalSet://… (workforce / workload identity federation).
// Emails and domains compare case-insensitively: the canonical key lower-cases them. Moat's
// own identities are users and service accounts, so `principal://`, `principalSet://`, GKE
// members and `deleted:` members are accepted syntactically but never match anybody.
//
// Thread-safety: pure functions on value types.
#pragma once

#include <string>
#include <string_view>

#include "common/error.h"

namespace moat::iam {

enum class MemberKind {
  kAllUsers,
  kAllAuthenticatedUsers,
  kUser,
  kServiceAccount,
  kGroup,
  kDomain,
  kDeleted,       // deleted:…?uid=…; never matches
  kFederated,     // principal:// or principalSet://; never matches
  kKubernetesSa,  // serviceAccount:P.svc.id.goog[ns/ksa]; never matches
};

struct Member {
  MemberKind kind = MemberKind::kUser;
  // The string as written in the policy (kept for serialization).
  std::string text;
  // For user/serviceAccount/group the lower-cased email, for domain the lower-cased domain;
  // empty for the other kinds.
  std::string value;

  // The key members are matched and de-duplicated by: "user:alice@example.com" with the email
  // lower-cased; for kinds that never match, the text itself.
  std::string Key() const;
  // True if this member can match a Moat principal (user, serviceAccount, group, domain,
  // allUsers, allAuthenticatedUsers).
  bool CanMatch() const;
};

// Parses a member string. Errors (INVALID_ARGUMENT) name the member in backticks, e.g.
// "invalid member `foo:bar`: policy members must be of the form \"<type>:<value>\"".
Result<Member> ParseMember(std::string_view text);

// Syntax helpers, exposed for identity/ and api/ (e.g. validating a group's members).
bool IsPlausibleEmail(std::string_view email);
bool IsDnsName(std::string_view name);
std::string AsciiLower(std::string_view s);

}  // namespace moat::iam
