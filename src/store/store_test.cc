#include "store/store.h"

#include <gtest/gtest.h>

#include <set>

namespace moat::store {
namespace {

TEST(StoreHome, FlagWinsThenEnvironmentThenDefault) {
  EXPECT_EQ(ResolveHome("/srv/moat", "/env/home"), "/srv/moat");
  EXPECT_EQ(ResolveHome("", "/env/home"), "/env/home");
  EXPECT_EQ(ResolveHome("", ""), "./.moat");
  EXPECT_EQ(ResolveHome("", nullptr), "./.moat");
}

TEST(StoreCollections, NamesAreStableAndRoundTrip) {
  std::set<std::string_view> names;
  for (Collection c : kAllCollections) {
    EXPECT_TRUE(names.insert(CollectionName(c)).second);
    EXPECT_EQ(ParseCollection(CollectionName(c)), c);
  }
  EXPECT_EQ(CollectionName(Collection::kServiceAccounts), "service_accounts");
  EXPECT_EQ(CollectionName(Collection::kSaKeys), "sa_keys");
  EXPECT_EQ(CollectionName(Collection::kPolicies), "policies");
  EXPECT_FALSE(ParseCollection("nope"));
  EXPECT_EQ(AuditKindName(AuditKind::kDataAccess), "DATA_ACCESS");
  EXPECT_EQ(AuditKindName(AuditKind::kAdminActivity), "ADMIN_ACTIVITY");
}

TEST(StoreSubscription, MoveTransfersAndResetUnsubscribesOnce) {
  int cancelled = 0;
  Subscription a([&] { ++cancelled; });
  Subscription b = std::move(a);
  a.Reset();
  EXPECT_EQ(cancelled, 0);
  b.Reset();
  b.Reset();
  EXPECT_EQ(cancelled, 1);
}

}  // namespace
}  // namespace moat::store
