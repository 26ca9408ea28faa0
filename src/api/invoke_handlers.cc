// `GET /v2/projects/{p}/locations/{l}/services/{s}:uri` (Moat extension): a service's URLs for
// any authenticated caller, so `moat run services call` works for an invoker (who holds
// run.routes.invoke but not run.services.get) and shows a refused caller the gateway's own 403.
// The URL is a function of the name the caller already knows, and whether a host exists is
// already visible from the gateway (404 for unknown hosts), so this reveals nothing new.
#include <boost/json.hpp>

#include "api/iam_common.h"
#include "api/routes.h"
#include "state/service.h"

namespace moat::api {

void RegisterInvokeRoutes(http::Router& router, const Env& env) {
  AddRoute(
      router, "GET", "/v2/projects/{project}/locations/{location}/services/{service}:uri",
      [&env](const http::Request& req) {
        return Handle(env, req, [&](Scope& s) -> Result<http::Response> {
          std::string name = "projects/" + std::string(req.PathVar("project")) + "/locations/" +
                             std::string(req.PathVar("location")) + "/services/" +
                             std::string(req.PathVar("service"));
          if (!s.caller().authenticated()) {
            return Unauthenticated("request is missing a valid credential");
          }
          const state::ServiceSpec* spec = s.view().FindByName(name);
          if (!spec) return NotFound("service `" + name + "` does not exist");
          auto urls = state::UrlsFor(*spec, env.config.gateway_base);
          boost::json::object body;
          body["name"] = name;
          body["uri"] = urls.front();
          boost::json::array arr;
          for (auto& u : urls) arr.emplace_back(u);
          body["urls"] = std::move(arr);
          return JsonResponse(body);
        });
      },
      /*blocking=*/false);
}

}  // namespace moat::api
