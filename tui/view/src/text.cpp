#include "mailguard/tui/text.hpp"

#include <algorithm>
#include <array>
#include <utility>
#include <vector>

namespace mailguard::tui {
namespace {

constexpr char32_t kReplacement = 0xFFFD;

struct Range {
  char32_t first;
  char32_t last;
};

// Zero-width: combining marks and format characters (the common blocks, after
// Markus Kuhn's wcwidth and Unicode 15's general categories Mn, Me, Cf).
constexpr std::array kZeroWidth{
    Range{0x0300, 0x036F}, Range{0x0483, 0x0489}, Range{0x0591, 0x05BD},   Range{0x05BF, 0x05BF},
    Range{0x05C1, 0x05C2}, Range{0x05C4, 0x05C5}, Range{0x05C7, 0x05C7},   Range{0x0610, 0x061A},
    Range{0x064B, 0x065F}, Range{0x0670, 0x0670}, Range{0x06D6, 0x06DC},   Range{0x06DF, 0x06E4},
    Range{0x06E7, 0x06E8}, Range{0x06EA, 0x06ED}, Range{0x0900, 0x0902},   Range{0x093A, 0x093A},
    Range{0x093C, 0x093C}, Range{0x0941, 0x0948}, Range{0x094D, 0x094D},   Range{0x0951, 0x0957},
    Range{0x0E31, 0x0E31}, Range{0x0E34, 0x0E3A}, Range{0x0E47, 0x0E4E},   Range{0x1AB0, 0x1AFF},
    Range{0x1DC0, 0x1DFF}, Range{0x200B, 0x200F}, Range{0x202A, 0x202E},   Range{0x2060, 0x2064},
    Range{0x20D0, 0x20FF}, Range{0x302A, 0x302D}, Range{0x3099, 0x309A},   Range{0xFE00, 0xFE0F},
    Range{0xFE20, 0xFE2F}, Range{0xFEFF, 0xFEFF}, Range{0xE0100, 0xE01EF},
};

// Two cells: East Asian Wide and Fullwidth, and emoji presentation.
constexpr std::array kWide{
    Range{0x1100, 0x115F},   Range{0x231A, 0x231B},   Range{0x2329, 0x232A},
    Range{0x23E9, 0x23EC},   Range{0x23F0, 0x23F0},   Range{0x23F3, 0x23F3},
    Range{0x25FD, 0x25FE},   Range{0x2614, 0x2615},   Range{0x2648, 0x2653},
    Range{0x267F, 0x267F},   Range{0x2693, 0x2693},   Range{0x26A1, 0x26A1},
    Range{0x26AA, 0x26AB},   Range{0x26BD, 0x26BE},   Range{0x26C4, 0x26C5},
    Range{0x26CE, 0x26CE},   Range{0x26D4, 0x26D4},   Range{0x26EA, 0x26EA},
    Range{0x26F2, 0x26F3},   Range{0x26F5, 0x26F5},   Range{0x26FA, 0x26FA},
    Range{0x26FD, 0x26FD},   Range{0x2705, 0x2705},   Range{0x270A, 0x270B},
    Range{0x2728, 0x2728},   Range{0x274C, 0x274C},   Range{0x274E, 0x274E},
    Range{0x2753, 0x2755},   Range{0x2757, 0x2757},   Range{0x2795, 0x2797},
    Range{0x27B0, 0x27B0},   Range{0x27BF, 0x27BF},   Range{0x2B1B, 0x2B1C},
    Range{0x2B50, 0x2B50},   Range{0x2B55, 0x2B55},   Range{0x2E80, 0x303E},
    Range{0x3041, 0x33FF},   Range{0x3400, 0x4DBF},   Range{0x4E00, 0x9FFF},
    Range{0xA000, 0xA4CF},   Range{0xA960, 0xA97F},   Range{0xAC00, 0xD7A3},
    Range{0xF900, 0xFAFF},   Range{0xFE10, 0xFE19},   Range{0xFE30, 0xFE6F},
    Range{0xFF00, 0xFF60},   Range{0xFFE0, 0xFFE6},   Range{0x16FE0, 0x16FE4},
    Range{0x17000, 0x18CFF}, Range{0x1B000, 0x1B2FF}, Range{0x1F004, 0x1F004},
    Range{0x1F0CF, 0x1F0CF}, Range{0x1F18E, 0x1F18E}, Range{0x1F191, 0x1F19A},
    Range{0x1F200, 0x1F251}, Range{0x1F300, 0x1F320}, Range{0x1F32D, 0x1F335},
    Range{0x1F337, 0x1F37C}, Range{0x1F37E, 0x1F393}, Range{0x1F3A0, 0x1F3CA},
    Range{0x1F3CF, 0x1F3D3}, Range{0x1F3E0, 0x1F3F0}, Range{0x1F3F4, 0x1F3F4},
    Range{0x1F3F8, 0x1F43E}, Range{0x1F440, 0x1F440}, Range{0x1F442, 0x1F4FC},
    Range{0x1F4FF, 0x1F53D}, Range{0x1F54B, 0x1F54E}, Range{0x1F550, 0x1F567},
    Range{0x1F57A, 0x1F57A}, Range{0x1F595, 0x1F596}, Range{0x1F5A4, 0x1F5A4},
    Range{0x1F5FB, 0x1F64F}, Range{0x1F680, 0x1F6C5}, Range{0x1F6CC, 0x1F6CC},
    Range{0x1F6D0, 0x1F6D2}, Range{0x1F6D5, 0x1F6D7}, Range{0x1F6EB, 0x1F6EC},
    Range{0x1F6F4, 0x1F6FC}, Range{0x1F7E0, 0x1F7EB}, Range{0x1F90C, 0x1F93A},
    Range{0x1F93C, 0x1F945}, Range{0x1F947, 0x1F9FF}, Range{0x1FA70, 0x1FAFF},
    Range{0x20000, 0x2FFFD}, Range{0x30000, 0x3FFFD},
};

template <std::size_t N>
bool inRanges(const std::array<Range, N>& ranges, char32_t c) {
  const auto it = std::upper_bound(ranges.begin(), ranges.end(), c,
                                   [](char32_t v, const Range& r) { return v < r.first; });
  return it != ranges.begin() && c <= std::prev(it)->last;
}

// Decodes the next code point; invalid sequences (overlong, surrogates, truncated, out of
// range) yield U+FFFD and consume one byte.
char32_t decode(std::string_view s, std::size_t& i) {
  const auto b0 = static_cast<unsigned char>(s[i]);
  if (b0 < 0x80) {
    ++i;
    return b0;
  }
  int len = 0;
  char32_t c = 0;
  char32_t min = 0;
  if ((b0 & 0xE0) == 0xC0) {
    len = 2;
    c = b0 & 0x1Fu;
    min = 0x80;
  } else if ((b0 & 0xF0) == 0xE0) {
    len = 3;
    c = b0 & 0x0Fu;
    min = 0x800;
  } else if ((b0 & 0xF8) == 0xF0) {
    len = 4;
    c = b0 & 0x07u;
    min = 0x10000;
  } else {
    ++i;
    return kReplacement;
  }
  if (i + static_cast<std::size_t>(len) > s.size()) {
    ++i;
    return kReplacement;
  }
  for (int k = 1; k < len; ++k) {
    const auto b = static_cast<unsigned char>(s[i + static_cast<std::size_t>(k)]);
    if ((b & 0xC0) != 0x80) {
      ++i;
      return kReplacement;
    }
    c = (c << 6) | (b & 0x3Fu);
  }
  if (c < min || c > 0x10FFFF || (c >= 0xD800 && c <= 0xDFFF)) {
    ++i;
    return kReplacement;
  }
  i += static_cast<std::size_t>(len);
  return c;
}

void encode(char32_t c, std::string& out) {
  if (c < 0x80) {
    out += static_cast<char>(c);
  } else if (c < 0x800) {
    out += static_cast<char>(0xC0 | (c >> 6));
    out += static_cast<char>(0x80 | (c & 0x3F));
  } else if (c < 0x10000) {
    out += static_cast<char>(0xE0 | (c >> 12));
    out += static_cast<char>(0x80 | ((c >> 6) & 0x3F));
    out += static_cast<char>(0x80 | (c & 0x3F));
  } else {
    out += static_cast<char>(0xF0 | (c >> 18));
    out += static_cast<char>(0x80 | ((c >> 12) & 0x3F));
    out += static_cast<char>(0x80 | ((c >> 6) & 0x3F));
    out += static_cast<char>(0x80 | (c & 0x3F));
  }
}

bool isControl(char32_t c) { return c < 0x20 || (c >= 0x7F && c < 0xA0); }

// A sanitized string as (code point, cells) clusters; a zero-width code point joins
// the cluster before it so that cuts never separate a mark from its base.
struct Cluster {
  std::string bytes;
  int width = 0;
};

std::vector<Cluster> clusters(std::string_view s) {
  std::vector<Cluster> out;
  std::size_t i = 0;
  while (i < s.size()) {
    char32_t c = decode(s, i);
    if (isControl(c)) c = kReplacement;
    const int w = codepointWidth(c);
    if (w == 0 && !out.empty()) {
      encode(c, out.back().bytes);
      continue;
    }
    Cluster cl;
    encode(c, cl.bytes);
    cl.width = w;
    out.push_back(std::move(cl));
  }
  return out;
}

std::string padTo(std::string s, int used, int width) {
  if (used < width) s.append(static_cast<std::size_t>(width - used), ' ');
  return s;
}

}  // namespace

int codepointWidth(char32_t c) {
  if (c == 0) return 0;
  if (inRanges(kZeroWidth, c)) return 0;
  if (inRanges(kWide, c)) return 2;
  return 1;
}

std::string sanitize(std::string_view s) {
  std::string out;
  out.reserve(s.size());
  for (const auto& c : clusters(s)) out += c.bytes;
  return out;
}

int displayWidth(std::string_view s) {
  int w = 0;
  for (const auto& c : clusters(s)) w += c.width;
  return w;
}

std::string fitEnd(std::string_view s, int width, bool pad) {
  if (width <= 0) return {};
  const auto cs = clusters(s);
  int total = 0;
  for (const auto& c : cs) total += c.width;
  std::string out;
  int used = 0;
  if (total <= width) {
    for (const auto& c : cs) out += c.bytes;
    used = total;
  } else {
    for (const auto& c : cs) {
      if (used + c.width > width - 1) break;
      out += c.bytes;
      used += c.width;
    }
    out += kEllipsis;
    ++used;
  }
  return pad ? padTo(std::move(out), used, width) : out;
}

std::string fitMiddle(std::string_view s, int width, bool pad) {
  if (width <= 0) return {};
  const auto cs = clusters(s);
  int total = 0;
  for (const auto& c : cs) total += c.width;
  if (total <= width) {
    std::string out;
    for (const auto& c : cs) out += c.bytes;
    return pad ? padTo(std::move(out), total, width) : out;
  }
  if (width < 4) return fitEnd(s, width, pad);
  // Two thirds of the room for the end: the file name is what a person recognises.
  const int budget = width - 1;
  const int tailBudget = budget - budget / 3;
  std::string tail;
  int tailUsed = 0;
  std::size_t tailStart = cs.size();
  while (tailStart > 0 && tailUsed + cs[tailStart - 1].width <= tailBudget) {
    --tailStart;
    tailUsed += cs[tailStart].width;
  }
  std::string head;
  int headUsed = 0;
  for (std::size_t i = 0; i < tailStart; ++i) {
    if (headUsed + cs[i].width > budget - tailUsed) break;
    head += cs[i].bytes;
    headUsed += cs[i].width;
  }
  for (std::size_t i = tailStart; i < cs.size(); ++i) tail += cs[i].bytes;
  std::string out = head + std::string(kEllipsis) + tail;
  return pad ? padTo(std::move(out), headUsed + 1 + tailUsed, width) : out;
}

std::vector<std::string> wrap(std::string_view s, int width, int maxLines) {
  std::vector<std::string> lines;
  if (width <= 0 || maxLines <= 0) return lines;
  const auto cs = clusters(s);
  std::string line;
  int used = 0;
  for (std::size_t i = 0; i < cs.size(); ++i) {
    if (used + cs[i].width > width) {
      if (static_cast<int>(lines.size()) + 1 == maxLines) {
        lines.push_back(fitEnd(line + cs[i].bytes + "..", width, false));
        return lines;
      }
      lines.push_back(std::move(line));
      line.clear();
      used = 0;
    }
    line += cs[i].bytes;
    used += cs[i].width;
  }
  if (!line.empty() || lines.empty()) lines.push_back(std::move(line));
  return lines;
}

std::vector<std::string> wrapWords(std::string_view s, int width, int maxLines) {
  std::vector<std::string> lines;
  if (width <= 0 || maxLines <= 0) return lines;
  std::string line;
  std::size_t pos = 0;
  while (pos <= s.size()) {
    auto end = s.find(' ', pos);
    if (end == std::string_view::npos) end = s.size();
    const std::string word(s.substr(pos, end - pos));
    pos = end + 1;
    if (word.empty()) continue;
    const std::string joined = line.empty() ? word : line + " " + word;
    if (displayWidth(joined) <= width) {
      line = joined;
      continue;
    }
    if (!line.empty()) lines.push_back(std::move(line));
    line.clear();
    if (displayWidth(word) > width) {
      auto parts = wrap(word, width, 1 << 20);
      line = std::move(parts.back());
      parts.pop_back();
      for (auto& part : parts) lines.push_back(std::move(part));
    } else {
      line = word;
    }
  }
  if (!line.empty() || lines.empty()) lines.push_back(std::move(line));
  if (static_cast<int>(lines.size()) > maxLines) {
    lines.resize(static_cast<std::size_t>(maxLines));
    auto& last = lines.back();
    last = displayWidth(last) < width ? last + std::string(kEllipsis)
                                      : fitEnd(last + "..", width, false);
  }
  return lines;
}

std::string alignRight(std::string_view s, int width) {
  if (width <= 0) return {};
  const int w = displayWidth(s);
  if (w >= width) return fitEnd(s, width);
  return std::string(static_cast<std::size_t>(width - w), ' ') + sanitize(s);
}

}  // namespace mailguard::tui
