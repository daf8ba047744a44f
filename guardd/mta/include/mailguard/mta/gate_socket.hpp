#pragma once
// guardd's MTA socket: a listening unix stream socket, and the peer of each connection as
// the kernel reports it (SO_PEERCRED: the pid and uid of the process that connected, set at
// connect() and not forgeable by the peer).
#include <sys/types.h>

#include <cstdint>
#include <filesystem>
#include <memory>
#include <optional>
#include <string>

#include "mailguard/common/fd.hpp"
#include "mailguard/rules/result.hpp"

namespace mailguard::mta {

struct PeerConnection {
  Fd fd;  // non-blocking
  pid_t pid = 0;
  std::uint32_t uid = 0;
  std::string received;  // what it sent so far
};

class GateSocket {
 public:
  // Binds `path` (a stale socket file there is replaced), mode 0666: exim asks as its own
  // user (Debian-exim) after dropping root; who asked is checked from SO_PEERCRED instead.
  static Result<std::unique_ptr<GateSocket>> open(const std::filesystem::path& path);
  ~GateSocket();
  GateSocket(const GateSocket&) = delete;
  GateSocket& operator=(const GateSocket&) = delete;

  [[nodiscard]] int fd() const { return fd_.get(); }
  // nullopt when no connection waits.
  Result<std::optional<PeerConnection>> accept();

  // Appends what the peer sent; true once it shut its side (EOF) or the buffer is full.
  static Result<bool> readSome(PeerConnection& c);
  // Writes all of `text` to a connection (answers are a line: the socket buffer has room).
  static Result<void> writeAll(int fd, const std::string& text);

 private:
  GateSocket(Fd fd, std::filesystem::path path) : fd_(std::move(fd)), path_(std::move(path)) {}
  Fd fd_;
  std::filesystem::path path_;
};

}  // namespace mailguard::mta
