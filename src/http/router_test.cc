#include "http/router.h"

#include <gtest/gtest.h>

namespace moat::http {
namespace {

Response Named(std::string name) { return Response::Text(200, std::move(name)); }

Router MakeRouter() {
  Router r;
  EXPECT_TRUE(r.Add("GET", "/v2/projects/{project}/locations/{location}/services/{service}",
                    [](const Request&) { return Named("get"); }));
  EXPECT_TRUE(r.Add("DELETE", "/v2/projects/{project}/locations/{location}/services/{service}",
                    [](const Request&) { return Named("delete"); }));
  EXPECT_TRUE(r.Add("GET",
                    "/v2/projects/{project}/locations/{location}/services/{service}:getIamPolicy",
                    [](const Request&) { return Named("getIamPolicy"); }));
  EXPECT_TRUE(r.Add("POST",
                    "/v2/projects/{project}/locations/{location}/services/{service}:setIamPolicy",
                    [](const Request&) { return Named("setIamPolicy"); }));
  EXPECT_TRUE(r.Add("GET", "/v2/projects/{project}/locations/{location}/services/-",
                    [](const Request&) { return Named("literal-dash"); }));
  EXPECT_TRUE(r.Add("GET", "/static/{rest=**}", [](const Request&) { return Named("static"); }));
  EXPECT_TRUE(r.Add("GET", "/healthz", [](const Request&) { return Named("healthz"); }));
  return r;
}

Response Call(const Router& r, std::string method, std::string target, Request* out = nullptr) {
  Request req;
  req.method = std::move(method);
  req.target = std::move(target);
  req.path = req.target.substr(0, req.target.find('?'));
  Response resp = r.Dispatch(req);
  if (out) *out = req;
  return resp;
}

TEST(HttpRouter, MatchesPathVariables) {
  Router r = MakeRouter();
  Request req;
  Response resp = Call(r, "GET", "/v2/projects/p1/locations/us-central1/services/svc", &req);
  EXPECT_EQ(resp.body, "get");
  EXPECT_EQ(req.PathVar("project"), "p1");
  EXPECT_EQ(req.PathVar("location"), "us-central1");
  EXPECT_EQ(req.PathVar("service"), "svc");
}

TEST(HttpRouter, CustomVerbIsNotSwallowedByVariable) {
  Router r = MakeRouter();
  Request req;
  EXPECT_EQ(Call(r, "GET", "/v2/projects/p/locations/l/services/svc:getIamPolicy", &req).body,
            "getIamPolicy");
  EXPECT_EQ(req.PathVar("service"), "svc");
  EXPECT_EQ(Call(r, "POST", "/v2/projects/p/locations/l/services/svc:setIamPolicy", &req).body,
            "setIamPolicy");
  // An unknown verb is not the plain resource.
  EXPECT_EQ(Call(r, "GET", "/v2/projects/p/locations/l/services/svc:nope").status, 404);
  // Wrong method on a verb route → 405 listing only that verb's methods.
  Response resp = Call(r, "POST", "/v2/projects/p/locations/l/services/svc:getIamPolicy");
  EXPECT_EQ(resp.status, 405);
  EXPECT_EQ(resp.headers.Get("Allow"), "GET, HEAD");
}

TEST(HttpRouter, Distinguishes404From405) {
  Router r = MakeRouter();
  EXPECT_EQ(Call(r, "GET", "/v2/projects/p/locations/l/nothing/x").status, 404);
  EXPECT_EQ(Call(r, "GET", "/v2/projects/p").status, 404);
  EXPECT_EQ(Call(r, "GET", "/v2/projects/p/locations/l/services/").status, 404);  // empty var
  Response resp = Call(r, "PATCH", "/v2/projects/p/locations/l/services/svc");
  EXPECT_EQ(resp.status, 405);
  EXPECT_EQ(resp.headers.Get("Allow"), "DELETE, GET, HEAD");
  EXPECT_NE(resp.body.find("\"status\":\"UNIMPLEMENTED\""), std::string::npos);
  Response nf = Call(r, "GET", "/nope");
  EXPECT_NE(nf.body.find("\"code\":404"), std::string::npos);
}

TEST(HttpRouter, LiteralBeatsVariableAndHeadFallsBackToGet) {
  Router r = MakeRouter();
  EXPECT_EQ(Call(r, "GET", "/v2/projects/p/locations/l/services/-").body, "literal-dash");
  EXPECT_EQ(Call(r, "HEAD", "/healthz").body, "healthz");
}

TEST(HttpRouter, DecodesSegmentsAndRestVariables) {
  Router r = MakeRouter();
  Request req;
  EXPECT_EQ(Call(r, "GET", "/v2/projects/a%20b/locations/l/services/s%3Ax", &req).body, "get");
  EXPECT_EQ(req.PathVar("project"), "a b");
  EXPECT_EQ(req.PathVar("service"), "s:x");  // an encoded colon is not a verb separator
  EXPECT_EQ(Call(r, "GET", "/static/css/site.css", &req).body, "static");
  EXPECT_EQ(req.PathVar("rest"), "css/site.css");
  EXPECT_EQ(Call(r, "GET", "/v2/projects/%zz/locations/l/services/s").status, 400);
}

TEST(HttpRouter, RejectsMalformedPatterns) {
  Router r;
  auto h = [](const Request&) { return Response{}; };
  EXPECT_FALSE(r.Add("GET", "nope", h));
  EXPECT_FALSE(r.Add("GET", "/a/{", h));
  EXPECT_FALSE(r.Add("GET", "/a/{}", h));
  EXPECT_FALSE(r.Add("GET", "/a/{x=**}/b", h));
  EXPECT_FALSE(r.Add("GET", "/a/{x=foo}", h));
  EXPECT_FALSE(r.Add("GET", "/a/b:", h));
  EXPECT_FALSE(r.Add("GET", "/a/x{y}", h));
}

TEST(HttpRouter, HandlerExceptionBecomes500) {
  Router r;
  ASSERT_TRUE(r.Add("GET", "/boom", [](const Request&) -> Response {
    throw std::runtime_error("database is on fire");
  }));
  Response resp = Call(r, "GET", "/boom");
  EXPECT_EQ(resp.status, 500);
  EXPECT_EQ(resp.body.find("fire"), std::string::npos);  // no internals leak
}

TEST(HttpRouter, QueryDecoding) {
  auto q = ParseQuery("a=1&b=x+y&c=%2F&d&=e&f=%zz");
  ASSERT_EQ(q.size(), 5u);  // f=%zz is malformed and dropped
  EXPECT_EQ(q[4].first, "");
  EXPECT_EQ(q[4].second, "e");
  EXPECT_EQ(q[1].second, "x y");
  EXPECT_EQ(q[2].second, "/");
  EXPECT_EQ(q[3].first, "d");
}

}  // namespace
}  // namespace moat::http
