#include "identity/service_accounts.h"

#include <algorithm>
#include <boost/json/array.hpp>
#include <boost/json/value.hpp>
#include <cctype>

#include "common/base64.h"
#include "common/json.h"
#include "common/log.h"
#include "common/random.h"
#include "common/time.h"
#include "crypto/keys.h"
#include "crypto/x509.h"
#include "identity/lifecycle_internal.h"
#include "identity/records.h"
#include "store/store.h"

namespace moat::identity {
namespace {

namespace bj = boost::json;
using store::Collection;
using store::Document;
using store::Precondition;
using store::PutOptions;

constexpr std::string_view kSaDomain = ".iam.gserviceaccount.com";
constexpr std::string_view kAccountIdRule =
    "must be 6-30 characters long, and match the regular expression [a-z]([-a-z0-9]*[a-z0-9])";

std::string Quote(std::string_view s) { return "`" + std::string(s) + "`"; }

std::string Lower(std::string_view s) {
  std::string out(s);
  for (char& c : out) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return out;
}

TimePoint TruncateToSeconds(TimePoint t) { return std::chrono::floor<Seconds>(t); }

// Project ids: 1-63 characters of [a-z0-9-], starting with a letter, not ending with '-'.
// (Google's are 6-30; Moat accepts short ones such as `p` for local use.)
Status ValidateProjectId(std::string_view p) {
  bool ok = !p.empty() && p.size() <= 63 && p.front() >= 'a' && p.front() <= 'z' &&
            p.back() != '-' && std::all_of(p.begin(), p.end(), [](char c) {
              return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-';
            });
  if (!ok) {
    return InvalidArgument("project id " + Quote(p) +
                           " must be 1-63 characters of lowercase letters, digits and hyphens, "
                           "starting with a letter");
  }
  return Ok();
}

Status ValidateAccountId(std::string_view id) {
  bool ok = id.size() >= 6 && id.size() <= 30 && id.front() >= 'a' && id.front() <= 'z' &&
            id.back() != '-' && std::all_of(id.begin(), id.end(), [](char c) {
              return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-';
            });
  if (!ok) return InvalidArgument("accountId " + Quote(id) + " " + std::string(kAccountIdRule));
  return Ok();
}

Status ValidateTexts(std::string_view display_name, std::string_view description) {
  if (display_name.size() > 100) {
    return InvalidArgument("displayName must be at most 100 bytes");
  }
  if (description.size() > 256) {
    return InvalidArgument("description must be at most 256 bytes");
  }
  return Ok();
}

struct SaName {
  std::string project;  // "-" for the wildcard
  std::string id;       // email (lowercased) or unique id
};

Result<SaName> ParseSaName(std::string_view name) {
  constexpr std::string_view kPrefix = "projects/";
  constexpr std::string_view kMid = "/serviceAccounts/";
  auto bad = [&] {
    return InvalidArgument("invalid service account name " + Quote(name) +
                           ": expected projects/PROJECT/serviceAccounts/EMAIL_OR_UNIQUE_ID");
  };
  if (name.substr(0, kPrefix.size()) != kPrefix) return bad();
  std::string_view rest = name.substr(kPrefix.size());
  size_t mid = rest.find(kMid);
  if (mid == std::string_view::npos || mid == 0) return bad();
  SaName out{std::string(rest.substr(0, mid)), Lower(rest.substr(mid + kMid.size()))};
  if (out.id.empty() || out.id.find('/') != std::string::npos) return bad();
  if (out.project != "-") MOAT_CHECK_OK(ValidateProjectId(out.project));
  return out;
}

struct KeyName {
  std::string sa_name;
  std::string key_id;
};

Result<KeyName> ParseKeyName(std::string_view name) {
  constexpr std::string_view kKeys = "/keys/";
  size_t pos = name.rfind(kKeys);
  if (pos == std::string_view::npos) {
    return InvalidArgument("invalid key name " + Quote(name) +
                           ": expected projects/PROJECT/serviceAccounts/ACCOUNT/keys/KEY_ID");
  }
  KeyName out{std::string(name.substr(0, pos)), Lower(name.substr(pos + kKeys.size()))};
  MOAT_TRY(SaName sa, ParseSaName(out.sa_name));
  (void)sa;
  return out;
}

std::string AccountKey(std::string_view project, std::string_view email_or_id) {
  return "projects/" + std::string(project) + "/serviceAccounts/" + std::string(email_or_id);
}
std::string ProjectParent(std::string_view project) { return "projects/" + std::string(project); }
std::string DeletedParent(std::string_view project) {
  return "deleted/projects/" + std::string(project);
}

Error Missing(const SaName& n, std::string_view name) {
  if (n.project == "-") {
    // GOOGLE.md §3.4: the wildcard answers 403 for a missing account.
    return PermissionDenied("permission denied on resource " + Quote(name) +
                            " (or it may not exist)");
  }
  return NotFound("service account " + Quote(name) + " does not exist");
}

struct Resolved {
  Document doc;
  ServiceAccountRecord sa;
};

// A live account by name.
Result<Resolved> ResolveLive(store::Transaction& tx, std::string_view name) {
  MOAT_TRY(SaName n, ParseSaName(name));
  if (n.id.find('@') != std::string::npos && n.project != "-") {
    MOAT_TRY(auto doc, tx.Get(Collection::kServiceAccounts, AccountKey(n.project, n.id)));
    if (!doc) return Missing(n, name);
    MOAT_TRY(auto sa, ServiceAccountFromDocument(doc->data));
    return Resolved{std::move(*doc), std::move(sa)};
  }
  std::optional<std::string> parent;
  if (n.project != "-") parent = ProjectParent(n.project);
  MOAT_TRY(auto docs, internal::ListAll(tx, Collection::kServiceAccounts, parent));
  for (auto& doc : docs) {
    MOAT_TRY(auto sa, ServiceAccountFromDocument(doc.data));
    if (sa.delete_time) continue;
    if (sa.unique_id == n.id || sa.email == n.id) return Resolved{std::move(doc), std::move(sa)};
  }
  return Missing(n, name);
}

Status PutAccount(store::Transaction& tx, const ServiceAccountRecord& sa, const Document& doc) {
  PutOptions o;
  o.parent = doc.parent;
  o.precondition = Precondition::EtagMatches(doc.etag);
  MOAT_CHECK_OK(tx.Put(Collection::kServiceAccounts, doc.key, ServiceAccountToDocument(sa), o));
  return Ok();
}

// Replaces every policy member equal (case-insensitively) to `from` by `to`, in every
// document of the policies collection, keeping everything else of the documents.
Status RewritePolicyMembers(store::Transaction& tx, const std::string& from,
                            const std::string& to) {
  MOAT_TRY(auto docs, internal::ListAll(tx, Collection::kPolicies));
  const std::string from_lower = Lower(from);
  for (const auto& doc : docs) {
    auto parsed = json::ParseObject(doc.data, "policy");
    if (!parsed) {
      log::Warn("skipping an unreadable policy document", {{"key", doc.key}});
      continue;
    }
    bj::object& policy = *parsed;
    bool changed = false;
    if (auto* bindings = policy.if_contains("bindings"); bindings && bindings->is_array()) {
      for (auto& binding : bindings->as_array()) {
        if (!binding.is_object()) continue;
        auto* members = binding.as_object().if_contains("members");
        if (!members || !members->is_array()) continue;
        for (auto& m : members->as_array()) {
          if (m.is_string() && Lower(std::string_view(m.as_string())) == from_lower) {
            m = to;
            changed = true;
          }
        }
      }
    }
    if (!changed) continue;
    PutOptions o;
    o.parent = doc.parent;
    o.precondition = Precondition::EtagMatches(doc.etag);
    MOAT_CHECK_OK(tx.Put(Collection::kPolicies, doc.key, json::Serialize(policy), o));
  }
  return Ok();
}

// Moves a resource's own policy document from one key to another (if it has one).
Status MovePolicy(store::Transaction& tx, const std::string& from, const std::string& to) {
  MOAT_TRY(auto doc, tx.Get(Collection::kPolicies, from));
  if (!doc) return Ok();
  PutOptions o;
  o.parent = doc->parent;
  MOAT_CHECK_OK(tx.Put(Collection::kPolicies, to, doc->data, o));
  MOAT_CHECK_OK(tx.Delete(Collection::kPolicies, from));
  return Ok();
}

std::string ActiveMember(const ServiceAccountRecord& sa) { return "serviceAccount:" + sa.email; }
std::string DeletedMember(const ServiceAccountRecord& sa) {
  return "deleted:serviceAccount:" + sa.email + "?uid=" + sa.unique_id;
}

Result<std::optional<int>> ReadExpiryHours(store::Transaction& tx) {
  MOAT_TRY(auto doc, tx.Get(Collection::kSettings, kKeyExpirySetting));
  if (!doc) return std::optional<int>();
  auto o = json::ParseObject(doc->data, "setting");
  if (!o) return Internal("stored setting `iam.serviceAccountKeyExpiryHours` is corrupt");
  auto h = json::OptInt(*o, "hours");
  if (!h || !*h || **h < 1 || **h > kMaxKeyExpiryHours) {
    return Internal("stored setting `iam.serviceAccountKeyExpiryHours` is corrupt");
  }
  return std::optional<int>(static_cast<int>(**h));
}

std::string UrlEncode(std::string_view s) {
  static constexpr char kHex[] = "0123456789ABCDEF";
  std::string out;
  for (unsigned char c : s) {
    if (std::isalnum(c) || c == '-' || c == '.' || c == '_' || c == '~') {
      out.push_back(static_cast<char>(c));
    } else {
      out.push_back('%');
      out.push_back(kHex[c >> 4]);
      out.push_back(kHex[c & 15]);
    }
  }
  return out;
}

Error KeyMissing(std::string_view key_name) {
  return NotFound("service account key " + Quote(key_name) + " does not exist");
}

struct ResolvedKey {
  Resolved account;
  Document doc;
  KeyRecord key;
};

Result<ResolvedKey> ResolveKey(store::Transaction& tx, std::string_view key_name) {
  MOAT_TRY(KeyName kn, ParseKeyName(key_name));
  MOAT_TRY(Resolved account, ResolveLive(tx, kn.sa_name));
  MOAT_TRY(auto doc, tx.Get(Collection::kSaKeys, account.sa.Name() + "/keys/" + kn.key_id));
  if (!doc) return KeyMissing(key_name);
  MOAT_TRY(auto key, KeyFromDocument(doc->data));
  if (key.sa_unique_id != account.sa.unique_id) return KeyMissing(key_name);
  return ResolvedKey{std::move(account), std::move(*doc), std::move(key)};
}

Result<std::vector<KeyRecord>> KeysOfAccount(store::Transaction& tx,
                                             const ServiceAccountRecord& sa) {
  MOAT_TRY(auto docs, internal::ListAll(tx, Collection::kSaKeys, sa.Name()));
  std::vector<KeyRecord> out;
  for (const auto& doc : docs) {
    MOAT_TRY(auto key, KeyFromDocument(doc.data));
    if (key.sa_unique_id == sa.unique_id) out.push_back(std::move(key));
  }
  return out;
}

}  // namespace

boost::json::object CreatedKeyToJson(const CreatedKey& created) {
  bj::object o = KeyToJson(created.key, created.project_id, PublicKeyType::kNone);
  o["privateKeyType"] = "TYPE_GOOGLE_CREDENTIALS_FILE";
  o["privateKeyData"] = Base64Encode(created.key_file_json);
  return o;
}

ServiceAccounts::ServiceAccounts(store::Store& store, const Clock& clock, KeyFileOptions options)
    : store_(store), clock_(clock), options_(std::move(options)) {}

// --- accounts ----------------------------------------------------------------------------

Result<ServiceAccountRecord> ServiceAccounts::Create(std::string_view project_id,
                                                     std::string_view account_id,
                                                     std::string_view display_name,
                                                     std::string_view description,
                                                     CommitHook<ServiceAccountRecord>* hook) {
  if (project_id == "-") {
    return InvalidArgument("the `-` wildcard cannot be used to create a service account");
  }
  MOAT_CHECK_OK(ValidateProjectId(project_id));
  MOAT_CHECK_OK(ValidateAccountId(account_id));
  MOAT_CHECK_OK(ValidateTexts(display_name, description));

  ServiceAccountRecord sa;
  sa.project_id = std::string(project_id);
  sa.account_id = std::string(account_id);
  sa.email = sa.account_id + "@" + sa.project_id + std::string(kSaDomain);
  sa.unique_id = RandomNumericId();
  sa.display_name = std::string(display_name);
  sa.description = std::string(description);
  sa.create_time = clock_.Now();

  MOAT_TRY(auto tx, store_.Begin());
  const std::string project_key = ProjectParent(project_id);
  MOAT_TRY(auto project, tx->Get(Collection::kProjects, project_key));
  if (!project) {
    bj::object p;
    p["projectId"] = sa.project_id;
    p["createTime"] = FormatRfc3339(sa.create_time);
    MOAT_CHECK_OK(tx->Put(Collection::kProjects, project_key, json::Serialize(p)));
  }
  MOAT_TRY(auto existing, tx->Get(Collection::kServiceAccounts, sa.Name()));
  if (existing) {
    return AlreadyExists("Service account ID already exists within project projects/" +
                         sa.project_id + ".");
  }
  PutOptions o;
  o.parent = project_key;
  o.precondition = Precondition::MustNotExist();
  MOAT_CHECK_OK(tx->Put(Collection::kServiceAccounts, sa.Name(), ServiceAccountToDocument(sa), o));
  MOAT_CHECK_OK(internal::CommitWithHook(*tx, hook, sa));
  return sa;
}

Result<ServiceAccountRecord> ServiceAccounts::Get(std::string_view name) {
  MOAT_TRY(auto tx, store_.BeginRead());
  MOAT_TRY(Resolved r, ResolveLive(*tx, name));
  return std::move(r.sa);
}

Result<ServiceAccountPage> ServiceAccounts::List(std::string_view project_id, int page_size,
                                                 std::string_view page_token) {
  if (project_id == "-") {
    return InvalidArgument("the `-` wildcard cannot be used to list service accounts");
  }
  MOAT_CHECK_OK(ValidateProjectId(project_id));
  store::ListOptions options;
  options.parent = ProjectParent(project_id);
  options.page_size = page_size <= 0 ? 20 : std::min(page_size, 100);
  options.page_token = std::string(page_token);
  MOAT_TRY(auto tx, store_.BeginRead());
  MOAT_TRY(store::ListPage page, tx->List(Collection::kServiceAccounts, options));
  ServiceAccountPage out;
  for (const auto& doc : page.documents) {
    MOAT_TRY(auto sa, ServiceAccountFromDocument(doc.data));
    out.accounts.push_back(std::move(sa));
  }
  out.next_page_token = std::move(page.next_page_token);
  return out;
}

Result<ServiceAccountRecord> ServiceAccounts::Patch(std::string_view name,
                                                    std::string_view display_name,
                                                    std::string_view description,
                                                    std::string_view update_mask,
                                                    CommitHook<ServiceAccountRecord>* hook) {
  bool set_display = false, set_description = false;
  std::string_view rest = update_mask;
  while (!rest.empty()) {
    size_t comma = rest.find(',');
    std::string_view path = rest.substr(0, comma);
    rest = comma == std::string_view::npos ? std::string_view() : rest.substr(comma + 1);
    while (!path.empty() && path.front() == ' ') path.remove_prefix(1);
    while (!path.empty() && path.back() == ' ') path.remove_suffix(1);
    if (path == "displayName" || path == "display_name") {
      set_display = true;
    } else if (path == "description") {
      set_description = true;
    } else {
      return InvalidArgument("updateMask path " + Quote(path) +
                             " is not supported: only displayName and description can be updated");
    }
  }
  if (!set_display && !set_description) {
    return InvalidArgument("updateMask must name displayName and/or description");
  }
  MOAT_CHECK_OK(ValidateTexts(set_display ? display_name : "", set_description ? description : ""));
  MOAT_TRY(auto tx, store_.Begin());
  MOAT_TRY(Resolved r, ResolveLive(*tx, name));
  if (set_display) r.sa.display_name = std::string(display_name);
  if (set_description) r.sa.description = std::string(description);
  MOAT_CHECK_OK(PutAccount(*tx, r.sa, r.doc));
  MOAT_CHECK_OK(internal::CommitWithHook(*tx, hook, r.sa));
  return std::move(r.sa);
}

Status ServiceAccounts::SetDisabled(std::string_view name, bool disabled,
                                    CommitHook<ServiceAccountRecord>* hook) {
  MOAT_TRY(auto tx, store_.Begin());
  MOAT_TRY(Resolved r, ResolveLive(*tx, name));
  if (r.sa.disabled != disabled) {
    r.sa.disabled = disabled;
    MOAT_CHECK_OK(PutAccount(*tx, r.sa, r.doc));
  } else if (!hook) {
    return Ok();
  }
  MOAT_CHECK_OK(internal::CommitWithHook(*tx, hook, r.sa));
  return Ok();
}

Status ServiceAccounts::Disable(std::string_view name, CommitHook<ServiceAccountRecord>* hook) {
  return SetDisabled(name, true, hook);
}
Status ServiceAccounts::Enable(std::string_view name, CommitHook<ServiceAccountRecord>* hook) {
  return SetDisabled(name, false, hook);
}

Status ServiceAccounts::Delete(std::string_view name, CommitHook<ServiceAccountRecord>* hook) {
  MOAT_TRY(auto tx, store_.Begin());
  MOAT_TRY(Resolved r, ResolveLive(*tx, name));
  ServiceAccountRecord sa = r.sa;
  sa.delete_time = clock_.Now();
  const std::string deleted_key = AccountKey(sa.project_id, sa.unique_id);
  PutOptions o;
  o.parent = DeletedParent(sa.project_id);
  o.precondition = Precondition::MustNotExist();
  MOAT_CHECK_OK(
      tx->Put(Collection::kServiceAccounts, deleted_key, ServiceAccountToDocument(sa), o));
  MOAT_CHECK_OK(
      tx->Delete(Collection::kServiceAccounts, r.doc.key, Precondition::EtagMatches(r.doc.etag)));
  MOAT_CHECK_OK(MovePolicy(*tx, sa.Name(), deleted_key));
  MOAT_CHECK_OK(RewritePolicyMembers(*tx, ActiveMember(sa), DeletedMember(sa)));
  MOAT_CHECK_OK(internal::CommitWithHook(*tx, hook, sa));
  return Ok();
}

Result<ServiceAccountRecord> ServiceAccounts::Undelete(std::string_view name,
                                                       CommitHook<ServiceAccountRecord>* hook) {
  MOAT_TRY(SaName n, ParseSaName(name));
  MOAT_TRY(auto tx, store_.Begin());
  // A live account answers as itself.
  if (auto live = ResolveLive(*tx, name)) {
    if (hook) MOAT_CHECK_OK(internal::CommitWithHook(*tx, hook, live->sa));
    return std::move(live->sa);
  }

  std::optional<std::string> parent;
  if (n.project != "-") parent = DeletedParent(n.project);
  MOAT_TRY(auto docs, internal::ListAll(*tx, Collection::kServiceAccounts, parent));
  std::optional<Resolved> found;
  for (auto& doc : docs) {
    MOAT_TRY(auto sa, ServiceAccountFromDocument(doc.data));
    if (!sa.delete_time || (sa.unique_id != n.id && sa.email != n.id)) continue;
    // Several deleted accounts may share an email: the most recently deleted one wins.
    if (!found || *sa.delete_time > *found->sa.delete_time) {
      found = Resolved{std::move(doc), std::move(sa)};
    }
  }
  if (!found) return NotFound("deleted service account " + Quote(name) + " does not exist");
  ServiceAccountRecord sa = std::move(found->sa);
  if (clock_.Now() - *sa.delete_time >= kUndeleteWindow) {
    return NotFound("service account " + Quote(name) +
                    " was deleted more than 30 days ago and can no longer be restored");
  }
  MOAT_TRY(auto taken, tx->Get(Collection::kServiceAccounts, sa.Name()));
  if (taken) {
    return FailedPrecondition("cannot restore service account " + Quote(sa.unique_id) +
                              ": a new service account with the email " + Quote(sa.email) +
                              " exists; delete it first");
  }
  const std::string deleted_key = found->doc.key;
  sa.delete_time.reset();
  PutOptions o;
  o.parent = ProjectParent(sa.project_id);
  o.precondition = Precondition::MustNotExist();
  MOAT_CHECK_OK(tx->Put(Collection::kServiceAccounts, sa.Name(), ServiceAccountToDocument(sa), o));
  MOAT_CHECK_OK(tx->Delete(Collection::kServiceAccounts, deleted_key,
                           Precondition::EtagMatches(found->doc.etag)));
  MOAT_CHECK_OK(MovePolicy(*tx, deleted_key, sa.Name()));
  MOAT_CHECK_OK(RewritePolicyMembers(*tx, DeletedMember(sa), ActiveMember(sa)));
  MOAT_CHECK_OK(internal::CommitWithHook(*tx, hook, sa));
  return sa;
}

Result<int> ServiceAccounts::PurgeDeleted() {
  const TimePoint now = clock_.Now();
  MOAT_TRY(auto tx, store_.Begin());
  MOAT_TRY(auto docs, internal::ListAll(*tx, Collection::kServiceAccounts));
  int purged = 0;
  for (const auto& doc : docs) {
    MOAT_TRY(auto sa, ServiceAccountFromDocument(doc.data));
    if (!sa.delete_time || now - *sa.delete_time < kUndeleteWindow) continue;
    MOAT_CHECK_OK(tx->Delete(Collection::kServiceAccounts, doc.key));
    MOAT_TRY(auto keys, internal::ListAll(*tx, Collection::kSaKeys, sa.Name()));
    for (const auto& key_doc : keys) {
      MOAT_TRY(auto key, KeyFromDocument(key_doc.data));
      if (key.sa_unique_id == sa.unique_id) {
        MOAT_CHECK_OK(tx->Delete(Collection::kSaKeys, key_doc.key));
      }
    }
    MOAT_CHECK_OK(tx->Delete(Collection::kPolicies, doc.key));
    ++purged;
  }
  MOAT_CHECK_OK(tx->Commit());
  return purged;
}

// --- keys --------------------------------------------------------------------------------

Result<KeyRecord> ServiceAccounts::StoreNewKey(std::string_view sa_name,
                                               const std::string& expected_unique_id, KeyRecord key,
                                               std::string* project_id,
                                               CommitHook<KeyRecord>* hook) {
  MOAT_TRY(auto tx, store_.Begin());
  MOAT_TRY(Resolved r, ResolveLive(*tx, sa_name));
  if (!expected_unique_id.empty() && r.sa.unique_id != expected_unique_id) {
    return Aborted("service account " + Quote(sa_name) + " changed concurrently; retry");
  }
  if (r.sa.disabled) {
    return FailedPrecondition("service account " + Quote(r.sa.email) +
                              " is disabled; enable it before adding keys");
  }
  MOAT_TRY(auto existing, KeysOfAccount(*tx, r.sa));
  if (static_cast<int>(existing.size()) >= kMaxKeysPerServiceAccount) {
    return FailedPrecondition("service account " + Quote(r.sa.email) + " already has " +
                              std::to_string(kMaxKeysPerServiceAccount) +
                              " keys, the maximum per account; delete an unused key first");
  }
  // Key ids are global (the JWT `kid`): the same public key may not be registered twice.
  MOAT_TRY(auto all, internal::ListAll(*tx, Collection::kSaKeys));
  for (const auto& doc : all) {
    MOAT_TRY(auto other, KeyFromDocument(doc.data));
    if (other.key_id == key.key_id) {
      return AlreadyExists("this public key is already registered as key " + Quote(key.key_id));
    }
  }
  key.sa_email = r.sa.email;
  key.sa_unique_id = r.sa.unique_id;
  PutOptions o;
  o.parent = r.sa.Name();
  o.precondition = Precondition::MustNotExist();
  MOAT_CHECK_OK(tx->Put(Collection::kSaKeys, key.Name(r.sa.project_id),
                        KeyToDocument(key, r.sa.project_id), o));
  MOAT_CHECK_OK(internal::CommitWithHook(*tx, hook, key));
  *project_id = r.sa.project_id;
  return key;
}

Result<CreatedKey> ServiceAccounts::CreateKey(std::string_view sa_name,
                                              std::string_view key_algorithm,
                                              std::string_view private_key_type,
                                              CommitHook<KeyRecord>* hook) {
  if (!key_algorithm.empty() && key_algorithm != "KEY_ALG_UNSPECIFIED" &&
      key_algorithm != "KEY_ALG_RSA_2048") {
    return InvalidArgument("keyAlgorithm " + Quote(key_algorithm) +
                           " is not supported: only KEY_ALG_RSA_2048 keys can be created");
  }
  if (!private_key_type.empty() && private_key_type != "TYPE_UNSPECIFIED" &&
      private_key_type != "TYPE_GOOGLE_CREDENTIALS_FILE") {
    return InvalidArgument("privateKeyType " + Quote(private_key_type) +
                           " is not supported: only TYPE_GOOGLE_CREDENTIALS_FILE key files are "
                           "issued");
  }
  // Read what the key depends on, then generate it outside the write transaction.
  ServiceAccountRecord sa;
  std::optional<int> expiry_hours;
  {
    MOAT_TRY(auto tx, store_.BeginRead());
    MOAT_TRY(Resolved r, ResolveLive(*tx, sa_name));
    if (r.sa.disabled) {
      return FailedPrecondition("service account " + Quote(r.sa.email) +
                                " is disabled; enable it before adding keys");
    }
    sa = std::move(r.sa);
    MOAT_TRY(expiry_hours, ReadExpiryHours(*tx));
  }
  const TimePoint now = TruncateToSeconds(clock_.Now());
  MOAT_TRY(auto private_key, crypto::PrivateKey::GenerateRsa2048());
  crypto::PublicKey public_key = private_key.Public();
  KeyRecord key;
  key.key_id = crypto::KeyId(public_key);
  key.public_key_pem = public_key.ToSpkiPem();
  key.valid_after = now;
  key.valid_before = expiry_hours ? now + std::chrono::hours(*expiry_hours) : TimePoint::max();
  key.origin = KeyOrigin::kGoogleProvided;
  MOAT_TRY(key.cert_pem,
           crypto::CreateSelfSignedCertificate(private_key, sa.unique_id, now,
                                               key.valid_before == TimePoint::max()
                                                   ? TruncateToSeconds(TimePoint::max())
                                                   : key.valid_before));
  CreatedKey out;
  MOAT_TRY(out.key, StoreNewKey(sa_name, sa.unique_id, std::move(key), &out.project_id, hook));

  bj::object file;
  file["type"] = "service_account";
  file["project_id"] = out.project_id;
  file["private_key_id"] = out.key.key_id;
  file["private_key"] = private_key.ToPkcs8Pem();
  file["client_email"] = out.key.sa_email;
  file["client_id"] = out.key.sa_unique_id;
  file["auth_uri"] = options_.auth_uri;
  file["token_uri"] = options_.token_uri;
  file["auth_provider_x509_cert_url"] = options_.api_origin + "/oauth2/v1/certs";
  file["client_x509_cert_url"] =
      options_.api_origin + "/robot/v1/metadata/x509/" + UrlEncode(out.key.sa_email);
  file["universe_domain"] = options_.universe_domain;
  out.key_file_json = json::Serialize(file);
  return out;
}

Result<KeyRecord> ServiceAccounts::UploadKey(std::string_view sa_name,
                                             std::string_view public_key_data,
                                             CommitHook<KeyRecord>* hook) {
  auto pem = Base64Decode(public_key_data);
  if (!pem) return InvalidArgument("publicKeyData must be base64 of a PEM X.509 certificate");
  auto cert = crypto::ParseCertificatePem(*pem);
  if (!cert) {
    return InvalidArgument("publicKeyData is not a usable X.509 certificate: " +
                           cert.error().message);
  }
  if (cert->key.type() != crypto::KeyType::kRsa || cert->key.bits() != 2048) {
    return InvalidArgument("the uploaded certificate must hold an RSA 2048-bit key");
  }
  const TimePoint now = clock_.Now();
  if (cert->not_after <= now) return InvalidArgument("the uploaded certificate has expired");

  std::optional<int> expiry_hours;
  {
    MOAT_TRY(auto tx, store_.BeginRead());
    MOAT_TRY(expiry_hours, ReadExpiryHours(*tx));
  }
  KeyRecord key;
  key.key_id = crypto::KeyId(cert->key);
  key.public_key_pem = cert->key.ToSpkiPem();
  key.cert_pem = *pem;
  key.valid_after = cert->not_before;
  key.valid_before = cert->not_after;
  if (expiry_hours) {
    key.valid_before =
        std::min(key.valid_before, TruncateToSeconds(now) + std::chrono::hours(*expiry_hours));
  }
  key.origin = KeyOrigin::kUserProvided;
  std::string project_id;
  return StoreNewKey(sa_name, "", std::move(key), &project_id, hook);
}

Result<std::vector<KeyRecord>> ServiceAccounts::ListKeys(
    std::string_view sa_name, const std::vector<std::string>& key_types) {
  bool user_managed = key_types.empty();
  for (const auto& t : key_types) {
    if (t == "USER_MANAGED") {
      user_managed = true;
    } else if (t != "SYSTEM_MANAGED") {
      return InvalidArgument("invalid keyTypes value " + Quote(t) +
                             ": expected USER_MANAGED or SYSTEM_MANAGED");
    }
  }
  MOAT_TRY(auto tx, store_.BeginRead());
  MOAT_TRY(Resolved r, ResolveLive(*tx, sa_name));
  if (!user_managed) return std::vector<KeyRecord>();
  return KeysOfAccount(*tx, r.sa);
}

Result<KeyRecord> ServiceAccounts::GetKey(std::string_view key_name) {
  MOAT_TRY(auto tx, store_.BeginRead());
  MOAT_TRY(ResolvedKey rk, ResolveKey(*tx, key_name));
  return std::move(rk.key);
}

Status ServiceAccounts::DeleteKey(std::string_view key_name, CommitHook<KeyRecord>* hook) {
  MOAT_TRY(auto tx, store_.Begin());
  MOAT_TRY(ResolvedKey rk, ResolveKey(*tx, key_name));
  MOAT_CHECK_OK(
      tx->Delete(Collection::kSaKeys, rk.doc.key, Precondition::EtagMatches(rk.doc.etag)));
  MOAT_CHECK_OK(internal::CommitWithHook(*tx, hook, rk.key));
  return Ok();
}

Status ServiceAccounts::SetKeyDisabled(std::string_view key_name, bool disabled,
                                       CommitHook<KeyRecord>* hook) {
  MOAT_TRY(auto tx, store_.Begin());
  MOAT_TRY(ResolvedKey rk, ResolveKey(*tx, key_name));
  if (rk.key.disabled != disabled) {
    rk.key.disabled = disabled;
    PutOptions o;
    o.parent = rk.doc.parent;
    o.precondition = Precondition::EtagMatches(rk.doc.etag);
    MOAT_CHECK_OK(tx->Put(Collection::kSaKeys, rk.doc.key,
                          KeyToDocument(rk.key, rk.account.sa.project_id), o));
  } else if (!hook) {
    return Ok();
  }
  MOAT_CHECK_OK(internal::CommitWithHook(*tx, hook, rk.key));
  return Ok();
}

Status ServiceAccounts::DisableKey(std::string_view key_name, CommitHook<KeyRecord>* hook) {
  return SetKeyDisabled(key_name, true, hook);
}
Status ServiceAccounts::EnableKey(std::string_view key_name, CommitHook<KeyRecord>* hook) {
  return SetKeyDisabled(key_name, false, hook);
}

// --- settings ----------------------------------------------------------------------------

Result<std::optional<int>> ServiceAccounts::GetKeyExpiryHours() {
  MOAT_TRY(auto tx, store_.BeginRead());
  return ReadExpiryHours(*tx);
}

Status ServiceAccounts::SetKeyExpiryHours(std::optional<int> hours) {
  if (hours && (*hours < 1 || *hours > kMaxKeyExpiryHours)) {
    return InvalidArgument(
        "iam.serviceAccountKeyExpiryHours must be between 1 and 2160 hours, "
        "not " +
        std::to_string(*hours));
  }
  MOAT_TRY(auto tx, store_.Begin());
  if (hours) {
    bj::object o;
    o["hours"] = *hours;
    MOAT_CHECK_OK(tx->Put(Collection::kSettings, kKeyExpirySetting, json::Serialize(o)));
  } else {
    MOAT_CHECK_OK(tx->Delete(Collection::kSettings, kKeyExpirySetting));
  }
  MOAT_CHECK_OK(tx->Commit());
  return Ok();
}

}  // namespace moat::identity
