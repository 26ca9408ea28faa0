// Every handler group of the API, registered on one router.
#include "api/routes.h"

namespace moat::api {

void RegisterAllRoutes(http::Router& router, const Env& env) {
  RegisterRunServiceRoutes(router, env);
  RegisterPolicyRoutes(router, env);
  RegisterRoleRoutes(router, env);
  RegisterTroubleshootRoutes(router, env);
  RegisterAuditRoutes(router, env);
}

}  // namespace moat::api
