#pragma once
// A fake /proc tree built at test time in a temporary directory: symlinks such as
// fd/3 -> "socket:[4242]" and exe -> a real file cannot be stored well in git.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdint>
#include <cstdlib>
#include <ctime>
#include <filesystem>
#include <fstream>
#include <map>
#include <optional>
#include <string>
#include <vector>

namespace mailguard::procinfo::fake {

struct FakeProcess {
  std::string name = "prog";
  int ppid = 1;
  std::uint32_t uid = 1000;
  std::uint64_t startTime = 1000;
  std::vector<std::string> cmdline{};
  std::filesystem::path exe{};       // symlink target of PID/exe (empty: no exe link)
  std::filesystem::path cwd{};       // symlink target of PID/cwd (empty: none)
  std::map<int, std::string> fds{};  // fd number -> link text, e.g. "socket:[4242]"
  // "NAME=value" entries of PID/environ; nullopt: no environ file (unreadable).
  std::optional<std::vector<std::string>> env = std::vector<std::string>{};
};

inline void writeFile(const std::filesystem::path& p, std::string_view content) {
  std::filesystem::create_directories(p.parent_path());
  std::ofstream out(p, std::ios::binary | std::ios::trunc);
  out.write(content.data(), static_cast<std::streamsize>(content.size()));
  ASSERT_TRUE(out.good()) << p;
}

// Rewrites `p` in place (same inode) and sets its access and modification times back to
// what they were, as an attacker with touch(1) can: only the ctime shows the change. Waits
// first until the kernel's coarse clock has passed the old ctime, so the new one differs.
inline void rewriteKeepingTimes(const std::filesystem::path& p, std::string_view content) {
  struct stat before {};
  ASSERT_EQ(::stat(p.c_str(), &before), 0) << p;
  for (;;) {
    timespec now{};
    ::clock_gettime(CLOCK_REALTIME_COARSE, &now);
    if (now.tv_sec > before.st_ctim.tv_sec ||
        (now.tv_sec == before.st_ctim.tv_sec && now.tv_nsec > before.st_ctim.tv_nsec)) {
      break;
    }
  }
  {
    std::ofstream out(p, std::ios::binary | std::ios::in | std::ios::out);
    out.write(content.data(), static_cast<std::streamsize>(content.size()));
    ASSERT_TRUE(out.good()) << p;
  }
  const timespec times[2] = {before.st_atim, before.st_mtim};
  ASSERT_EQ(::utimensat(AT_FDCWD, p.c_str(), times, 0), 0) << p;
  struct stat after {};
  ASSERT_EQ(::stat(p.c_str(), &after), 0) << p;
  ASSERT_EQ(after.st_ino, before.st_ino);
  ASSERT_EQ(after.st_size, before.st_size);
  ASSERT_EQ(after.st_mtim.tv_nsec, before.st_mtim.tv_nsec);
  ASSERT_EQ(after.st_mtim.tv_sec, before.st_mtim.tv_sec);
}

inline std::string statLine(int pid, const FakeProcess& p) {
  // Fields 3..21 (state .. itrealvalue), then 22 = starttime, then a few more.
  std::string s = std::to_string(pid) + " (" + p.name + ") S " + std::to_string(p.ppid);
  for (int field = 5; field <= 21; ++field) s += " " + std::to_string(field);
  s += " " + std::to_string(p.startTime) + " 23 24 25\n";
  return s;
}

class FakeProcTree {
 public:
  FakeProcTree() {
    std::string tmpl = (std::filesystem::path(::testing::TempDir()) / "procinfo-XXXXXX").string();
    const char* made = ::mkdtemp(tmpl.data());
    if (made == nullptr) throw std::runtime_error("mkdtemp failed");
    base_ = std::filesystem::canonical(made);
    std::filesystem::create_directories(proc());
    std::filesystem::create_directories(files());
  }
  ~FakeProcTree() {
    std::error_code ec;
    std::filesystem::remove_all(base_, ec);
  }
  FakeProcTree(const FakeProcTree&) = delete;
  FakeProcTree& operator=(const FakeProcTree&) = delete;

  [[nodiscard]] std::filesystem::path proc() const { return base_ / "proc"; }
  // Where test executables, scripts and working directories live.
  [[nodiscard]] std::filesystem::path files() const { return base_ / "files"; }

  void add(int pid, const FakeProcess& p) {
    const auto dir = proc() / std::to_string(pid);
    std::filesystem::create_directories(dir / "fd");
    writeFile(dir / "status", "Name:\t" + p.name + "\nUmask:\t0022\nState:\tS (sleeping)\n" +
                                  "Tgid:\t" + std::to_string(pid) + "\nPid:\t" +
                                  std::to_string(pid) + "\nPPid:\t" + std::to_string(p.ppid) +
                                  "\nUid:\t" + std::to_string(p.uid) + "\t" +
                                  std::to_string(p.uid) + "\t" + std::to_string(p.uid) + "\t" +
                                  std::to_string(p.uid) + "\n");
    std::string cmd;
    for (const auto& a : p.cmdline) cmd += a + '\0';
    writeFile(dir / "cmdline", cmd);
    if (p.env) {
      std::string env;
      for (const auto& e : *p.env) env += e + '\0';
      writeFile(dir / "environ", env);
    }
    writeFile(dir / "stat", statLine(pid, p));
    if (!p.exe.empty()) std::filesystem::create_symlink(p.exe, dir / "exe");
    if (!p.cwd.empty()) std::filesystem::create_symlink(p.cwd, dir / "cwd");
    for (const auto& [fd, link] : p.fds) {
      std::filesystem::create_symlink(link, dir / "fd" / std::to_string(fd));
    }
  }

  // A small executable file under files().
  std::filesystem::path addFile(const std::string& rel, std::string_view content) {
    const auto p = files() / rel;
    writeFile(p, content);
    return p;
  }

 private:
  std::filesystem::path base_;
};

}  // namespace mailguard::procinfo::fake
