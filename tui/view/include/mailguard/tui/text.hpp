#pragma once
// Text for a character-cell terminal: UTF-8 decoding, display width (wide East Asian
// characters take two cells, combining marks none) and fitting strings to a width.
// Strings from other programs (paths, command lines) may hold invalid UTF-8 or control
// characters; sanitize() makes them safe to print (no escape sequences reach the tty).
#include <string>
#include <string_view>
#include <vector>

namespace mailguard::tui {

inline constexpr std::string_view kEllipsis = "\u2026";  // one cell wide

// Cells that one code point takes: 0 (combining, zero-width), 1 or 2.
int codepointWidth(char32_t c);
// Valid UTF-8 with control characters and invalid bytes replaced by U+FFFD.
std::string sanitize(std::string_view s);
// Cells that sanitize(s) takes.
int displayWidth(std::string_view s);
// s cut to at most `width` cells, ending in an ellipsis when cut; padded with spaces
// to exactly `width` cells when pad is set.
std::string fitEnd(std::string_view s, int width, bool pad = true);
// The same, but cut in the middle: for paths, whose start and file name both matter.
// Keeps more of the end (the file name) than of the start.
std::string fitMiddle(std::string_view s, int width, bool pad = true);
// s split into lines of at most `width` cells; when more than maxLines are needed the
// last line ends in an ellipsis.
std::vector<std::string> wrap(std::string_view s, int width, int maxLines);
// The same for prose: breaks between words (a word wider than a line is cut by cells).
std::vector<std::string> wrapWords(std::string_view s, int width, int maxLines);
// s right-aligned in `width` cells (cut at the end when longer).
std::string alignRight(std::string_view s, int width);

}  // namespace mailguard::tui
