#include "server/bootstrap.h"

#include <fcntl.h>
#include <unistd.h>

#include <boost/json.hpp>
#include <cerrno>
#include <cstring>

#include "common/json.h"
#include "common/log.h"

namespace moat::server {
namespace {

Status WriteSecretFile(const std::string& path, const std::string& content) {
  std::string tmp = path + ".tmp";
  ::unlink(tmp.c_str());
  int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
  if (fd < 0) {
    return Unavailable("cannot create `" + tmp + "`: " + std::strerror(errno));
  }
  size_t off = 0;
  while (off < content.size()) {
    ssize_t n = ::write(fd, content.data() + off, content.size() - off);
    if (n < 0) {
      if (errno == EINTR) continue;
      int err = errno;
      ::close(fd);
      ::unlink(tmp.c_str());
      return Unavailable("cannot write `" + tmp + "`: " + std::strerror(err));
    }
    off += static_cast<size_t>(n);
  }
  if (::fsync(fd) != 0 || ::close(fd) != 0) {
    ::unlink(tmp.c_str());
    return Unavailable("cannot write `" + tmp + "`: " + std::strerror(errno));
  }
  if (::rename(tmp.c_str(), path.c_str()) != 0) {
    ::unlink(tmp.c_str());
    return Unavailable("cannot write `" + path + "`: " + std::strerror(errno));
  }
  return Ok();
}

}  // namespace

Result<std::string> Bootstrap(store::Store& store, identity::ServiceAccounts& accounts,
                              const std::string& home, const Clock&) {
  std::string key_path = home + "/" + kAdminKeyFile;
  MOAT_TRY(auto root, store.Get(store::Collection::kPolicies, "root"));
  if (root) return key_path;  // already bootstrapped

  std::string email = std::string(kAdminAccountId) + "@" + kAdminProject + ".iam.gserviceaccount.com";
  std::string name = std::string("projects/") + kAdminProject + "/serviceAccounts/" + email;
  auto created = accounts.Create(kAdminProject, kAdminAccountId, "Moat administrator",
                                 "Created by the first `moat serve`; holds roles/owner on the "
                                 "root policy.");
  if (!created && created.error().code != Code::kAlreadyExists) return created.error();
  MOAT_TRY(auto key, accounts.CreateKey(name));
  MOAT_CHECK_OK(WriteSecretFile(key_path, key.key_file_json));

  boost::json::object policy;
  policy["version"] = 1;
  boost::json::array bindings;
  boost::json::object owner;
  owner["role"] = "roles/owner";
  owner["members"] = boost::json::array{boost::json::value("serviceAccount:" + email)};
  bindings.push_back(std::move(owner));
  policy["bindings"] = std::move(bindings);
  MOAT_TRY(auto tx, store.Begin());
  store::PutOptions put;
  put.precondition = store::Precondition::MustNotExist();
  MOAT_TRY(auto doc, tx->Put(store::Collection::kPolicies, "root", json::Serialize(policy), put));
  (void)doc;
  store::AuditEntry audit;
  audit.kind = store::AuditKind::kAdminActivity;
  audit.principal = "system:bootstrap";
  audit.method = "moat.Bootstrap";
  audit.resource = "root";
  audit.status = "OK";
  boost::json::object details;
  details["grantedOwnerTo"] = "serviceAccount:" + email;
  details["keyFile"] = key_path;
  audit.details = json::Serialize(details);
  MOAT_CHECK_OK(tx->AppendAudit(audit));
  MOAT_TRY(int64_t rev, tx->Commit());
  (void)rev;
  log::Info("bootstrapped a new installation",
            {{"admin", "serviceAccount:" + email}, {"key_file", key_path}});
  return key_path;
}

}  // namespace moat::server
