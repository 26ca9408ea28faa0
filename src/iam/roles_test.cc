#include "iam/roles.h"

#include <gtest/gtest.h>

#include <algorithm>

namespace moat::iam {
namespace {

bool Has(const RoleCatalog& c, std::string_view role, std::string_view perm) {
  const Role* r = c.Find(role);
  EXPECT_NE(r, nullptr) << role;
  if (!r) return false;
  bool in_list = std::binary_search(r->included_permissions.begin(), r->included_permissions.end(),
                                    std::string(perm));
  bool in_bits = r->permissions.test(*PermissionIndex(perm));
  EXPECT_EQ(in_list, in_bits) << role << " " << perm;
  return in_bits;
}

TEST(RolesTest, InvokerRolesHoldExactlyGooglesPermissions) {
  const auto& c = RoleCatalog::Predefined();
  EXPECT_EQ(
      c.Find("roles/run.invoker")->included_permissions,
      (std::vector<std::string>{"run.instances.invoke", "run.jobs.run", "run.routes.invoke"}));
  EXPECT_EQ(c.Find("roles/run.servicesInvoker")->included_permissions,
            (std::vector<std::string>{"run.routes.invoke"}));
  EXPECT_EQ(c.Find("roles/iam.serviceAccountOpenIdTokenCreator")->included_permissions,
            (std::vector<std::string>{"iam.serviceAccounts.getOpenIdToken"}));
}

TEST(RolesTest, BasicRolesFollowGoogleSemantics) {
  const auto& c = RoleCatalog::Predefined();
  for (auto role : {"roles/owner", "roles/editor", "roles/run.admin", "roles/run.developer",
                    "roles/run.invoker"}) {
    EXPECT_TRUE(Has(c, role, "run.routes.invoke")) << role;
  }
  EXPECT_FALSE(Has(c, "roles/viewer", "run.routes.invoke"));
  EXPECT_FALSE(Has(c, "roles/run.viewer", "run.routes.invoke"));
  // Owner: everything but impersonation.
  EXPECT_TRUE(Has(c, "roles/owner", "run.services.setIamPolicy"));
  EXPECT_TRUE(Has(c, "roles/owner", "resourcemanager.projects.setIamPolicy"));
  EXPECT_TRUE(Has(c, "roles/owner", "iam.serviceAccounts.actAs"));
  for (auto p : {"iam.serviceAccounts.getAccessToken", "iam.serviceAccounts.getOpenIdToken",
                 "iam.serviceAccounts.signBlob", "iam.serviceAccounts.signJwt",
                 "iam.serviceAccounts.implicitDelegation"}) {
    EXPECT_FALSE(Has(c, "roles/owner", p)) << p;
    EXPECT_FALSE(Has(c, "roles/editor", p)) << p;
    EXPECT_TRUE(Has(c, "roles/iam.serviceAccountTokenCreator", p)) << p;
  }
  // Editor: no IAM policy changes.
  EXPECT_TRUE(Has(c, "roles/editor", "run.services.update"));
  EXPECT_TRUE(Has(c, "roles/editor", "run.services.getIamPolicy"));
  EXPECT_TRUE(Has(c, "roles/editor", "iam.serviceAccountKeys.create"));
  EXPECT_FALSE(Has(c, "roles/editor", "run.services.setIamPolicy"));
  EXPECT_FALSE(Has(c, "roles/editor", "iam.serviceAccounts.setIamPolicy"));
  EXPECT_FALSE(Has(c, "roles/editor", "resourcemanager.projects.setIamPolicy"));
  // Viewer reads.
  EXPECT_TRUE(Has(c, "roles/viewer", "run.services.getIamPolicy"));
  EXPECT_TRUE(Has(c, "roles/viewer", "iam.serviceAccountKeys.list"));
  EXPECT_TRUE(Has(c, "roles/viewer", "moat.auditLogs.list"));
  EXPECT_FALSE(Has(c, "roles/viewer", "run.services.update"));
  // Run roles.
  EXPECT_FALSE(Has(c, "roles/run.developer", "run.services.setIamPolicy"));
  EXPECT_FALSE(Has(c, "roles/run.developer", "iam.serviceAccounts.actAs"));
  EXPECT_TRUE(Has(c, "roles/run.admin", "run.services.setIamPolicy"));
  EXPECT_FALSE(Has(c, "roles/run.admin", "iam.serviceAccounts.actAs"));
  EXPECT_FALSE(Has(c, "roles/run.viewer", "run.services.setIamPolicy"));
  EXPECT_TRUE(Has(c, "roles/iam.serviceAccountUser", "iam.serviceAccounts.actAs"));
  EXPECT_FALSE(Has(c, "roles/iam.serviceAccountAdmin", "iam.serviceAccountKeys.create"));
  EXPECT_TRUE(Has(c, "roles/iam.serviceAccountAdmin", "iam.serviceAccounts.setIamPolicy"));
  EXPECT_FALSE(Has(c, "roles/iam.serviceAccountAdmin", "iam.serviceAccounts.getOpenIdToken"));
  // Moat resources.
  EXPECT_TRUE(Has(c, "roles/owner", "moat.groups.update"));
  EXPECT_FALSE(Has(c, "roles/editor", "moat.groups.update"));
  EXPECT_TRUE(Has(c, "roles/editor", "moat.groups.get"));
}

TEST(RolesTest, UnknownRolesAreRejected) {
  auto st = RoleCatalog::Predefined().CheckUsable("roles/foo", "");
  ASSERT_FALSE(st);
  EXPECT_EQ(st.error().code, Code::kInvalidArgument);
  EXPECT_EQ(st.error().message, "role `roles/foo` is not supported");
}

TEST(RolesTest, CustomRolesAreValidatedAndScopedToTheirProject) {
  RoleCatalog c;
  Role r;
  r.name = "projects/p1/roles/invokerLite";
  r.title = "Invoker lite";
  r.included_permissions = {"run.routes.invoke", "run.services.get", "run.routes.invoke"};
  ASSERT_TRUE(c.AddCustomRole(r));
  const Role* got = c.Find("projects/p1/roles/invokerLite");
  ASSERT_NE(got, nullptr);
  EXPECT_TRUE(got->custom);
  EXPECT_EQ(got->parent, "projects/p1");
  EXPECT_EQ(got->included_permissions.size(), 2u);
  EXPECT_TRUE(c.CheckUsable(r.name, "projects/p1/locations/r/services/s"));
  EXPECT_TRUE(c.CheckUsable(r.name, "projects/p1"));
  auto other = c.CheckUsable(r.name, "projects/p2/locations/r/services/s");
  ASSERT_FALSE(other);
  EXPECT_EQ(other.error().message,
            "role `projects/p1/roles/invokerLite` is not supported for this resource");

  Role bad = r;
  bad.included_permissions = {"run.*"};
  auto wild = c.AddCustomRole(bad);
  ASSERT_FALSE(wild);
  EXPECT_NE(wild.error().message.find("wildcards"), std::string::npos);
  bad.included_permissions = {"run.routes.teleport"};
  EXPECT_FALSE(c.AddCustomRole(bad));
  bad = r;
  bad.name = "roles/custom";
  EXPECT_FALSE(c.AddCustomRole(bad));
  bad.name = "projects/p1/roles/x";  // too short an id
  EXPECT_FALSE(c.AddCustomRole(bad));
  bad.name = "projects/p1/roles/ok_name";
  bad.stage = "SOMEDAY";
  EXPECT_FALSE(c.AddCustomRole(bad));

  Role disabled = r;
  disabled.name = "projects/p1/roles/off";
  disabled.stage = "DISABLED";
  ASSERT_TRUE(c.AddCustomRole(disabled));
  EXPECT_TRUE(c.Find("projects/p1/roles/off")->permissions.none());
  EXPECT_TRUE(c.RemoveCustomRole("projects/p1/roles/off"));
  EXPECT_FALSE(c.RemoveCustomRole("projects/p1/roles/off"));
}

TEST(RolesTest, PermissionNames) {
  EXPECT_TRUE(ValidatePermissionName("run.routes.invoke"));
  EXPECT_FALSE(ValidatePermissionName("*"));
  EXPECT_FALSE(ValidatePermissionName("storage.*"));
  EXPECT_FALSE(ValidatePermissionName("run.routes"));
  EXPECT_FALSE(ValidatePermissionName("run..invoke"));
  EXPECT_FALSE(ValidatePermissionName("run.routes.teleport"));
  EXPECT_LE(KnownPermissions().size(), kMaxPermissions);
  EXPECT_EQ(KnownPermissions()[*PermissionIndex("run.routes.invoke")], "run.routes.invoke");
}

}  // namespace
}  // namespace moat::iam
