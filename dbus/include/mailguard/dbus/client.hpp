#pragma once
// The one client of org.mailguard.Guard1, shared by guardctl and guard-tui. Plain
// C++ types only: sdbus-c++ stays inside the implementation. Connects to the system
// bus; sd-bus honours DBUS_SYSTEM_BUS_ADDRESS, which is how tests use a private bus.
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <variant>
#include <vector>

namespace mailguard::dbus {

struct Status {
  bool enforcing = false;
  std::string backend;  // "nft-queue" or "xt-compat"
  std::string version;
  std::uint64_t allowed = 0;
  std::uint64_t held = 0;
  std::uint64_t rejected = 0;
  std::uint64_t queueDropped = 0;
  std::uint64_t attemptsDropped = 0;
  std::uint64_t storeErrors = 0;
  std::uint64_t tableRestores = 0;  // another program changed the table; guardd put it back
  std::string storeError;           // empty when the store is healthy
  // Who names the program behind a mail connection: "kernel" (BPF hooks decide approved
  // connects at connect() time) or "proc" (the queued packet's socket looked up in /proc);
  // empty from a guardd that does not say.
  std::string attribution;
  std::string kernelHooks;             // with "kernel": which taint hooks run
  std::uint64_t kernelEventsLost = 0;  // connects the hooks could not report (never blocked)
  std::uint64_t kernelMapBytes = 0;    // memory of the BPF maps
  // User presence as guardd's detector sees it: "logind", "logind+input" or "none"; empty
  // from a guardd that does not say. The uid of a seat's active user session, and that
  // user's time since input in seconds (absent: none / unknown).
  std::string presenceSource;
  std::optional<std::uint32_t> presenceActiveUser;
  std::optional<std::int64_t> presenceIdleSeconds;
  std::string dnsSource = "none";   // where programs' DNS is seen: "kernel" or "none"
  std::uint64_t dnsQueries = 0;     // DNS questions programs sent, as the tap saw them
  std::uint64_t dnsLost = 0;        // port-53 packets the tap could not copy
  std::uint64_t replySessions = 0;  // programs' own SMTP sessions whose replies were read
  std::uint64_t repliesLost = 0;    // port-25 segments the reply tap could not copy
};

// Times are microseconds since the Unix epoch (UTC); 0 means never.
struct Program {
  std::int64_t id = 0;
  std::string path;
  std::string sha256;
  std::string scriptPath;
  std::string scriptSha256;
  std::uint32_t uid = 0;
  std::string state;  // "pending", "approved", "denied" or "quarantined"
  std::int64_t attempts = 0;
  std::int64_t lastAttemptUs = 0;
  std::int64_t firstSeenUs = 0;
  // Messages the local MTA holds (frozen) for it: released on approval, deleted on denial.
  std::uint32_t heldMessages = 0;
  // "program", "script" (run by the interpreter at path) or "inline" (code typed or piped
  // into the interpreter at path).
  std::string kind = "program";
  // Whom its approval covers: "all", user names ("alice, bob"); "" when not approved.
  std::string covers;
  // How many versions (contents) the program has had, this one included (programs()
  // asks ProgramVersions); 0 when not known (ProgramChanged, Approve, an older guardd).
  std::uint32_t versions = 0;
};

// One version (content) of a program (ProgramVersions): the current one first.
struct ProgramVersion {
  std::int64_t id = 0;
  std::string sha256;  // the script's for a script
  std::int64_t firstSeenUs = 0;
  // The current version's state ("pending: changed since approved", ...), or what the
  // owner decided for an older one ("approved, replaced by a newer version").
  std::string state;
};

// Whom an approval covers; all defaults: guardd's default (a program or script in a home
// folder: that home's owner; else every user; inline code named by id: who ran it).
struct ApproveScope {
  std::optional<std::uint32_t> user;
  bool allUsers = false;
  bool inlineCode = false;  // the target is an interpreter's path: its inline code
};

// Which decisions deny and forget name besides the target (DenyWithOptions,
// ForgetWithOptions): the inline code of the interpreter at the target's path, and for
// forget only the approvals for one uid. All defaults: Deny and Forget.
struct RuleScope {
  std::optional<std::uint32_t> user;  // forget only: a denial is for every user
  bool inlineCode = false;
};

// One rule of the owner.
struct Rule {
  std::int64_t id = 0;
  std::string action;  // "approve" or "deny"
  std::string path;
  std::string sha256;
  std::string scriptPath;
  std::string scriptSha256;
  std::vector<std::string> onlyTo;    // destinations an approval is pinned to; empty: anywhere
  std::vector<std::string> allowEnv;  // code-loading variables and options it allows
  std::string kind = "program";       // "program", "script" or "inline"
  std::string covers = "all";         // an approval's users: "all" or a user name
};

struct Attempt {
  std::int64_t id = 0;
  std::int64_t timeUs = 0;
  std::int32_t pid = 0;  // 0 when unknown
  std::uint32_t uid = 0;
  std::string path;
  std::string scriptPath;
  std::string cmdline;
  std::string src;
  std::uint16_t srcPort = 0;
  std::string dst;
  std::uint16_t dstPort = 0;
  std::string verdict;  // "allow", "hold" or "reject"
  std::string reason;
  std::int64_t programId = 0;  // 0 when unattributed
  // Why cmdline is empty: "" when it is given (masked), else e.g. "another user's": only
  // root and the uid that ran the program are given its command line.
  std::string cmdlineHidden;
  // "" a connection; "mta" a message handed to the local MTA (src names the MTA, dst the
  // recipients' domains, ports 0), queueId its id in the MTA's queue.
  std::string channel;
  std::string queueId;
};

// A zombie-detector alert, or a mail-server audit finding.
// evidence is a JSON object (see the XML); an audit alert's starts with "kind": "audit".
struct Alert {
  std::int64_t id = 0;
  std::int64_t timeUs = 0;
  std::int64_t programId = 0;  // 0 when unknown
  std::string path;
  std::uint32_t uid = 0;
  std::string tier;  // "soft" or "hard"
  std::string summary;
  std::vector<std::string> reasons;  // heaviest first
  bool acknowledged = false;
  std::string evidence;
  // "detector" (tier hard: quarantined), "audit" (tier hard: open relay), "tamper"
  // (another program changed guardd's firewall table; guardd restored it) or "blocklist"
  // (the household's public address is on a DNS blocklist; tier hard).
  std::string kind;
};

// The AuditFinished signal: an audit ended (run on request, or by guardd because mail
// listeners changed); HostClient::audit() has its results.
struct AuditEnded {
  std::int64_t finishedUs = 0;
  std::string error;  // empty: it succeeded
  std::uint32_t results = 0;
};

// 0 or empty means "no filter"; limit 0 means the server default (50).
struct AttemptFilter {
  std::uint32_t limit = 0;
  std::int64_t beforeId = 0;
  std::int64_t programId = 0;
  std::string verdict;
  std::int64_t sinceUs = 0;
  std::int64_t untilUs = 0;
};

struct ClientError {
  enum class Kind {
    NoBus,            // the system bus itself is unreachable
    NotRunning,       // nobody owns org.mailguard.Guard1
    NotAuthorized,    // org.mailguard.Error.NotAuthorized or the bus policy refused
    InvalidArgument,  // org.mailguard.Error.InvalidArgument
    NotFound,         // org.mailguard.Error.NotFound
    Failed,           // anything else
  };
  Kind kind = Kind::Failed;
  std::string message;  // for a person: what happened and what to do
  std::string name;     // the D-Bus error name, when there was one
};

template <class T>
using ClientResult = std::variant<T, ClientError>;

// A policy-changing call for a caller that must not block on it (guard-tui): guardd may
// ask polkit, and polkit may ask a person for a password for as long as they take.
struct PolicyCall {
  enum class Method { Approve, Deny, Forget, AckAlert, Release };
  Method method = Method::Approve;
  std::string target;  // a decimal program id or an absolute path
  std::string script;
  // Approve: either one non-empty makes it ApproveWithOptions (only_to, allow_env).
  std::vector<std::string> onlyTo;
  std::vector<std::string> allowEnv;
  std::int64_t alertId = 0;  // AckAlert
};
struct PolicyReply {
  std::optional<Program> program;  // Approve, Deny, Release
  bool value = false;              // Forget: a rule was removed; AckAlert: acknowledged
};

class Client {
 public:
  static ClientResult<std::unique_ptr<Client>> connect();
  ~Client();
  Client(const Client&) = delete;
  Client& operator=(const Client&) = delete;

  ClientResult<Status> status();
  // withVersions: also each program's count of versions (Program::versions), one more
  // call per program; callers that only need states and counts of attempts say false.
  ClientResult<std::vector<Program>> programs(bool withVersions = true);
  // target: the id of any version, or a path (script: the interpreter's script).
  ClientResult<std::vector<ProgramVersion>> programVersions(const std::string& target,
                                                            const std::string& script = {});
  ClientResult<std::vector<Attempt>> attempts(const AttemptFilter& filter);
  // target: a decimal program id or an absolute path; script: empty or absolute.
  // Changing policy may ask for authentication (polkit), so these wait up to 2 minutes.
  // allowEnv: code-loading names (PYTHONPATH, "-M") the program may run with; onlyTo:
  // destinations ("192.0.2.7:587", "[2001:db8::7]", "10.0.0.0/8") the approval is pinned
  // to, added to those it is pinned to already. Either one: ApproveWithOptions.
  // scope: whom the approval covers (ApproveWithOptions' user, all_users, inline).
  ClientResult<Program> approve(const std::string& target, const std::string& script = {},
                                const std::vector<std::string>& allowEnv = {},
                                const std::vector<std::string>& onlyTo = {},
                                const ApproveScope& scope = {});
  ClientResult<std::vector<Rule>> rules();
  ClientResult<Program> deny(const std::string& target, const std::string& script = {},
                             const RuleScope& scope = {});
  ClientResult<bool> forget(const std::string& target, const std::string& script = {},
                            const RuleScope& scope = {});

  // Zombie detector: alerts newest first (limit 0: the server default);
  // acknowledging, releasing and declaring a bulk send change policy (may ask polkit).
  ClientResult<std::vector<Alert>> alerts(std::uint32_t limit = 0);
  ClientResult<bool> ackAlert(std::int64_t id);
  ClientResult<Program> release(const std::string& target, const std::string& script = {});
  ClientResult<Program> bulk(const std::string& target, const std::string& script,
                             std::uint32_t recipients, std::uint32_t hours);

  // Sends a policy call and returns at once. `done` runs inside dispatch() with guardd's
  // answer, or an error when guardd went away or the 2-minute policy timeout passed; it
  // never runs once this Client is destroyed.
  void callPolicyAsync(const PolicyCall& call,
                       std::function<void(const ClientResult<PolicyReply>&)> done);

  // Signals. Handlers run inside dispatch(); the match rules are in place as soon as
  // connect() returned, so nothing emitted after that is missed.
  void onAttemptRecorded(std::function<void(const Attempt&)> handler);
  void onProgramChanged(std::function<void(const Program&)> handler);
  void onAlertRaised(std::function<void(const Alert&)> handler);
  void onAuditFinished(std::function<void(const AuditEnded&)> handler);
  // The OutsideChecked signal: an outside check ended (scheduled, or run by anyone); its
  // report is the JSON outside() then returns.
  void onOutsideChecked(std::function<void(const std::string& report)> handler);
  // org.mailguard.Guard1 got an owner (guardd started: true) or lost it (guardd stopped or
  // crashed: false), from the bus's NameOwnerChanged signal; runs inside dispatch(). The
  // first call adds the match rule (a round trip to the bus daemon), so only clients that
  // follow guardd pay for it; an error means the bus refused or is gone.
  ClientResult<bool> onGuardOwnerChanged(std::function<void(bool running)> handler);

  // For an outside poll loop (guard-tui): watch fd for `events` (poll(2) flags),
  // waking after timeoutMs at the latest (-1: no timeout), then call dispatch().
  struct PollSpec {
    int fd = -1;
    short events = 0;
    int timeoutMs = -1;
  };
  [[nodiscard]] ClientResult<PollSpec> pollSpec() const;
  // Handles everything pending (signals, replies). An error means the bus is gone.
  ClientResult<bool> dispatch();
  // poll() once for up to timeoutMs (-1: forever), then dispatch(); for simple loops.
  ClientResult<bool> waitAndDispatch(int timeoutMs);

 private:
  struct Impl;
  explicit Client(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

// The result's error, or nullptr when it holds a value.
template <class T>
const ClientError* errorOf(const ClientResult<T>& r) {
  return std::get_if<ClientError>(&r);
}

}  // namespace mailguard::dbus
