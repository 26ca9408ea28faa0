// Helpers shared by the identity lifecycle .cc files (not a public header).
#pragma once

#include <optional>
#include <string>
#include <vector>

#include "common/error.h"
#include "store/store.h"

namespace moat::identity::internal {

// Every document of a collection (optionally under one parent), paging through the store.
inline Result<std::vector<store::Document>> ListAll(store::Transaction& tx, store::Collection c,
                                                    std::optional<std::string> parent = {}) {
  std::vector<store::Document> out;
  store::ListOptions options;
  options.parent = std::move(parent);
  options.page_size = store::kMaxPageSize;
  for (;;) {
    MOAT_TRY(store::ListPage page, tx.List(c, options));
    for (auto& d : page.documents) out.push_back(std::move(d));
    if (page.next_page_token.empty()) break;
    options.page_token = std::move(page.next_page_token);
  }
  return out;
}

}  // namespace moat::identity::internal
