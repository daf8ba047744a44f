#include "mailguard/rules/settings.hpp"

#include <arpa/inet.h>
#include <toml++/toml.h>
#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <limits>
#include <memory>
#include <optional>
#include <system_error>

#include "mailguard/rules/detector_settings.hpp"
#include "mailguard/rules/ruleset.hpp"  // kMarkReject, kMarkAllow

namespace mailguard::rules {
namespace {

// One reader per file: every error is "ORIGIN:LINE: what" so the owner can jump to it.
class Reader {
 public:
  explicit Reader(std::string_view origin) : origin_(origin) {}

  [[nodiscard]] Error at(const toml::source_region& where, const std::string& what) const {
    return makeError(std::string(origin_) + ":" + std::to_string(where.begin.line) + ": " + what);
  }

  static std::string typeName(const toml::node& node) {
    switch (node.type()) {
      case toml::node_type::table:
        return "a table";
      case toml::node_type::array:
        return "an array";
      case toml::node_type::string:
        return "a string";
      case toml::node_type::integer:
        return "an integer";
      case toml::node_type::floating_point:
        return "a floating-point number";
      case toml::node_type::boolean:
        return "a boolean";
      case toml::node_type::date:
        return "a date";
      case toml::node_type::time:
        return "a time";
      case toml::node_type::date_time:
        return "a date-time";
      case toml::node_type::none:
        break;
    }
    return "nothing";
  }

  std::optional<Error> integer(const toml::node& node, const std::string& name, std::int64_t min,
                               std::int64_t max, std::string_view what, std::int64_t& out) const {
    const auto* value = node.as_integer();
    if (value == nullptr)
      return at(node.source(), name + ": expected an integer, got " + typeName(node));
    const std::int64_t v = value->get();
    if (v < min || v > max) {
      return at(node.source(), name + ": " + std::to_string(v) + " is not " + std::string(what) +
                                   " (" + std::to_string(min) + "-" + std::to_string(max) + ")");
    }
    out = v;
    return std::nullopt;
  }

  template <class T>
  std::optional<Error> integerInto(const toml::node& node, const std::string& name,
                                   std::int64_t min, std::string_view what, T& out) const {
    std::int64_t v = 0;
    const auto max = static_cast<std::int64_t>(std::numeric_limits<T>::max());
    if (auto err = integer(node, name, min, max, what, v)) return err;
    out = static_cast<T>(v);
    return std::nullopt;
  }

  std::optional<Error> boolean(const toml::node& node, const std::string& name, bool& out) const {
    const auto* value = node.as_boolean();
    if (value == nullptr) {
      return at(node.source(), name + ": expected true or false, got " + typeName(node));
    }
    out = value->get();
    return std::nullopt;
  }

  std::optional<Error> ports(const toml::node& node, std::vector<std::uint16_t>& out) const {
    const std::string name = "mail.ports";
    const auto* array = node.as_array();
    if (array == nullptr) {
      return at(node.source(), name + ": expected an array of ports, got " + typeName(node));
    }
    if (array->empty()) {
      // No mail port would mean no guard at all: that is never what a typo meant.
      return at(node.source(), name + ": the list is empty; at least one port is needed");
    }
    std::vector<std::uint16_t> result;
    for (const toml::node& element : *array) {
      std::uint16_t port = 0;
      if (auto err = integerInto(element, name, 1, "a port", port)) return err;
      if (std::find(result.begin(), result.end(), port) != result.end()) {
        return at(element.source(), name + ": " + std::to_string(port) + " is listed twice");
      }
      result.push_back(port);
    }
    out = std::move(result);
    return std::nullopt;
  }

  std::optional<Error> logLevel(const toml::node& node, std::string& out) const {
    const std::string name = "log.level";
    const auto* value = node.as_string();
    if (value == nullptr)
      return at(node.source(), name + ": expected a string, got " + typeName(node));
    const std::string& level = value->get();
    if (level != "debug" && level != "info" && level != "warning" && level != "error") {
      return at(node.source(),
                name + ": \"" + level + "\" is not a log level (debug, info, warning, error)");
    }
    out = level;
    return std::nullopt;
  }

  [[nodiscard]] Error unknownKey(const toml::key& key, const std::string& table,
                                 std::string_view known) const {
    return at(key.source(), table + "." + std::string(key.str()) +
                                ": unknown key (known: " + std::string(known) + ")");
  }

 private:
  std::string_view origin_;
};

std::optional<Error> readMail(const Reader& r, const toml::table& t, Settings& s) {
  for (const auto& [key, node] : t) {
    if (key == "ports") {
      if (auto err = r.ports(node, s.mailPorts)) return err;
    } else {
      return r.unknownKey(key, "mail", "ports");
    }
  }
  return std::nullopt;
}

std::optional<Error> readEnforcement(const Reader& r, const toml::table& t, Settings& s) {
  for (const auto& [key, node] : t) {
    if (key == "queue") {
      // NFQUEUE numbers are 16 bits (nfnetlink_queue).
      if (auto err = r.integerInto(node, "enforcement.queue", 0, "a queue number", s.queueNumber)) {
        return err;
      }
    } else if (key == "remove_rules_on_exit") {
      if (auto err = r.boolean(node, "enforcement.remove_rules_on_exit", s.removeRulesOnExit)) {
        return err;
      }
    } else if (key == "queue_max_length") {
      if (auto err = r.integerInto(node, "enforcement.queue_max_length", 1, "a queue length",
                                   s.queueMaxLength)) {
        return err;
      }
    } else {
      return r.unknownKey(key, "enforcement", "queue, remove_rules_on_exit, queue_max_length");
    }
  }
  return std::nullopt;
}

std::optional<Error> readStore(const Reader& r, const toml::table& t, Settings& s) {
  for (const auto& [key, node] : t) {
    if (key == "attempt_retention_days") {
      if (auto err = r.integerInto(node, "store.attempt_retention_days", 1, "a number of days",
                                   s.retentionDays)) {
        return err;
      }
    } else if (key == "max_attempts") {
      if (auto err =
              r.integerInto(node, "store.max_attempts", 1, "a number of attempts", s.maxAttempts)) {
        return err;
      }
    } else {
      return r.unknownKey(key, "store", "attempt_retention_days, max_attempts");
    }
  }
  return std::nullopt;
}

std::optional<Error> readLog(const Reader& r, const toml::table& t, Settings& s) {
  for (const auto& [key, node] : t) {
    if (key == "level") {
      if (auto err = r.logLevel(node, s.logLevel)) return err;
    } else {
      return r.unknownKey(key, "log", "level");
    }
  }
  return std::nullopt;
}

std::optional<Error> readKernel(const Reader& r, const toml::table& t, Settings& s) {
  for (const auto& [key, node] : t) {
    const std::string name = "kernel." + std::string(key.str());
    if (key == "identity") {
      const auto* value = node.as_string();
      if (value == nullptr) {
        return r.at(node.source(), name + ": expected a string, got " + Reader::typeName(node));
      }
      if (value->get() != "auto" && value->get() != "off") {
        return r.at(node.source(), name + ": \"" + value->get() + "\" is not auto or off");
      }
      s.kernelIdentity = value->get();
    } else if (key == "cgroup") {
      const auto* value = node.as_string();
      if (value == nullptr) {
        return r.at(node.source(), name + ": expected a string, got " + Reader::typeName(node));
      }
      // A relative path would depend on guardd's working directory.
      if (!value->get().empty() && value->get().front() != '/') {
        return r.at(node.source(), name + ": \"" + value->get() +
                                       "\" is not an absolute path (or \"\" for the cgroup2 root)");
      }
      s.kernelCgroup = value->get();
    } else if (key == "mark_bit") {
      std::uint32_t bit = 0;
      if (auto err = r.integerInto(node, name, 1, "a socket mark", bit)) return err;
      char hex[16];
      (void)std::snprintf(hex, sizeof hex, "0x%08x", bit);
      if ((bit & (bit - 1)) != 0) {
        return r.at(node.source(), name + ": " + hex + " is not exactly one bit");
      }
      // A socket's mark with this bit OR-ed in must never equal a verdict mark, and a
      // packet guardd re-queued with a verdict mark must never carry the bit: both hold
      // exactly when the bit is none of theirs. (The default, bit 20, is clear in both.)
      if ((bit & (kMarkReject | kMarkAllow)) != 0) {
        return r.at(node.source(), name + ": " + hex +
                                       " is a bit of guardd's verdict marks 0x6d670001/0x6d670002;"
                                       " choose another (the default is 0x00100000)");
      }
      s.kernelMarkBit = bit;
    } else {
      return r.unknownKey(key, "kernel", "identity, cgroup, mark_bit");
    }
  }
  return std::nullopt;
}

std::optional<Error> readMta(const Reader& r, const toml::table& t, Settings& s) {
  auto absolute = [&](const toml::node& node, const std::string& name,
                      std::string& out) -> std::optional<Error> {
    const auto* value = node.as_string();
    if (value == nullptr) {
      return r.at(node.source(), name + ": expected a string, got " + Reader::typeName(node));
    }
    // A relative path would depend on guardd's working directory.
    if (!value->get().empty() && value->get().front() != '/') {
      return r.at(node.source(), name + ": \"" + value->get() + "\" is not an absolute path");
    }
    out = value->get();
    return std::nullopt;
  };
  for (const auto& [key, node] : t) {
    const std::string name = "mta." + std::string(key.str());
    if (key == "socket") {
      if (auto err = absolute(node, name, s.mtaSocket)) return err;
    } else if (key == "exim_config") {
      if (auto err = absolute(node, name, s.eximConfig)) return err;
    } else if (key == "exim_log") {
      if (auto err = absolute(node, name, s.eximLog)) return err;
    } else if (key == "postfix_log") {
      if (auto err = absolute(node, name, s.postfixLog)) return err;
    } else if (key == "postfix_config_dirs") {
      const auto* list = node.as_array();
      if (list == nullptr) {
        return r.at(node.source(), name + ": expected an array, got " + Reader::typeName(node));
      }
      s.postfixConfigDirs.clear();
      for (const auto& item : *list) {
        std::string dir;
        if (auto err = absolute(item, name, dir)) return err;
        if (dir.empty()) return r.at(item.source(), name + ": an empty path");
        s.postfixConfigDirs.push_back(dir);
      }
    } else {
      return r.unknownKey(key, "mta",
                          "socket, exim_config, exim_log, postfix_log, postfix_config_dirs");
    }
  }
  return std::nullopt;
}

std::optional<Error> readOutside(const Reader& r, const toml::table& t, Settings& s) {
  auto string = [&](const toml::node& node, const std::string& name,
                    std::string& out) -> std::optional<Error> {
    const auto* value = node.as_string();
    if (value == nullptr) {
      return r.at(node.source(), name + ": expected a string, got " + Reader::typeName(node));
    }
    out = value->get();
    return std::nullopt;
  };
  auto ipv4 = [](const std::string& text) {
    in_addr a{};
    return ::inet_pton(AF_INET, text.c_str(), &a) == 1;
  };
  // "A.B.C.D" or "A.B.C.D:PORT" (a test server on a high port).
  auto server = [&](const std::string& text) {
    const auto colon = text.find(':');
    if (colon == std::string::npos) return ipv4(text);
    const std::string port = text.substr(colon + 1);
    if (port.empty() || port.size() > 5 ||
        port.find_first_not_of("0123456789") != std::string::npos) {
      return false;
    }
    const long p = std::stol(port);
    return ipv4(text.substr(0, colon)) && p >= 1 && p <= 65535;
  };
  // A DNS name: letters, digits, '-', '_' and dots, not starting or ending with a dot.
  auto dnsName = [](const std::string& text) {
    return !text.empty() && text.size() <= 253 && text.front() != '.' && text.back() != '.' &&
           text.find("..") == std::string::npos &&
           text.find_first_not_of(
               "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
               "0123456789-_.") == std::string::npos;
  };
  auto names = [&](const toml::node& node, const std::string& name,
                   std::vector<std::string>& out) -> std::optional<Error> {
    const auto* list = node.as_array();
    if (list == nullptr) {
      return r.at(node.source(), name + ": expected an array, got " + Reader::typeName(node));
    }
    out.clear();
    for (const auto& item : *list) {
      std::string v;
      if (auto err = string(item, name, v)) return err;
      if (!dnsName(v)) return r.at(item.source(), name + ": \"" + v + "\" is not a DNS name");
      if (std::find(out.begin(), out.end(), v) != out.end()) {
        return r.at(item.source(), name + ": \"" + v + "\" is listed twice");
      }
      out.push_back(v);
    }
    return std::nullopt;
  };
  toml::source_region sourcesAt = t.source();
  for (const auto& [key, node] : t) {
    const std::string name = "outside." + std::string(key.str());
    if (key == "public_address") {
      if (auto err = string(node, name, s.outsidePublicAddress)) return err;
      if (s.outsidePublicAddress != "auto" && !ipv4(s.outsidePublicAddress)) {
        return r.at(node.source(), name + ": \"" + s.outsidePublicAddress +
                                       "\" is neither \"auto\" nor an IPv4 address");
      }
    } else if (key == "address_sources") {
      const auto* list = node.as_array();
      if (list == nullptr) {
        return r.at(node.source(), name + ": expected an array, got " + Reader::typeName(node));
      }
      sourcesAt = node.source();
      s.outsideAddressSources.clear();
      for (const auto& item : *list) {
        std::string v;
        if (auto err = string(item, name, v)) return err;
        if (v != "router" && v != "https" && v != "dns") {
          return r.at(item.source(),
                      name + ": \"" + v + "\" is not an address source (router, https, dns)");
        }
        if (std::find(s.outsideAddressSources.begin(), s.outsideAddressSources.end(), v) !=
            s.outsideAddressSources.end()) {
          return r.at(item.source(), name + ": \"" + v + "\" is listed twice");
        }
        s.outsideAddressSources.push_back(v);
      }
      if (s.outsideAddressSources.empty()) {
        return r.at(node.source(), name +
                                       ": the list is empty; name at least one of router, "
                                       "https, dns (or set public_address)");
      }
    } else if (key == "myip_url") {
      if (auto err = string(node, name, s.outsideMyipUrl)) return err;
      const std::string scheme = "https://";
      const auto& url = s.outsideMyipUrl;
      if (!url.empty() &&
          (url.compare(0, scheme.size(), scheme) != 0 || url.size() == scheme.size() ||
           url.find_first_of(" \t\r\n") != std::string::npos)) {
        return r.at(node.source(), name + ": \"" + url + "\" is not an https:// URL");
      }
    } else if (key == "myip_ca_file") {
      if (auto err = string(node, name, s.outsideMyipCaFile)) return err;
      if (!s.outsideMyipCaFile.empty() && s.outsideMyipCaFile.front() != '/') {
        return r.at(node.source(),
                    name + ": \"" + s.outsideMyipCaFile + "\" is not an absolute path");
      }
    } else if (key == "blocklists") {
      if (auto err = names(node, name, s.outsideBlocklists)) return err;
    } else if (key == "domains") {
      if (auto err = names(node, name, s.outsideDomains)) return err;
    } else if (key == "nameserver" || key == "myip_resolver") {
      std::string& out = key == "nameserver" ? s.outsideNameserver : s.outsideMyipResolver;
      if (auto err = string(node, name, out)) return err;
      if (!out.empty() && !server(out)) {
        return r.at(node.source(),
                    name + ": \"" + out + "\" is not an IPv4 address (A.B.C.D or A.B.C.D:PORT)");
      }
    } else if (key == "myip_name") {
      if (auto err = string(node, name, s.outsideMyipName)) return err;
      if (!s.outsideMyipName.empty() && !dnsName(s.outsideMyipName)) {
        return r.at(node.source(), name + ": \"" + s.outsideMyipName + "\" is not a DNS name");
      }
    } else if (key == "interval_hours") {
      if (auto err = r.integerInto(node, name, 0, "a number of hours", s.outsideIntervalHours))
        return err;
    } else if (key == "timeout_seconds") {
      std::int64_t v = 0;
      if (auto err = r.integer(node, name, 1, 30, "a timeout in seconds", v)) return err;
      s.outsideTimeoutSeconds = static_cast<std::uint32_t>(v);
    } else if (key == "cause_days") {
      std::int64_t v = 0;
      if (auto err = r.integer(node, name, 1, 365, "a number of days", v)) return err;
      s.outsideCauseDays = static_cast<std::uint32_t>(v);
    } else {
      return r.unknownKey(key, "outside",
                          "public_address, address_sources, myip_url, myip_ca_file, "
                          "blocklists, domains, nameserver, myip_name, myip_resolver, "
                          "interval_hours, timeout_seconds, cause_days");
    }
  }
  // "https" needs a URL, whichever of the two keys came first.
  const auto& order = s.outsideAddressSources;
  if (s.outsideMyipUrl.empty() && std::find(order.begin(), order.end(), "https") != order.end()) {
    return r.at(sourcesAt,
                "outside.address_sources: \"https\" needs [outside] myip_url, the "
                "https:// URL of a service that answers with your address");
  }
  return std::nullopt;
}

// An integer key in min..max, into a uint32 setting.
std::optional<Error> bounded(const Reader& r, const toml::node& node, const std::string& name,
                             std::int64_t min, std::int64_t max, std::string_view what,
                             std::uint32_t& out) {
  std::int64_t v = 0;
  if (auto err = r.integer(node, name, min, max, what, v)) return err;
  out = static_cast<std::uint32_t>(v);
  return std::nullopt;
}

std::optional<Error> readBackscatter(const Reader& r, const toml::table& t, Settings& s) {
  for (const auto& [key, node] : t) {
    const std::string name = "backscatter." + std::string(key.str());
    if (key == "flood_per_hour") {
      if (auto err = bounded(r, node, name, 1, 10'000, "a number of bounces an hour",
                             s.backscatterFloodPerHour)) {
        return err;
      }
    } else if (key == "remember_hours") {
      // Up to a month: no MTA retries a message longer (postfix: 5 days by default).
      if (auto err =
              bounded(r, node, name, 1, 720, "a number of hours", s.backscatterRememberHours)) {
        return err;
      }
    } else {
      return r.unknownKey(key, "backscatter", "flood_per_hour, remember_hours");
    }
  }
  return std::nullopt;
}

std::optional<Error> readHousehold(const Reader& r, const toml::table& t, Settings& s) {
  // The bounds keep a request a scan of the owner's own network: a /16 at 1000 connects a
  // second is still three minutes, never a sweep of someone else's.
  for (const auto& [key, node] : t) {
    const std::string name = "household." + std::string(key.str());
    std::optional<Error> err;
    if (key == "max_subnets") {
      err = bounded(r, node, name, 1, 16, "a number of subnets", s.householdMaxSubnets);
    } else if (key == "min_prefix") {
      err = bounded(r, node, name, 16, 30, "a prefix length", s.householdMinPrefix);
    } else if (key == "probes_per_second") {
      err = bounded(r, node, name, 1, 1000, "a rate", s.householdProbesPerSecond);
    } else if (key == "in_flight") {
      err = bounded(r, node, name, 1, 256, "a number of connects", s.householdInFlight);
    } else if (key == "connect_timeout_ms") {
      err = bounded(r, node, name, 100, 10'000, "a timeout in milliseconds",
                    s.householdConnectTimeoutMs);
    } else {
      return r.unknownKey(key, "household",
                          "max_subnets, min_prefix, probes_per_second, in_flight, "
                          "connect_timeout_ms");
    }
    if (err) return err;
  }
  return std::nullopt;
}

std::optional<Error> readDetector(const Reader& r, const toml::table& t, Settings& s) {
  const auto specs = detectorSettingSpecs();
  for (const auto& [key, node] : t) {
    // Named for the lambda: clang before 16 cannot capture a structured binding.
    const std::string_view keyName = key.str();
    const auto spec = std::find_if(specs.begin(), specs.end(),
                                   [keyName](const auto& sp) { return sp.name == keyName; });
    const std::string name = "detector." + std::string(key.str());
    if (spec == specs.end()) {
      std::string known;
      for (const auto& sp : specs) known += (known.empty() ? "" : ", ") + std::string(sp.name);
      return r.unknownKey(key, "detector", known);
    }
    double v = 0;
    if (const auto* i = node.as_integer()) {
      v = static_cast<double>(i->get());
    } else if (const auto* f = node.as_floating_point(); f != nullptr && !spec->integer) {
      v = f->get();
    } else {
      return r.at(node.source(), name + ": expected " +
                                     (spec->integer ? "an integer" : "a number") + ", got " +
                                     Reader::typeName(node));
    }
    if (!(v >= spec->min && v <= spec->max)) {
      char range[64];
      std::snprintf(range, sizeof range, "%g to %g", spec->min, spec->max);
      return r.at(node.source(), name + ": out of range (" + range + ")");
    }
    s.detector[std::string(key.str())] = v;
  }
  return std::nullopt;
}

std::optional<Error> readPresence(const Reader& r, const toml::table& t, Settings& s) {
  for (const auto& [key, node] : t) {
    if (key == "input_devices") {
      if (auto err = r.boolean(node, "presence.input_devices", s.presenceInputDevices)) {
        return err;
      }
    } else {
      return r.unknownKey(key, "presence", "input_devices");
    }
  }
  return std::nullopt;
}

Result<Settings> readRoot(const Reader& r, const toml::table& root) {
  using SectionReader = std::optional<Error> (*)(const Reader&, const toml::table&, Settings&);
  struct Section {
    std::string_view name;
    SectionReader read;
  };
  static constexpr Section kSections[] = {{"mail", readMail},
                                          {"enforcement", readEnforcement},
                                          {"store", readStore},
                                          {"log", readLog},
                                          {"kernel", readKernel},
                                          {"detector", readDetector},
                                          {"mta", readMta},
                                          {"presence", readPresence},
                                          {"outside", readOutside},
                                          {"backscatter", readBackscatter},
                                          {"household", readHousehold}};
  constexpr std::string_view kKnown =
      "[mail], [enforcement], [store], [log], [kernel], [detector], [mta], [presence], "
      "[outside], [backscatter], [household]";

  Settings settings;
  for (const auto& [key, node] : root) {
    const Section* section = nullptr;
    for (const Section& candidate : kSections) {
      if (key == candidate.name) section = &candidate;
    }
    if (section == nullptr) {
      if (node.is_table()) {
        return r.at(key.source(), "[" + std::string(key.str()) +
                                      "]: unknown table (known: " + std::string(kKnown) + ")");
      }
      return r.at(key.source(),
                  std::string(key.str()) +
                      ": unknown key (settings belong in a table: " + std::string(kKnown) + ")");
    }
    const toml::table* table = node.as_table();
    if (table == nullptr) {
      return r.at(node.source(),
                  std::string(key.str()) + ": expected a table, got " + Reader::typeName(node));
    }
    if (auto err = section->read(r, *table, settings)) return *err;
  }
  return settings;
}

Error syntaxError(std::string_view origin, const toml::parse_error& e) {
  const auto& begin = e.source().begin;
  return makeError(std::string(origin) + ":" + std::to_string(begin.line) + ":" +
                   std::to_string(begin.column) + ": " + std::string(e.description()));
}

}  // namespace

Result<Settings> parseSettings(std::string_view text, std::string_view origin) {
  const Reader reader(origin);
#if TOML_EXCEPTIONS
  toml::table root;
  try {
    root = toml::parse(text, origin);
  } catch (const toml::parse_error& e) {
    return syntaxError(origin, e);
  }
  return readRoot(reader, root);
#else
  toml::parse_result parsed = toml::parse(text, origin);
  if (!parsed) return syntaxError(origin, parsed.error());
  return readRoot(reader, parsed.table());
#endif
}

Result<Settings> loadSettings(const std::filesystem::path& file, bool missingIsDefault) {
  // Far larger than any real settings file; stops a mistaken path (a log, a device)
  // from being read whole.
  constexpr std::size_t kMaxSize = 1 << 20;
  auto cannotRead = [&file](int err) {
    return makeError(file.string() + ": cannot read: " + std::generic_category().message(err));
  };

  struct Closer {
    void operator()(std::FILE* f) const noexcept { (void)std::fclose(f); }
  };
  const std::unique_ptr<std::FILE, Closer> f(std::fopen(file.c_str(), "re"));
  if (!f) {
    const int err = errno;
    if (err == ENOENT && missingIsDefault) return Settings{};
    return cannotRead(err);
  }
  std::string text;
  char buf[8192];
  for (;;) {
    errno = 0;
    const std::size_t n = std::fread(buf, 1, sizeof buf, f.get());
    // fread sets errno on a read error, e.g. EISDIR for a directory.
    const int err = errno;
    text.append(buf, n);
    if (text.size() > kMaxSize)
      return makeError(file.string() + ": cannot read: larger than 1 MiB");
    if (n < sizeof buf) {
      if (std::ferror(f.get()) != 0) return cannotRead(err != 0 ? err : EIO);
      break;
    }
  }
  return parseSettings(text, file.string());
}

}  // namespace mailguard::rules
