#pragma once
// Shared by kernel_netns_main.cpp and kernel_netns_test.cpp.
#include <gtest/gtest.h>

#include <string>

namespace mailguard::kernel::testing {

// True when this process runs in fresh network and mount namespaces with `lo` up.
bool inPrivateNamespaces();
const std::string& namespaceSkipReason();

// connect() to ADDR:PORT over a fresh TCP socket; the errno (0 on success). What the
// test binary does when run as `kernel_netns_test --connect ADDR PORT` (its exit status).
int connectOnce(const std::string& addr, unsigned port);

}  // namespace mailguard::kernel::testing

#define MAILGUARD_REQUIRE_NAMESPACES()                                     \
  do {                                                                     \
    if (!::mailguard::kernel::testing::inPrivateNamespaces())              \
      GTEST_SKIP() << ::mailguard::kernel::testing::namespaceSkipReason(); \
  } while (false)
