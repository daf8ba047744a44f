#include "mailguard/mta/gate_socket.hpp"

#include <poll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

namespace mailguard::mta {
namespace {

// A question is a few hundred bytes plus the recipients; beyond this it is cut (the
// domains of the first recipients are still named).
constexpr std::size_t kMaxRequest = 64 * 1024;

}  // namespace

Result<std::unique_ptr<GateSocket>> GateSocket::open(const std::filesystem::path& path) {
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  const auto text = path.string();
  if (text.size() >= sizeof addr.sun_path) {
    return invalidArgument("socket path '" + text + "' is too long for a unix socket");
  }
  std::memcpy(addr.sun_path, text.c_str(), text.size() + 1);
  Fd fd{::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0)};
  if (!fd) return systemError("Failed to create the MTA socket", errno);
  struct stat st {};
  if (::lstat(text.c_str(), &st) == 0 && S_ISSOCK(st.st_mode)) ::unlink(text.c_str());
  if (::bind(fd.get(), reinterpret_cast<const sockaddr*>(&addr), sizeof addr) != 0) {
    return systemError("Failed to bind the MTA socket '" + text + "'", errno);
  }
  if (::chmod(text.c_str(), 0666) != 0) {
    return systemError("Failed to open up the MTA socket '" + text + "'", errno);
  }
  if (::listen(fd.get(), 64) != 0) {
    return systemError("Failed to listen on the MTA socket '" + text + "'", errno);
  }
  return std::unique_ptr<GateSocket>(new GateSocket(std::move(fd), path));
}

GateSocket::~GateSocket() {
  if (fd_) ::unlink(path_.c_str());
}

Result<std::optional<PeerConnection>> GateSocket::accept() {
  Fd c{::accept4(fd_.get(), nullptr, nullptr, SOCK_CLOEXEC | SOCK_NONBLOCK)};
  if (!c) {
    if (errno == EAGAIN || errno == EWOULDBLOCK || errno == ECONNABORTED || errno == EINTR) {
      return std::optional<PeerConnection>{};
    }
    return systemError("Failed to accept on the MTA socket", errno);
  }
  ucred cred{};
  socklen_t len = sizeof cred;
  if (::getsockopt(c.get(), SOL_SOCKET, SO_PEERCRED, &cred, &len) != 0) {
    return systemError("Failed to read the MTA socket peer's credentials", errno);
  }
  PeerConnection out;
  out.fd = std::move(c);
  out.pid = cred.pid;
  out.uid = cred.uid;
  return std::optional<PeerConnection>(std::move(out));
}

Result<bool> GateSocket::readSome(PeerConnection& c) {
  char buf[4096];
  while (true) {
    const auto n = ::read(c.fd.get(), buf, sizeof buf);
    if (n > 0) {
      c.received.append(buf, static_cast<std::size_t>(n));
      if (c.received.size() >= kMaxRequest) return true;
      continue;
    }
    if (n == 0) return true;
    if (errno == EINTR) continue;
    if (errno == EAGAIN || errno == EWOULDBLOCK) return false;
    return systemError("Failed to read from the MTA socket", errno);
  }
}

Result<void> GateSocket::writeAll(int fd, const std::string& text) {
  std::size_t done = 0;
  while (done < text.size()) {
    const auto n = ::send(fd, text.data() + done, text.size() - done, MSG_NOSIGNAL);
    if (n >= 0) {
      done += static_cast<std::size_t>(n);
      continue;
    }
    if (errno == EINTR) continue;
    if (errno == EAGAIN || errno == EWOULDBLOCK) {
      pollfd p{fd, POLLOUT, 0};
      if (::poll(&p, 1, 1000) > 0) continue;
    }
    return systemError("Failed to answer on the MTA socket", errno);
  }
  return {};
}

}  // namespace mailguard::mta
