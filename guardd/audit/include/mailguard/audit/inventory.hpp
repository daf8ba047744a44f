#pragma once
// Mail-server inventory: every TCP socket listening on a mail port, its owning program,
// and whether other computers can reach the address it is bound to.
#include <array>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "mailguard/procinfo/procinfo.hpp"
#include "mailguard/rules/result.hpp"

namespace mailguard::audit {

struct ListeningSocket {
  int family = 0;  // AF_INET or AF_INET6
  std::array<std::uint8_t, 16> address{};
  std::uint16_t port = 0;
  std::uint64_t inode = 0;
  std::uint32_t uid = 0;
};

// The kernel's listening TCP sockets. Real one: a sock_diag dump (NLM_F_DUMP,
// idiag_states = 1 << TCP_LISTEN) for AF_INET and AF_INET6.
class ListeningSockets {
 public:
  virtual ~ListeningSockets() = default;
  virtual Result<std::vector<ListeningSocket>> listTcp() = 0;
};

class SockDiagListeningSockets final : public ListeningSockets {
 public:
  Result<std::vector<ListeningSocket>> listTcp() override;
};

enum class Exposure { Loopback, External };
std::string_view toString(Exposure e);  // "loopback", "external"
// 127.0.0.0/8, ::1 and ::ffff:127.0.0.0/104 are loopback; everything else, the
// wildcard addresses included, can be reached from outside (unless a firewall says no).
Exposure exposureOf(int family, const std::array<std::uint8_t, 16>& address);
std::string addressText(int family, const std::array<std::uint8_t, 16>& address);

struct MailListener {
  int family = 0;
  std::array<std::uint8_t, 16> address{};
  std::uint16_t port = 0;
  Exposure exposure = Exposure::External;
  std::uint64_t inode = 0;
  std::uint32_t uid = 0;
  std::optional<int> pid;  // nullopt: no process found (exited, or another pid namespace)
  std::string path;        // executable, empty when unknown
  std::string comm;
  [[nodiscard]] std::string addressText() const;
  [[nodiscard]] bool isWildcard() const;  // 0.0.0.0 or ::
};

// Listeners on `mailPorts`, sorted by port then address. A process that vanishes
// mid-way leaves pid empty; that is not an error.
Result<std::vector<MailListener>> takeInventory(ListeningSockets& sockets,
                                                procinfo::ProcessResolver& resolver,
                                                const std::vector<std::uint16_t>& mailPorts);

}  // namespace mailguard::audit
