#include "mailguard/rules/clock.hpp"

#include <cstdio>

namespace mailguard {

std::string formatRfc3339(TimePoint t) {
  using namespace std::chrono;
  // Calendar arithmetic instead of gmtime_r: pure, no time zone database, and floor()
  // keeps instants before 1970 on the right second.
  const auto micros = floor<microseconds>(t);
  const auto day = floor<days>(micros);
  const year_month_day ymd{day};
  const hh_mm_ss<microseconds> hms{micros - day};
  char buf[40];
  (void)std::snprintf(buf, sizeof buf, "%04d-%02u-%02uT%02d:%02d:%02lld.%06lldZ",
                      static_cast<int>(ymd.year()), static_cast<unsigned>(ymd.month()),
                      static_cast<unsigned>(ymd.day()), static_cast<int>(hms.hours().count()),
                      static_cast<int>(hms.minutes().count()),
                      static_cast<long long>(hms.seconds().count()),
                      static_cast<long long>(hms.subseconds().count()));
  return buf;
}

}  // namespace mailguard
