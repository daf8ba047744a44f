#pragma once
// Argument checks of the adaptor: pure, so they are unit-tested without a bus. Each
// failure is an Errc::InvalidArgument with a message a person can act on.
#include <cstdint>
#include <string>
#include <string_view>

#include "mailguard/service/guard.hpp"
#include "mailguard/store/store.hpp"

namespace mailguard::bus {

// target: a decimal id > 0 or an absolute path; script: empty or an absolute path,
// only together with a path. Whether the files exist is the core's question (NotFound).
Result<service::ProgramRef> parseProgramRef(std::string_view target, std::string_view script);

// limit 0 means the default (50), at most 1000; 0 or "" means no filter.
Result<store::AttemptQuery> parseAttemptQuery(std::uint32_t limit, std::int64_t beforeId,
                                              std::int64_t programId, std::string_view verdict,
                                              std::int64_t sinceUs, std::int64_t untilUs);

// A bounded, quoted excerpt of a caller's string for error messages: a megabyte
// argument must not come back as a megabyte error.
std::string excerpt(std::string_view s);

}  // namespace mailguard::bus
