#pragma once
// Answers from a table: (name, type) -> reply or error; anything else is NXDOMAIN.
#include <map>
#include <string>
#include <utility>
#include <vector>

#include "mailguard/outside/dns.hpp"

namespace mailguard::outside {

class FakeResolver final : public Resolver {
 public:
  void set(const std::string& name, RecordType type, std::vector<std::string> records) {
    answers_[{name, type}] = DnsReply{true, std::move(records)};
  }
  void fail(const std::string& name, RecordType type, const std::string& why) {
    errors_[{name, type}] = why;
  }
  Result<DnsReply> lookup(const std::string& name, RecordType type) override {
    asked.emplace_back(name);
    if (auto e = errors_.find({name, type}); e != errors_.end()) return makeError(e->second);
    if (auto a = answers_.find({name, type}); a != answers_.end()) return a->second;
    return DnsReply{false, {}};
  }
  std::vector<std::string> asked;

 private:
  std::map<std::pair<std::string, RecordType>, DnsReply> answers_;
  std::map<std::pair<std::string, RecordType>, std::string> errors_;
};

}  // namespace mailguard::outside
