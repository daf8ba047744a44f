// mg-seed: writes an approval or denial straight into guardd's store, the way the
// integration tests seed policy without the D-Bus API. It hashes
// the file as it is now, exactly as an approval through guardd would.
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <optional>
#include <string>

#include "mailguard/procinfo/procinfo.hpp"
#include "mailguard/store/store.hpp"

int main(int argc, char** argv) {
  using namespace mailguard;
  if (argc < 4 || (std::strcmp(argv[2], "approve") != 0 && std::strcmp(argv[2], "deny") != 0 &&
                   std::strcmp(argv[2], "forget") != 0)) {
    std::fprintf(stderr, "usage: mg-seed STATE_DIR approve|deny|forget PATH [SCRIPT]\n");
    return 2;
  }
  auto writer = store::StoreWriter::start(argv[1]);
  if (!writer) {
    std::fprintf(stderr, "mg-seed: %s\n", writer.error().message.c_str());
    return 1;
  }
  procinfo::FileHasher hasher;
  rules::ApprovalRule rule;
  rule.action =
      std::strcmp(argv[2], "deny") == 0 ? rules::RuleAction::Deny : rules::RuleAction::Approve;
  rule.path = std::filesystem::canonical(argv[3]).string();
  if (argc > 4) rule.scriptPath = std::filesystem::canonical(argv[4]).string();
  if (std::strcmp(argv[2], "forget") == 0) {
    bool removed = false;
    (*writer)->removeRules(rule.path, rule.scriptPath, [&](Result<bool> r) {
      if (!r) std::fprintf(stderr, "mg-seed: %s\n", r.error().message.c_str());
      removed = r.has_value();
    });
    (*writer)->flush();  // returns once `done` has run
    return removed ? 0 : 1;
  }
  auto hash = hasher.sha256OfPath(rule.path);
  if (!hash) {
    std::fprintf(stderr, "mg-seed: %s\n", hash.error().message.c_str());
    return 1;
  }
  rule.sha256 = hash.value();
  if (!rule.scriptPath.empty()) {
    auto scriptHash = hasher.sha256OfPath(rule.scriptPath);
    if (!scriptHash) {
      std::fprintf(stderr, "mg-seed: %s\n", scriptHash.error().message.c_str());
      return 1;
    }
    rule.scriptSha256 = scriptHash.value();
  }
  std::optional<Result<store::RuleWritten>> written;
  (*writer)->addRule(rule, std::nullopt,
                     [&](Result<store::RuleWritten> r) { written.emplace(std::move(r)); });
  (*writer)->flush();  // returns once `done` has run
  if (!written || !*written) {
    std::fprintf(stderr, "mg-seed: %s\n", written ? written->error().message.c_str() : "no reply");
    return 1;
  }
  std::printf("%lld\n", static_cast<long long>((*written)->ruleId));
  return 0;
}
