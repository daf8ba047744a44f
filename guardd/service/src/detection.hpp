#pragma once
// The zombie detector inside guardd: turns each new connection into an AttemptEvent,
// acts on the Assessment (quarantine, throttle), raises alerts, keeps the detector's
// state in the store, and feeds connection outcomes from conntrack. It is the pipeline's
// Assessment seam; everything it needs comes in through Deps, so it is built the same
// way in guardd and in tests. Private to guardd/service.
#include <chrono>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <future>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <tuple>
#include <vector>

#include "alert_sink.hpp"
#include "detector_codec.hpp"
#include "dpkg_sums.hpp"
#include "mailguard/common/bounded_map.hpp"
#include "mailguard/detector/detector.hpp"
#include "mailguard/procinfo/procinfo.hpp"
#include "mailguard/rules/connection.hpp"
#include "mailguard/rules/settings.hpp"
#include "mailguard/service/event_loop.hpp"
#include "mailguard/service/guard.hpp"
#include "mailguard/store/store.hpp"
#include "pipeline_seams.hpp"
#include "program_registry.hpp"

namespace mailguard::service {

class ConntrackListener;

class Detection final : public Assessment {
 public:
  struct Deps {
    const rules::Settings& settings;
    const Clock& clock;
    EventLoop& loop;
    ProgramRegistry& programs;
    const std::vector<rules::ApprovalRule>& approvals;
    const procinfo::ProcFs& proc;
    procinfo::ProcessResolver& resolver;
    store::SqliteStore& reader;
    store::StoreWriter& writer;
    AlertSink& alerts;
    std::function<void(const ProgramView&)> onProgramChanged;
    // A caller's name for a program, resolved to its identity (the file hashed off the loop).
    std::function<void(const ProgramRef&, Done<rules::ProgramIdentity>)> identityOf;
    // A release or a bulk declaration changed what the detector decides for a program.
    std::function<void()> onDecisionsChanged = {};
    std::filesystem::path dpkgInfo = "/var/lib/dpkg/info";
    bool conntrack = true;  // listen to connection outcomes (needs CAP_NET_ADMIN)
    // Who is at the keyboard (U1) for a uid at a CLOCK_MONOTONIC time; empty: no presence
    // evidence (known = false). guardd: presence::PresenceSource::evidence.
    std::function<detector::PresenceEvidence(std::uint32_t uid, MonoTime now)> presence = {};
    // What the process did in DNS before connecting to `dst` (N1-N3); unseen without it.
    std::function<detector::DnsEvidence(const procinfo::ProcessInfo&, const std::string& dst)>
        dnsEvidence = {};
  };

  explicit Detection(Deps deps);
  ~Detection() override;
  Detection(const Detection&) = delete;
  Detection& operator=(const Detection&) = delete;

  // Imports the detector state, marks quarantined programs, starts the conntrack
  // listener (a warning, not an error, when it cannot).
  Result<void> start();
  // Hands the state to the writer (shutdown; the writer's flush makes it durable).
  void stop();

  // Assessment (the pipeline's seam).
  DetectorVerdict assess(const procinfo::ProcessInfo& process, const ProgramView& program,
                         const rules::ConnectionTuple& tuple, bool firstSyn) override;
  void afterVerdict() override;
  void allowed(const procinfo::ProcessInfo& process, const rules::ConnectionTuple& tuple) override;

  [[nodiscard]] bool quarantinedIdentity(const rules::ProgramIdentity& identity) const;
  // The detector has doubts (any alert tier) about this program for some user.
  [[nodiscard]] bool doubted(const rules::ProgramIdentity& identity) const;

  void ackAlert(std::int64_t id, Done<bool> done);
  void release(const ProgramRef& ref, Done<ProgramView> done);
  void declareBulk(const ProgramRef& ref, unsigned recipients, std::chrono::hours window,
                   Done<ProgramView> done);

  // For the conntrack listener: one connection's result.
  void onOutcome(const rules::ConnectionTuple& tuple, detector::ConnectOutcome outcome);
  void onClosed(const rules::ConnectionTuple& tuple);

  // Mail handed to the local MTA without TCP (MtaGate), charged to its submitter like the
  // program's own connections: the submission counts against the MTA channel's daily
  // backstops, and each message's outcome (from the MTA's log) is evidence (O2-O4, H1).
  // Both may quarantine the program (its views are marked before they return). `held`:
  // the program is not approved, so the message waits for the owner (SubmissionEvent).
  void onMtaSubmission(const rules::ProgramIdentity& identity, std::uint32_t uid,
                       unsigned recipients, const std::vector<std::string>& domains, bool held);
  void onMtaDelivery(const rules::ProgramIdentity& identity, std::uint32_t uid,
                     const detector::DeliveryEvent& outcome);
  // The RCPT-stage reply counts of one of the program's own plaintext SMTP sessions (the
  // kernel's reply tap), as evidence (O2-O4); may quarantine like the above.
  void onReplies(const rules::ProgramIdentity& identity, std::uint32_t uid,
                 const detector::ReplyEvent& replies);

  // Classifications finished off the loop since the last call go into the cache.
  void collectClassifications();

 private:
  struct Tracked {
    detector::Principal principal;
    std::string dst;
    std::uint16_t port = 0;
    bool reported = false;
    MonoTime since;
  };
  using TupleKey = std::tuple<std::string, std::uint16_t, std::string, std::uint16_t>;
  static TupleKey keyOf(const rules::ConnectionTuple& t);

  detector::IdentityClass classify(const rules::ProgramIdentity& identity);
  bool isMta(const rules::ProgramIdentity& identity);
  bool localMtaListens(const std::string& dst, std::uint16_t port);
  unsigned openSessions(const detector::Principal& principal) const;
  std::vector<std::string> parentChain(int ppid) const;
  void drainAlerts(const procinfo::ProcessInfo* process);
  void markQuarantined(const detector::Principal& principal);
  // Hands the detector state to the writer; `done` hears when it is on disk.
  void save(std::function<void(Result<void>)> done = {});
  std::vector<ProgramView*> programsOf(const rules::ProgramIdentity& identity);
  void releaseIdentity(const rules::ProgramIdentity& identity, Done<ProgramView> done);
  void declareBulkFor(const rules::ProgramIdentity& identity, unsigned recipients,
                      std::chrono::hours window, Done<ProgramView> done);
  // Answers `done` once the detector state is on disk, with the program's current view.
  void saveThenAnswer(std::int64_t programId, Done<ProgramView> done);

  Deps d_;
  detector::DetectorConfig config_;
  std::unique_ptr<detector::Detector> detector_;
  std::unique_ptr<ConntrackListener> conntrack_;
  // Connections let through, until conntrack reports on them (bounded: the oldest go).
  BoundedMap<TupleKey, Tracked> tracked_;
  // Held by the throttle: its SYN retries stay held (the held attempt is one attempt).
  BoundedMap<TupleKey, MonoTime> throttled_;

  // Whether a file is the one dpkg installed: read off the loop (dpkg's 100k recorded
  // MD5s, then an MD5 of the file); until the answer is in, a program counts as Unknown.
  struct DpkgState {
    std::filesystem::file_time_type infoTime;
    DpkgSums sums;
  };
  using DpkgFuture = std::shared_future<std::shared_ptr<const DpkgState>>;
  DpkgFuture dpkg_;
  // Starts reading dpkg's sums on a thread of their own (100k lines).
  void readDpkg();
  void reloadDpkgIfChanged();
  BoundedMap<std::string, detector::IdentityClass> classCache_;  // by path + sha256
  std::map<std::string, std::future<detector::IdentityClass>> classifying_;

  // By port only: the answer does not depend on the loopback address, and a bot
  // flooding 127.x.y.z must cost neither a /proc/net/tcp scan each nor an entry each.
  std::map<std::uint16_t, std::pair<bool, MonoTime>> mtaListenerCache_;
  bool dirty_ = false;
  std::map<std::string, BulkDeclaration> bulk_;  // by principal key, until they end
  bool alertsPending_ = false;
  std::optional<procinfo::ProcessInfo> alertProcess_;  // whose attempt raised them
};

}  // namespace mailguard::service
