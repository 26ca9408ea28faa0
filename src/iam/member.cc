#include "iam/member.h"

namespace moat::iam {
namespace {

constexpr std::string_view kFormHint = "policy members must be of the form \"<type>:<value>\"";

Error Invalid(std::string_view text, std::string_view why) {
  return InvalidArgument("invalid member `" + std::string(text) + "`: " + std::string(why));
}

bool IsDigits(std::string_view s) {
  if (s.empty()) return false;
  for (char c : s) {
    if (c < '0' || c > '9') return false;
  }
  return true;
}

// serviceAccount:PROJECT.svc.id.goog[NAMESPACE/KSA]
bool IsKubernetesSa(std::string_view v) {
  auto open = v.find('[');
  if (open == std::string_view::npos || v.back() != ']') return false;
  std::string_view pool = v.substr(0, open);
  std::string_view inner = v.substr(open + 1, v.size() - open - 2);
  constexpr std::string_view kSuffix = ".svc.id.goog";
  if (pool.size() <= kSuffix.size() || pool.substr(pool.size() - kSuffix.size()) != kSuffix) {
    return false;
  }
  auto slash = inner.find('/');
  if (slash == std::string_view::npos || slash == 0 || slash + 1 == inner.size()) return false;
  for (char c : inner) {
    bool ok = (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' || c == '/' || c == '.';
    if (!ok) return false;
  }
  return IsDnsName(pool);
}

bool IsFederated(std::string_view v) {
  constexpr std::string_view kPrincipal = "principal://";
  constexpr std::string_view kPrincipalSet = "principalSet://";
  std::string_view rest;
  if (v.substr(0, kPrincipal.size()) == kPrincipal) {
    rest = v.substr(kPrincipal.size());
  } else if (v.substr(0, kPrincipalSet.size()) == kPrincipalSet) {
    rest = v.substr(kPrincipalSet.size());
  } else {
    return false;
  }
  // iam.googleapis.com/…: a host, a slash and a non-empty path without spaces or controls.
  auto slash = rest.find('/');
  if (slash == std::string_view::npos || slash == 0 || slash + 1 == rest.size()) return false;
  for (unsigned char c : rest) {
    if (c <= 0x20 || c >= 0x7f) return false;
  }
  return true;
}

}  // namespace

std::string AsciiLower(std::string_view s) {
  std::string out(s);
  for (char& c : out) {
    if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
  }
  return out;
}

bool IsDnsName(std::string_view name) {
  if (name.empty() || name.size() > 253) return false;
  size_t label_start = 0;
  for (size_t i = 0; i <= name.size(); ++i) {
    if (i == name.size() || name[i] == '.') {
      size_t len = i - label_start;
      if (len == 0 || len > 63) return false;
      if (name[label_start] == '-' || name[i - 1] == '-') return false;
      label_start = i + 1;
      continue;
    }
    char c = name[i];
    bool ok =
        (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-';
    if (!ok) return false;
  }
  return true;
}

bool IsPlausibleEmail(std::string_view email) {
  if (email.size() > 254) return false;
  auto at = email.find('@');
  if (at == std::string_view::npos || at == 0 || at > 64) return false;
  if (email.find('@', at + 1) != std::string_view::npos) return false;
  std::string_view local = email.substr(0, at);
  for (unsigned char c : local) {
    // Printable ASCII except characters that would make the member string ambiguous.
    if (c <= 0x20 || c >= 0x7f || c == ':' || c == '?' || c == '"' || c == '(' || c == ')' ||
        c == ',' || c == ';' || c == '<' || c == '>' || c == '[' || c == ']' || c == '\\') {
      return false;
    }
  }
  if (local.front() == '.' || local.back() == '.' || local.find("..") != std::string_view::npos) {
    return false;
  }
  return IsDnsName(email.substr(at + 1));
}

std::string Member::Key() const {
  switch (kind) {
    case MemberKind::kAllUsers:
      return "allUsers";
    case MemberKind::kAllAuthenticatedUsers:
      return "allAuthenticatedUsers";
    case MemberKind::kUser:
      return "user:" + value;
    case MemberKind::kServiceAccount:
      return "serviceAccount:" + value;
    case MemberKind::kGroup:
      return "group:" + value;
    case MemberKind::kDomain:
      return "domain:" + value;
    case MemberKind::kDeleted:
    case MemberKind::kFederated:
    case MemberKind::kKubernetesSa:
      return text;
  }
  return text;
}

bool Member::CanMatch() const {
  return kind != MemberKind::kDeleted && kind != MemberKind::kFederated &&
         kind != MemberKind::kKubernetesSa;
}

Result<Member> ParseMember(std::string_view text) {
  Member m;
  m.text = std::string(text);
  if (text.empty()) return InvalidArgument("a policy member is empty; " + std::string(kFormHint));
  if (text.size() > 1024) return Invalid(text.substr(0, 64), "the member is too long");
  if (text == "allUsers") {
    m.kind = MemberKind::kAllUsers;
    return m;
  }
  if (text == "allAuthenticatedUsers") {
    m.kind = MemberKind::kAllAuthenticatedUsers;
    return m;
  }
  if (IsFederated(text)) {
    m.kind = MemberKind::kFederated;
    return m;
  }
  auto colon = text.find(':');
  if (colon == std::string_view::npos) return Invalid(text, kFormHint);
  std::string_view type = text.substr(0, colon);
  std::string_view value = text.substr(colon + 1);
  if (type == "user" || type == "group" || type == "serviceAccount") {
    if (type == "serviceAccount" && IsKubernetesSa(value)) {
      m.kind = MemberKind::kKubernetesSa;
      return m;
    }
    if (!IsPlausibleEmail(value)) {
      return Invalid(text, "`" + std::string(value) + "` is not a valid email address");
    }
    m.kind = type == "user"    ? MemberKind::kUser
             : type == "group" ? MemberKind::kGroup
                               : MemberKind::kServiceAccount;
    m.value = AsciiLower(value);
    return m;
  }
  if (type == "domain") {
    if (!IsDnsName(value)) {
      return Invalid(text, "`" + std::string(value) + "` is not a valid domain name");
    }
    m.kind = MemberKind::kDomain;
    m.value = AsciiLower(value);
    return m;
  }
  if (type == "deleted") {
    // deleted:TYPE:EMAIL?uid=DIGITS, or deleted:principal://…
    if (IsFederated(value)) {
      m.kind = MemberKind::kDeleted;
      return m;
    }
    auto q = value.find("?uid=");
    if (q == std::string_view::npos || !IsDigits(value.substr(q + 5))) {
      return Invalid(text,
                     "deleted members must be of the form \"deleted:<type>:<email>?uid=<id>\"");
    }
    std::string_view inner = value.substr(0, q);
    auto c2 = inner.find(':');
    std::string_view inner_type = c2 == std::string_view::npos ? "" : inner.substr(0, c2);
    if (inner_type != "user" && inner_type != "group" && inner_type != "serviceAccount") {
      return Invalid(text,
                     "deleted members must be of the form \"deleted:<type>:<email>?uid=<id>\"");
    }
    if (!IsPlausibleEmail(inner.substr(c2 + 1))) {
      return Invalid(text,
                     "`" + std::string(inner.substr(c2 + 1)) + "` is not a valid email address");
    }
    m.kind = MemberKind::kDeleted;
    return m;
  }
  return Invalid(text, "unknown member type `" + std::string(type) + "`; " +
                           std::string(kFormHint) +
                           " with type user, group, serviceAccount, domain or deleted");
}

}  // namespace moat::iam
