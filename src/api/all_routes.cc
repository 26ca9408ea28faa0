// Every handler group of the API, registered on one router.
#include "api/routes.h"

namespace moat::api {

void RegisterAllRoutes(http::Router& router, const Env& env) {
  RegisterRunServiceRoutes(router, env);
  RegisterPolicyRoutes(router, env);
  RegisterRoleRoutes(router, env);
  RegisterTroubleshootRoutes(router, env);
  RegisterAuditRoutes(router, env);
  RegisterIamServiceAccountRoutes(router, env);
  RegisterIamKeyRoutes(router, env);
  RegisterCredentialsRoutes(router, env);
  RegisterOAuthRoutes(router, env);
  RegisterDiscoveryRoutes(router, env);
  RegisterDirectoryRoutes(router, env);
  RegisterOpsRoutes(router, env);
  RegisterInvokeRoutes(router, env);
}

}  // namespace moat::api
