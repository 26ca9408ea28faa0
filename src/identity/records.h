// (De)serialization of the identity records of directory.h:
//   - store documents (the JSON text kept in the `service_accounts`, `sa_keys`, `users`,
//     `groups` and `trusted_issuers` collections), parsed strictly because a corrupt document
//     must not become a half-valid credential;
//   - Google's IAM v1 wire JSON for ServiceAccount and ServiceAccountKey (GOOGLE.md §6), and
//     Moat's /moat/v1 JSON for users, groups and trusted issuers (never a password hash).
//
// Store document shapes (camelCase, times RFC 3339, a non-expiring key's validBeforeTime is
// "9999-12-31T23:59:59Z"):
//   service account  {"projectId","accountId","email","uniqueId","displayName","description",
//                     "disabled","createTime","deleteTime"?}
//   key              {"keyId","projectId","serviceAccountEmail","serviceAccountUniqueId",
//                     "publicKeyPem","certPem","validAfterTime","validBeforeTime",
//                     "keyOrigin":"GOOGLE_PROVIDED"|"USER_PROVIDED","disabled","lastUsedTime"?}
//   user             {"email","uniqueId","displayName","passwordHash","disabled","createTime"}
//   group            {"email","displayName","description","members":[…]}
//   trusted issuer   {"id","issuer","jwksUri","audiences":[…]}
//
// Thread-safety: pure functions.
#pragma once

#include <boost/json/object.hpp>
#include <string>
#include <string_view>

#include "common/error.h"
#include "identity/directory.h"

namespace moat::identity {

// Google's spelling of a key that does not expire.
inline constexpr std::string_view kNeverExpires = "9999-12-31T23:59:59Z";

// FormatRfc3339, except TimePoint::max() → kNeverExpires.
std::string FormatKeyTime(TimePoint t);
// ParseRfc3339, except kNeverExpires (and any time past year 2262) → TimePoint::max().
std::optional<TimePoint> ParseKeyTime(std::string_view text);

// Lowercases and checks an email address: one '@', a non-empty local part, a dotted domain,
// no whitespace or control characters, at most 254 bytes. `what` names it in errors
// ("user email"). Errors: kInvalidArgument.
Result<std::string> NormalizeEmail(std::string_view email, std::string_view what = "email");

// --- store documents ---------------------------------------------------------------------
std::string ServiceAccountToDocument(const ServiceAccountRecord& sa);
Result<ServiceAccountRecord> ServiceAccountFromDocument(std::string_view json);

std::string KeyToDocument(const KeyRecord& key, std::string_view project_id);
// Does not parse the PEM (public_key stays null; Directory::Build parses it).
Result<KeyRecord> KeyFromDocument(std::string_view json);

std::string UserToDocument(const UserRecord& user);
Result<UserRecord> UserFromDocument(std::string_view json);

std::string GroupToDocument(const GroupRecord& group);
Result<GroupRecord> GroupFromDocument(std::string_view json);

std::string TrustedIssuerToDocument(const TrustedIssuerRecord& issuer);
Result<TrustedIssuerRecord> TrustedIssuerFromDocument(std::string_view json);

// --- Google wire JSON ----------------------------------------------------------------------
// ServiceAccount: name, projectId, uniqueId, email, displayName, description (omitted when
// empty), oauth2ClientId (= uniqueId), disabled (only when true, as proto3 JSON), etag.
boost::json::object ServiceAccountToJson(const ServiceAccountRecord& sa);

// keys.get's publicKeyType.
enum class PublicKeyType { kNone, kX509PemFile, kRawPublicKey };
// "TYPE_NONE" (or "" = default) / "TYPE_X509_PEM_FILE" / "TYPE_RAW_PUBLIC_KEY"; anything else
// is kInvalidArgument.
Result<PublicKeyType> ParsePublicKeyType(std::string_view text);

// ServiceAccountKey: name, validAfterTime, validBeforeTime, keyAlgorithm KEY_ALG_RSA_2048,
// keyOrigin, keyType USER_MANAGED, disabled (only when true), lastUsedTime (Moat extension,
// when known), publicKeyData per `type`: base64 of the PEM certificate (TYPE_X509_PEM_FILE) or
// of the DER SubjectPublicKeyInfo (TYPE_RAW_PUBLIC_KEY).
boost::json::object KeyToJson(const KeyRecord& key, std::string_view project_id,
                              PublicKeyType type = PublicKeyType::kNone);

// Moat's /moat/v1 shapes. Users: name "users/EMAIL", email, uniqueId, displayName, disabled,
// createTime (never the password hash). Groups: name "groups/EMAIL", email, displayName,
// description, members. Trusted issuers: name "trustedIssuers/ID", id, issuer, jwksUri,
// audiences.
boost::json::object UserToJson(const UserRecord& user);
boost::json::object GroupToJson(const GroupRecord& group);
boost::json::object TrustedIssuerToJson(const TrustedIssuerRecord& issuer);

}  // namespace moat::identity
