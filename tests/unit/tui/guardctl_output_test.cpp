// guardctl's output for people and for scripts, without a bus.
#include <gtest/gtest.h>

#include <string>

#include "output.hpp"

namespace mailguard::guardctl {
namespace {

dbus::Status aStatus(std::string attribution) {
  dbus::Status s;
  s.enforcing = true;
  s.backend = "xt-compat";
  s.version = "0.1.0";
  s.attribution = std::move(attribution);
  return s;
}

TEST(GuardctlStatus, SaysWhichAttributionPathIsInForce) {
  const std::string kernel = statusText(aStatus("kernel"));
  EXPECT_NE(kernel.find("\nattribution:     kernel (BPF hooks decide approved connects at "
                        "connect())\n"),
            std::string::npos)
      << kernel;
  const std::string proc = statusText(aStatus("proc"));
  EXPECT_NE(proc.find("\nattribution:     proc ("), std::string::npos) << proc;
  EXPECT_NE(proc.find("/proc)\n"), std::string::npos) << proc;
  // Right after the queue backend line.
  EXPECT_LT(proc.find("queue backend:   xt-compat\n"), proc.find("attribution:")) << proc;
  EXPECT_NE(statusText(aStatus("")).find("attribution:     unknown"), std::string::npos);
}

TEST(GuardctlStatus, JsonHasTheAttributionKey) {
  const auto kernel = toJson(aStatus("kernel"));
  ASSERT_TRUE(kernel.contains("attribution"));
  EXPECT_EQ(kernel["attribution"], "kernel");
  EXPECT_EQ(toJson(aStatus("proc"))["attribution"], "proc");
  // An older guardd that does not say: null, not a made-up value.
  EXPECT_TRUE(toJson(aStatus(""))["attribution"].is_null());
  // The keys scripts already use stay.
  EXPECT_EQ(kernel["backend"], "xt-compat");
  EXPECT_EQ(kernel["enforcing"], true);
}

}  // namespace
}  // namespace mailguard::guardctl
