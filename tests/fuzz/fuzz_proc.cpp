// The /proc parsers read text that the watched process partly writes itself: its comm
// (prctl PR_SET_NAME, up to 15 bytes of anything but NUL) and its whole command line.
// Every parser gets the same input, so a seed may be any /proc file.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>

#include "mailguard/procinfo/procinfo.hpp"

namespace pi = mailguard::procinfo;

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view text(reinterpret_cast<const char*>(data), size);

  if (const auto status = pi::parseStatus(text)) {
    if (status->ppid < -1) std::abort();
  }

  // The arguments joined with NUL give back the input, less one trailing NUL.
  const auto args = pi::parseCmdline(text);
  std::string joined;
  for (std::size_t i = 0; i < args.size(); ++i) {
    if (i > 0) joined += '\0';
    joined += args[i];
  }
  std::string_view expected = text;
  if (!expected.empty() && expected.back() == '\0') expected.remove_suffix(1);
  if (joined != expected && !(args.empty() && text.empty())) std::abort();

  (void)pi::parseStatStartTime(text);
  (void)pi::parseFdinfoFlags(text);

  if (const auto inode = pi::parseSocketLink(text)) {
    if (!text.starts_with("socket:[") || !text.ends_with("]")) std::abort();
    if (std::to_string(*inode).size() > size) std::abort();
  }
  return 0;
}
