#include "store/store.h"

namespace moat::store {

std::string_view CollectionName(Collection c) {
  switch (c) {
    case Collection::kProjects:
      return "projects";
    case Collection::kServices:
      return "services";
    case Collection::kPolicies:
      return "policies";
    case Collection::kRoles:
      return "roles";
    case Collection::kServiceAccounts:
      return "service_accounts";
    case Collection::kSaKeys:
      return "sa_keys";
    case Collection::kUsers:
      return "users";
    case Collection::kGroups:
      return "groups";
    case Collection::kTrustedIssuers:
      return "trusted_issuers";
    case Collection::kSigningKeys:
      return "signing_keys";
    case Collection::kSettings:
      return "settings";
  }
  return "settings";
}

std::optional<Collection> ParseCollection(std::string_view name) {
  for (Collection c : kAllCollections) {
    if (CollectionName(c) == name) return c;
  }
  return std::nullopt;
}

std::string_view AuditKindName(AuditKind k) {
  return k == AuditKind::kDataAccess ? "DATA_ACCESS" : "ADMIN_ACTIVITY";
}

Result<std::optional<Document>> Store::Get(Collection c, std::string_view key) {
  MOAT_TRY(auto tx, BeginRead());
  return tx->Get(c, key);
}

Result<ListPage> Store::List(Collection c, const ListOptions& options) {
  MOAT_TRY(auto tx, BeginRead());
  return tx->List(c, options);
}

Result<Document> Store::Put(Collection c, std::string_view key, std::string_view data,
                            const PutOptions& options) {
  MOAT_TRY(auto tx, Begin());
  MOAT_TRY(Document doc, tx->Put(c, key, data, options));
  MOAT_CHECK_OK(tx->Commit());
  return doc;
}

Result<bool> Store::Delete(Collection c, std::string_view key, const Precondition& precondition) {
  MOAT_TRY(auto tx, Begin());
  MOAT_TRY(bool existed, tx->Delete(c, key, precondition));
  MOAT_CHECK_OK(tx->Commit());
  return existed;
}

Status Store::AppendAudit(const AuditEntry& entry) {
  MOAT_TRY(auto tx, Begin());
  MOAT_CHECK_OK(tx->AppendAudit(entry));
  MOAT_CHECK_OK(tx->Commit());
  return Ok();
}

std::string ResolveHome(std::string_view flag_value, const char* env_moat_home) {
  if (!flag_value.empty()) return std::string(flag_value);
  if (env_moat_home != nullptr && *env_moat_home != '\0') return env_moat_home;
  return "./.moat";
}

}  // namespace moat::store
