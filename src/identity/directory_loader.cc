#include "identity/directory_loader.h"

#include "common/log.h"
#include "identity/lifecycle_internal.h"
#include "identity/records.h"
#include "store/store.h"

namespace moat::identity {
namespace {

template <class Record, class Parse>
Status LoadAll(store::Transaction& tx, store::Collection c, Parse parse, std::vector<Record>& out) {
  MOAT_TRY(auto docs, internal::ListAll(tx, c));
  out.reserve(docs.size());
  for (const auto& doc : docs) {
    auto record = parse(doc.data);
    if (!record) {
      log::Warn("skipping a corrupt identity document",
                {{"collection", std::string(store::CollectionName(c))},
                 {"key", doc.key},
                 {"error", record.error().message}});
      continue;
    }
    out.push_back(std::move(*record));
  }
  return Ok();
}

}  // namespace

Result<std::shared_ptr<const Directory>> LoadDirectory(store::Store& store) {
  MOAT_TRY(auto tx, store.BeginRead());
  Directory::Inputs in;
  MOAT_CHECK_OK(LoadAll(*tx, store::Collection::kServiceAccounts, ServiceAccountFromDocument,
                        in.service_accounts));
  MOAT_CHECK_OK(LoadAll(*tx, store::Collection::kSaKeys, KeyFromDocument, in.keys));
  MOAT_CHECK_OK(LoadAll(*tx, store::Collection::kUsers, UserFromDocument, in.users));
  MOAT_CHECK_OK(LoadAll(*tx, store::Collection::kGroups, GroupFromDocument, in.groups));
  MOAT_CHECK_OK(LoadAll(*tx, store::Collection::kTrustedIssuers, TrustedIssuerFromDocument,
                        in.trusted_issuers));
  // A read transaction's Commit returns the revision it read at.
  MOAT_TRY(in.revision, tx->Commit());
  return Directory::Build(std::move(in));
}

}  // namespace moat::identity
