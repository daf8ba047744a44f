// guardd runs as uid 0, but after this only the capabilities below are root's power in it.
//
// Why guardd needs each one once it runs (install/guardd.service has the same table):
//  CAP_NET_ADMIN       nfnetlink: the inet mailguard table (replaced on every firewall
//                      change), binding the NFQUEUE and its verdicts, NFLOG probe
//                      records, the detector's conntrack outcomes (and SO_RCVBUFFORCE on
//                      that socket); also the one capability `ip` inherits, for the
//                      audit's veth pair
//  CAP_SYS_PTRACE      /proc/PID/exe, fd/*, cwd and environ of other users' processes
//                      (ptrace read access): attribution, and whether a caller is remote
//  CAP_DAC_READ_SEARCH read (hash) programs and scripts in folders only their owner may
//                      enter, e.g. a 0700 home; read-only, unlike CAP_DAC_OVERRIDE
//  CAP_SYS_ADMIN       unshare(CLONE_NEWNET) of the audit's probe thread
// Need none: the state directory and its SQLite files (root's own, so uid 0 passes as their
// owner without CAP_DAC_OVERRIDE, CAP_FOWNER or CAP_CHOWN), the bus and polkit, sd_notify,
// sock_diag (it answers anyone) and the audit's TCP probes. Start-up needs nothing more than
// this either: the systemd unit starts guardd with exactly these four.
//
// CAP_SETPCAP, which changes the bounding set and the securebits, goes last, with the
// capset that keeps only the four.
#include "mailguard/service/privileges.hpp"

#include <cap-ng.h>
#include <linux/securebits.h>
#include <sys/prctl.h>

#include <cctype>
#include <cerrno>
#include <cstdint>
#include <cstring>
#include <filesystem>
#include <system_error>

namespace mailguard::service {
namespace {

constexpr unsigned kSecureBits = SECBIT_NOROOT | SECBIT_NOROOT_LOCKED;
constexpr unsigned kMaxCapability = 63;  // the kernel's sets are 64 bits wide

using Mask = std::uint64_t;

template <std::size_t N>
constexpr Mask maskOf(const std::array<unsigned, N>& caps) {
  Mask m = 0;
  for (const unsigned c : caps) m |= Mask{1} << c;
  return m;
}

// The set `which` as libcap-ng last read or prepared it.
Mask setOf(capng_type_t which) {
  Mask m = 0;
  for (unsigned c = 0; c <= kMaxCapability; ++c) {
    if (capng_have_capability(which, c) != 0) m |= Mask{1} << c;
  }
  return m;
}

std::string namesOf(Mask m) {
  std::string out;
  for (unsigned c = 0; c <= kMaxCapability; ++c) {
    if ((m & (Mask{1} << c)) == 0) continue;
    const char* name = capng_capability_to_name(c);
    std::string upper = "CAP_";
    for (const char* p = name != nullptr ? name : "?"; *p != '\0'; ++p) {
      upper += static_cast<char>(std::toupper(static_cast<unsigned char>(*p)));
    }
    out += (out.empty() ? "" : " ") + upper;
  }
  return out.empty() ? "none" : out;
}

Error dropError(const std::string& reason) {
  return makeError("Failed to drop guardd's capabilities: " + reason);
}

Error syscallError(const char* call) {
  return dropError(std::string(call) + ": " + std::strerror(errno));
}

Result<std::size_t> threadCount() {
  std::error_code ec;
  std::size_t n = 0;
  for (std::filesystem::directory_iterator it("/proc/self/task", ec), end; !ec && it != end;
       it.increment(ec)) {
    ++n;
  }
  if (ec) return dropError("cannot list '/proc/self/task': " + ec.message());
  return n;
}

}  // namespace

Result<std::string> dropPrivileges() {
  auto threads = threadCount();
  if (!threads) return threads.error();
  if (*threads != 1) {
    // A programming error: the other threads would keep everything.
    return dropError("guardd already runs " + std::to_string(*threads) +
                     " threads, and capabilities belong to each thread");
  }
  if (capng_get_caps_process() != 0) return syscallError("capget");
  const Mask had = setOf(CAPNG_PERMITTED);
  const Mask boundingBefore = setOf(CAPNG_BOUNDING_SET);
  const bool hasSetpcap = capng_have_capability(CAPNG_EFFECTIVE, CAP_SETPCAP) != 0;
  const Mask keep = maskOf(kRuntimeCapabilities) & had;
  const Mask child = maskOf(kChildCapabilities) & keep;
  // Without CAP_SETPCAP the bounding set stays as it is. That gives nothing back: it only
  // limits what exec may grant (with SECBIT_NOROOT and no_new_privs nothing beyond the
  // ambient set) and what may join the inheritable set (never more than `keep` then).
  const Mask bounding = hasSetpcap ? keep : boundingBefore;

  // Securebits first: changing them needs CAP_SETPCAP, which the capset below removes.
  // SECBIT_NOROOT: exec as uid 0 grants nothing (only the ambient set passes on);
  // locked, so that nothing in guardd can turn it off again.
  const int bits = ::prctl(PR_GET_SECUREBITS, 0, 0, 0, 0);
  if (bits < 0) return syscallError("prctl(PR_GET_SECUREBITS)");
  if ((static_cast<unsigned>(bits) & kSecureBits) != kSecureBits) {
    if (::prctl(PR_SET_SECUREBITS, static_cast<unsigned>(bits) | kSecureBits, 0, 0, 0) != 0) {
      return dropError(std::string("prctl(PR_SET_SECUREBITS, noroot): ") + std::strerror(errno) +
                       (hasSetpcap ? ""
                                   : " (without CAP_SETPCAP guardd needs them from its "
                                     "service manager: SecureBits=noroot noroot-locked)"));
    }
  }

  capng_clear(CAPNG_SELECT_ALL);
  for (unsigned c = 0; c <= kMaxCapability; ++c) {
    const Mask bit = Mask{1} << c;
    if ((keep & bit) != 0) capng_update(CAPNG_ADD, CAPNG_EFFECTIVE, c);
    if ((keep & bit) != 0) capng_update(CAPNG_ADD, CAPNG_PERMITTED, c);
    if ((bounding & bit) != 0) capng_update(CAPNG_ADD, CAPNG_BOUNDING_SET, c);
    if ((child & bit) != 0) capng_update(CAPNG_ADD, CAPNG_INHERITABLE, c);
    if ((child & bit) != 0) capng_update(CAPNG_ADD, CAPNG_AMBIENT, c);
  }
  if (hasSetpcap && bounding != boundingBefore) {
    if (const int rc = capng_apply(CAPNG_SELECT_BOUNDS); rc != 0) {
      return dropError("prctl(PR_CAPBSET_DROP) (libcap-ng " + std::to_string(rc) +
                       "): " + std::strerror(errno));
    }
  }
  // capset, then the ambient set (it needs the inheritable one in place).
  if (const int rc =
          capng_apply(static_cast<capng_select_t>(CAPNG_SELECT_CAPS | CAPNG_SELECT_AMBIENT));
      rc != 0) {
    return dropError("capset (libcap-ng " + std::to_string(rc) + "): " + std::strerror(errno));
  }
  // No setuid bit or file capability can give guardd or its children anything back.
  if (::prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0) return syscallError("PR_SET_NO_NEW_PRIVS");

  // Read it all back from the kernel: a drop that did not happen must not pass for one.
  if (capng_get_caps_process() != 0) return syscallError("capget");
  struct Expected {
    capng_type_t set;
    const char* name;
    Mask want;
  };
  for (const auto& e :
       {Expected{CAPNG_EFFECTIVE, "effective", keep}, Expected{CAPNG_PERMITTED, "permitted", keep},
        Expected{CAPNG_BOUNDING_SET, "bounding", bounding},
        Expected{CAPNG_INHERITABLE, "inheritable", child},
        Expected{CAPNG_AMBIENT, "ambient", child}}) {
    if (const Mask got = setOf(e.set); got != e.want) {
      return dropError(std::string("the ") + e.name + " set is " + namesOf(got) + " instead of " +
                       namesOf(e.want));
    }
  }
  const int after = ::prctl(PR_GET_SECUREBITS, 0, 0, 0, 0);
  if (after < 0 || (static_cast<unsigned>(after) & kSecureBits) != kSecureBits) {
    return dropError("SECBIT_NOROOT is not set and locked");
  }
  if (::prctl(PR_GET_NO_NEW_PRIVS, 0, 0, 0, 0) != 1) return dropError("no_new_privs is not set");

  std::string line = "privileges: capabilities " + namesOf(keep) + "; programs it runs get " +
                     namesOf(child) + "; securebits noroot (locked), no_new_privs";
  if (const Mask missing = maskOf(kRuntimeCapabilities) & ~keep; missing != 0) {
    line += "; started without " + namesOf(missing);
  }
  if (const Mask extra = bounding & ~keep; extra != 0) {
    line += "; bounding set keeps " + namesOf(extra) + " (no CAP_SETPCAP to drop them)";
  }
  return line;
}

}  // namespace mailguard::service
