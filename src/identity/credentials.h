// IAM Service Account Credentials API v1 logic (GOOGLE.md §7): generateIdToken,
// generateAccessToken, signJwt, signBlob. No HTTP: the API layer authenticates the caller
// (Verifier), parses the body (or uses the *Json helpers below), calls these, and maps the
// Error codes to Google's error envelope.
//
// Names: "projects/-/serviceAccounts/EMAIL_OR_UNIQUE_ID"; the `-` is required (anything else
// is kInvalidArgument, as Google says). delegates[] use the same form.
// Permissions, checked through the injected Authorizer (the IAM evaluator):
//   caller ──implicitDelegation──► delegates[0] ──implicitDelegation──► … ──P──► target
// where P is iam.serviceAccounts.getOpenIdToken / getAccessToken / signJwt / signBlob, each
// resource named "projects/PROJECT/serviceAccounts/EMAIL". A refusal is kPermissionDenied with
// Google's text "Permission 'P' denied on resource (or it may not exist).".
// Unknown or deleted target/delegate → kNotFound; disabled → kFailedPrecondition (checked
// after the permissions, so an unauthorized caller learns nothing).
// signJwt/signBlob sign with the account's SYSTEM_MANAGED key (credentials_keys.h), generated
// on first use; the result verifies with /service_accounts/v1/jwk/EMAIL.
//
// Thread-safety: all methods may be called concurrently.
#pragma once

#include <chrono>
#include <functional>
#include <string>
#include <string_view>
#include <vector>

#include "common/clock.h"
#include "common/error.h"
#include "identity/directory.h"
#include "identity/verifier.h"

namespace moat::identity {

class TokenIssuer;
class SystemManagedKeys;

// May `member` ("user:…", "serviceAccount:…") use `permission` on `resource`?
using Authorizer = std::function<bool(const std::string& member, const std::string& resource,
                                      std::string_view permission)>;

inline constexpr std::string_view kPermImplicitDelegation =
    "iam.serviceAccounts.implicitDelegation";
inline constexpr std::string_view kPermGetOpenIdToken = "iam.serviceAccounts.getOpenIdToken";
inline constexpr std::string_view kPermGetAccessToken = "iam.serviceAccounts.getAccessToken";
inline constexpr std::string_view kPermSignJwt = "iam.serviceAccounts.signJwt";
inline constexpr std::string_view kPermSignBlob = "iam.serviceAccounts.signBlob";

struct GenerateIdTokenRequest {
  std::vector<std::string> delegates;
  std::string audience;        // required
  bool include_email = false;  // Google's default
};

struct GenerateAccessTokenRequest {
  std::vector<std::string> delegates;
  std::vector<std::string> scope;       // required, non-empty
  std::chrono::seconds lifetime{3600};  // 1..3600 s
};

struct SignRequest {
  std::vector<std::string> delegates;
  // signJwt: the JWT claims set as JSON text (an object; `exp` required, ≤ 12 h ahead).
  // signBlob: the raw bytes to sign (already base64-decoded).
  std::string payload;
};

struct AccessTokenResult {
  std::string access_token;
  TimePoint expire_time{};
};

struct SignResult {
  std::string key_id;
  std::string signed_data;  // signJwt: the compact JWT; signBlob: raw RSASSA-PKCS1-v1_5 SHA-256
};

class IamCredentials {
 public:
  // References must outlive this.
  IamCredentials(const TokenIssuer& issuer, SystemManagedKeys& system_keys, const Clock& clock,
                 DirectoryProvider directory, Authorizer authorizer);

  Result<std::string> GenerateIdToken(const std::string& caller, std::string_view name,
                                      const GenerateIdTokenRequest& request);
  Result<AccessTokenResult> GenerateAccessToken(const std::string& caller, std::string_view name,
                                                const GenerateAccessTokenRequest& request);
  Result<SignResult> SignJwt(const std::string& caller, std::string_view name,
                             const SignRequest& request);
  Result<SignResult> SignBlob(const std::string& caller, std::string_view name,
                              const SignRequest& request);

  // Wire-JSON wrappers: request body (JSON text) → response body (JSON text), GOOGLE.md §7
  // shapes ({"token"}, {"accessToken","expireTime"}, {"keyId","signedJwt"},
  // {"keyId","signedBlob"}). Unknown fields are ignored; wrong types are kInvalidArgument.
  Result<std::string> GenerateIdTokenJson(const std::string& caller, std::string_view name,
                                          std::string_view body);
  Result<std::string> GenerateAccessTokenJson(const std::string& caller, std::string_view name,
                                              std::string_view body);
  Result<std::string> SignJwtJson(const std::string& caller, std::string_view name,
                                  std::string_view body);
  Result<std::string> SignBlobJson(const std::string& caller, std::string_view name,
                                   std::string_view body);

 private:
  // Resolves the target and checks the delegation chain and `permission`.
  Result<ServiceAccountRecord> Authorize(const std::string& caller, std::string_view name,
                                         const std::vector<std::string>& delegates,
                                         std::string_view permission);

  const TokenIssuer& issuer_;
  SystemManagedKeys& system_keys_;
  const Clock& clock_;
  DirectoryProvider directory_;
  Authorizer authorizer_;
};

// "projects/-/serviceAccounts/X" → X. kInvalidArgument otherwise.
Result<std::string> ParseCredentialsName(std::string_view name);

}  // namespace moat::identity
